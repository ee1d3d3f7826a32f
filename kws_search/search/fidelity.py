"""Multi-fidelity search: train every student briefly, and only the promising ones in full.

Asynchronous successive halving over epochs for three objectives. At each rung (an epoch
count, e.g. 2 and 6 of 12) a student is compared with every student of the study that reached
the same rung: its best validation quality so far, and its speed-up and compression, which
the architecture fixes before training. It goes on while it is among the best `keep` share by
Pareto rank (how many of them dominate it), and is stopped otherwise. Feasibility comes first:
a student already within the quality bar beats every student that is not.

Optuna cannot prune multi-objective trials itself (`Trial.report` is single-objective only),
so the rung numbers are user attributes (`rung_<epoch>`), visible in the dashboard and the
report, and a stopped trial is ended as PRUNED with its partial numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from kws_search.errors import ConfigError
from kws_search.search.attrs import PRUNED_AT

RUNG_PREFIX = "rung_"
# The final stage: students of the search's front trained again, the way the teacher was (its
# own recipe, to convergence), as trials of their own; they hold this user attribute (the
# number of the search trial they retrain) and form the study's front once there are any.
FINAL_OF = "final_of"
STAGE, SEARCH_STAGE, FINAL_STAGE = "stage", "search", "final"


def is_final(trial: FrozenTrial) -> bool:
    """Whether `trial` is a finalist (the final stage), not a search trial."""
    return FINAL_OF in trial.user_attrs


@dataclass(frozen=True)
class Rungs:
    """Where students are compared, and how many go on.

    `epochs`: the epoch counts at which to decide, increasing, each below the full training.
    `keep`: the share of students at a rung that go on (1/3: successive halving with eta 3).
    `min_peers`: below this many students at a rung, everyone goes on (nothing to compare).
    """

    epochs: tuple[int, ...] = ()
    keep: float = 1 / 3
    min_peers: int = 6

    def __post_init__(self) -> None:
        if any(e < 1 for e in self.epochs) or list(self.epochs) != sorted(set(self.epochs)):
            raise ConfigError(f"fidelity.rungs must be increasing epoch counts >= 1, "
                             f"got {list(self.epochs)}")
        if not 0 < self.keep < 1:
            raise ConfigError(f"fidelity.keep must be between 0 and 1, got {self.keep}")
        if self.min_peers < 1:
            raise ConfigError(f"fidelity.min_peers must be >= 1, got {self.min_peers}")

    def check(self, epochs: int) -> None:
        """Every rung must come before the end of training (`epochs`)."""
        if self.epochs and self.epochs[-1] >= epochs:
            raise ConfigError(f"fidelity.rungs {list(self.epochs)} must all be below "
                             f"train.epochs={epochs}")


Point = tuple[float, float, float]  # (quality: lower is better, speed-up, compression)


def dominates(a: Point, b: Point, bar: float) -> bool:
    """`a` is better than `b`: within the bar when `b` is not, or else at least as good in
    every objective and better in one."""
    a_ok, b_ok = a[0] <= bar, b[0] <= bar
    if a_ok != b_ok:
        return a_ok
    return a[0] <= b[0] and a[1] >= b[1] and a[2] >= b[2] and a != b


def goes_on(point: Point, peers: Sequence[Point], bar: float, keep: float,
            min_peers: int) -> bool:
    """Whether a student at `point` is among the best `keep` share of itself and `peers`.

    Rank = how many students dominate it (0 on the rung's front). A student goes on when
    fewer than ceil(keep * n) of the n students rank strictly better; ties all go on.
    """
    n = len(peers) + 1
    if n < min_peers:
        return True
    everyone = [*peers, point]
    rank = {i: sum(dominates(o, p, bar) for o in everyone) for i, p in enumerate(everyone)}
    mine = rank[n - 1]
    better = sum(r < mine for r in rank.values())
    return better < math.ceil(keep * n)


def rung_peers(trials: Sequence[FrozenTrial], epoch: int, number: int) -> list[Point]:
    """The points other trials recorded at rung `epoch` (whatever state they are in now)."""
    key = f"{RUNG_PREFIX}{epoch}"
    return [(t.user_attrs[key], t.user_attrs["speedup"], t.user_attrs["compression"])
            for t in trials if t.number != number and key in t.user_attrs
            and "speedup" in t.user_attrs]


class RungJudge:
    """Called after every epoch of a trial: records the rung, stops a student behind."""

    def __init__(self, trial: optuna.Trial, rungs: Rungs, bar: float, speedup: float,
                 compression: float) -> None:
        self.trial, self.rungs, self.bar = trial, rungs, bar
        self.speedup, self.compression = speedup, compression

    def __call__(self, epoch: int, best_quality: float) -> None:
        if epoch not in self.rungs.epochs:
            return
        self.trial.set_user_attr(f"{RUNG_PREFIX}{epoch}", best_quality)
        trials = self.trial.study.get_trials(deepcopy=False,
                                             states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                     TrialState.RUNNING))
        peers = rung_peers(trials, epoch, self.trial.number)
        point = (best_quality, self.speedup, self.compression)
        if not goes_on(point, peers, self.bar, self.rungs.keep, self.rungs.min_peers):
            self.trial.set_user_attr(PRUNED_AT, epoch)
            raise optuna.TrialPruned(f"behind at epoch {epoch}: {len(peers)} students reached "
                                     f"it, this one is not in the best {self.rungs.keep:.0%}")


def finished(trial: FrozenTrial) -> bool:
    """A trial that counts towards `--trials`: complete, or stopped at a rung (not a surplus
    trial pruned before it started, nor a failure)."""
    return trial.state == TrialState.COMPLETE or (
        trial.state == TrialState.PRUNED and PRUNED_AT in trial.user_attrs)
