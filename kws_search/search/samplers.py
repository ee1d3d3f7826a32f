"""Optuna samplers for the search, seeded so that parallel workers draw different students."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from kws_search.errors import KwsSearchError
from kws_search.options import SAMPLERS
from kws_search.search.fidelity import is_final

DISTINCT_TRIES = 20  # random draws to find a student the study does not hold yet
# `gp-tpe`: the Gaussian process while the study is small, TPE once it holds this many
# finished search trials (GP's cost per student grows with the study; TPE's hardly does)
LATE_TRIALS = 50


def held_students(study: optuna.Study) -> set[tuple]:
    """Parameter sets of the study's search-stage trials (finished, running, queued or failed
    and due for a retry); finalists retrain students at another budget and do not count."""
    held = set()
    for t in study.get_trials(deepcopy=False):
        if is_final(t):
            continue
        if t.params:  # a queued trial holds its student's parameters (`queue_hand_tuned`)
            held.add(_key(t.params))
    return held


def _key(params: dict[str, Any]) -> tuple:
    return tuple(sorted(params.items()))


class UnknownSampler(KwsSearchError, ValueError):
    """A sampler name kws-search does not know."""


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The named Optuna sampler, seeded per trial (see TrialSeededSampler)."""
    if name not in SAMPLERS:
        raise UnknownSampler(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return TrialSeededSampler(name, seed)


def base_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The named Optuna sampler with its settings for this search, seeded with `seed`."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "gp":  # Gaussian process, constrained multi-objective (needs scipy)
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=10)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    return optuna.samplers.RandomSampler(seed=seed)


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """The named sampler, built anew before each trial with a seed made of (seed, trial number).

    Every worker process (and machine) builds its own sampler from the same `--seed`; left
    alone, their random streams are identical and they draw the same students side by side.
    Trial numbers are unique in a study, so keyed by them the draws differ between workers,
    and a one-worker run still repeats exactly. Optuna's samplers read the trials from the
    study each time, so a fresh one per trial loses nothing but GPSampler's warm start of
    its kernel fit (each worker process had its own anyway); seeding through the constructor
    needs no private random state.
    """

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self._seed = seed
        self.base = base_sampler(name, seed)
        # the trial this sampler set up last: Optuna calls `before_trial` as soon as it has
        # made a trial, so after a Ctrl-C the worker knows which trial to fail (workers.py)
        self.last_trial_number: int | None = None

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.last_trial_number = trial.number
        entropy = [self._seed % 2**32, trial.number]
        seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        name = self.name
        if name == "gp-tpe":
            late = sum(t.state.is_finished() and not is_final(t)
                       for t in study.get_trials(deepcopy=False)) >= LATE_TRIALS
            name = "tpe" if late else "gp"
        self.base = base_sampler(name, seed)
        self.base.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict) -> dict[str, Any]:
        """The base sampler's student, unless the study already holds it (measured, running
        or queued): then a random one it does not hold. A model-based sampler proposes the
        same point again when its model does not change, and a second trial of one student
        at one budget measures nothing new."""
        params = self.base.sample_relative(study, trial, search_space)
        if not params or set(params) != set(search_space):
            return params
        held = held_students(study)
        if _key(params) not in held:
            return params
        fallback = optuna.samplers.RandomSampler(seed=int(np.random.SeedSequence(
            [self._seed % 2**32, trial.number, 1]).generate_state(1)[0]))
        for _ in range(DISTINCT_TRIES):
            params = {name: fallback.sample_independent(study, trial, name, dist)
                      for name, dist in search_space.items()}
            if _key(params) not in held:
                break
        return params

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Any) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()

