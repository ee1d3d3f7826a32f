"""Whether a space holds a student within the budgets: checked before any work is spent.

Bytes, peak RAM and MACs follow from the architecture alone, so they are computed for the
space's corners (every size at its low end, strides and frequency kernels at either end, each
RNN cell and quantization mode and front end) and for a seeded sample of the space; the
smallest value found for each budget is what `run` names when it refuses. Latency needs a
timing, so it is checked per trial instead.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace

import optuna
from optuna.distributions import CategoricalDistribution

from kws_search.data.front_end import FeatureConfig
from kws_search.errors import ConfigError
from kws_search.search.budgets import LIMITS, Budgets, show
from kws_search.search.space import SearchSpace

logger = logging.getLogger(__name__)

SAMPLES = 60  # random students of the space besides its corners
SMALL_END = ("cnn_channels", "hidden", "layers")  # smaller is cheaper
# cheaper at one end or the other (a longer kernel means fewer steps, fewer MACs)
EITHER_END = ("kernel_freq", "kernel_time", "stride_freq", "stride_time")


def candidates(space: SearchSpace, samples: int = SAMPLES, seed: int = 0) -> list[dict]:
    """Parameter sets of the space: its corners, then `samples` random ones."""
    dists = space.distributions()
    options = {}
    for name, dist in dists.items():
        if isinstance(dist, CategoricalDistribution):
            options[name] = list(dist.choices)
        elif name in SMALL_END:
            options[name] = [dist.low]
        elif name in EITHER_END:
            options[name] = [dist.low, dist.high]
        else:  # training settings: no bearing on size
            options[name] = [dist.low]
    names = list(options)
    corners = [dict(zip(names, values, strict=True))
               for values in itertools.product(*options.values())]
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line for a scratch study
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    sampled = []
    for _ in range(samples):
        trial = study.ask(dists)
        sampled.append(trial.params)
    return corners + sampled


def smallest(space: SearchSpace, features: FeatureConfig, budgets: Budgets,
             ) -> dict[str, tuple[float, dict]]:
    """For each active budget, the smallest value among the space's candidates and the
    parameters that reach it; and under the key '' the first candidate within all budgets
    (absent when none is)."""
    from kws_search.measure import model_cost

    best: dict[str, tuple[float, dict]] = {}
    for params in candidates(space):
        config = space.build(params)
        own = config.front_end.features(features)
        model = replace(config.model, n_mels=own.n_mels)
        size = {"hop_us": 0.0, **model_cost(model, config.quant, own).to_dict()}
        for name in budgets.active():
            value = size[LIMITS[name].stat]
            if name not in best or value < best[name][0]:
                best[name] = (value, params)
        if "" not in best and not budgets.broken(size):
            best[""] = (0.0, params)
    return best


def check_reachable(space: SearchSpace, features: FeatureConfig, budgets: Budgets) -> None:
    """ConfigError, one line, when no student of `space` keeps to a budget: it names the budget
    and the smallest value the space reaches. A warning when each budget alone is met but no
    candidate met them all."""
    limits = {k: v for k, v in budgets.active().items() if k != "latency"}
    if not limits:
        return
    best = smallest(space, features, Budgets(**limits))
    for name, limit in limits.items():
        value, params = best[name]
        if value > limit:
            stat, option, kind = LIMITS[name]
            raise ConfigError(
                f"{option} {show(limit, kind)}: no student of space {space.name!r} fits; the "
                f"smallest {stat} among its corners and {SAMPLES} samples is "
                f"{show(value, kind)} ({_short(params)}); raise the budget or search a space "
                "of smaller students")
    if "" not in best:
        logger.warning("each budget alone is within reach of space %r, but none of %d students "
                       "checked keeps to all of them (%s); the search may find none",
                       space.name, SAMPLES, budgets.describe())


def _short(params: dict) -> str:
    keys = ("cnn_channels", "hidden", "layers", "rnn", "mode", "n_fft", "n_mels")
    return ", ".join(f"{k} {params[k]}" for k in keys if k in params)
