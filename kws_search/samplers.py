"""Optuna samplers for the search, seeded so that parallel workers draw different students."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.trial import FrozenTrial, TrialState

SAMPLERS = ("gp", "tpe", "nsga2", "random")


class UnknownSampler(ValueError):
    """A sampler name kws-search does not know."""


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The named Optuna sampler, seeded per trial (see TrialSeededSampler)."""
    if name == "tpe":
        base = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    elif name == "gp":  # Gaussian process, constrained multi-objective (needs scipy)
        base = optuna.samplers.GPSampler(seed=seed, n_startup_trials=10)
    elif name == "nsga2":
        base = optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    elif name == "random":
        base = optuna.samplers.RandomSampler(seed=seed)
    else:
        raise UnknownSampler(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return TrialSeededSampler(base, seed)


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """`base`, with its random state reseeded from (seed, trial number) before each trial.

    Every worker process (and machine) builds its own sampler from the same `--seed`; left
    alone, their random streams are identical and they draw the same students side by side.
    Trial numbers are unique in a study, so keyed by them the draws differ between workers,
    and a one-worker run still repeats exactly.
    """

    def __init__(self, base: optuna.samplers.BaseSampler, seed: int) -> None:
        self.base = base
        self._seed = seed
        self._states = _random_states(base)
        self.last_trial_number: int | None = None  # the trial this worker started last

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.last_trial_number = trial.number
        if self._states:
            entropy = [self._seed % 2**32, trial.number]
            for i, state in enumerate(self._states):
                state.rng.seed(np.random.SeedSequence(entropy + [i]).generate_state(1)[0])
        else:  # a sampler without the random states known here: at least never the same
            self.base.reseed_rng()
        self.base.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict) -> dict[str, Any]:
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Any) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


def _random_states(sampler: Any, seen: set[int] | None = None) -> list[LazyRandomState]:
    """The random states a sampler and the samplers inside it draw from (each once)."""
    seen = set() if seen is None else seen
    found = []
    for value in vars(sampler).values():
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, LazyRandomState):
            found.append(value)
        elif isinstance(value, optuna.samplers.BaseSampler):
            found += _random_states(value, seen)
    return found
