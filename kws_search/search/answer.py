"""The answer a study gives: how much faster and smaller a student is at a given quality.

For each quality level (a multiple of the teacher's validation quality) the curve names the
student with the best speed-up (the whole pipeline, front end included, as the study counts
it), the best speed-up of the networks alone (what the seeds reported), and the best
compression, among the students within that level. Pure functions over Optuna trials, so the
search (choosing finalists), `run`, `report` and `export` read one curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from kws_search.search.attrs import MODEL_SPEEDUP
from kws_search.search.budgets import OVER_BUDGET
from kws_search.search.fidelity import is_final

LEVELS = (1.1, 1.25, 1.5, 2.0, 3.0)  # quality within these multiples of the teacher's
DIRECTIONS = ("minimize", "maximize", "maximize")


@dataclass(frozen=True)
class Best:
    """One measure's best student at one level: its value and trial number."""

    value: float
    trial: int


@dataclass(frozen=True)
class Level:
    """The best students within `level` x the teacher's validation quality."""

    level: float
    students: int
    speedup: Best | None
    model_speedup: Best | None
    compression: Best | None
    peak_ram: Best | None = None  # the least peak RAM (bytes), for device budgets

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def front_pool(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The complete trials one front is made of: the finalists once there are any (trained to
    convergence), else the search trials; a front never mixes the two budgets. Students over
    a device budget were never trained, so they are in no front."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None
                and OVER_BUDGET not in t.user_attrs]
    finals = [t for t in complete if is_final(t)]
    return finals or [t for t in complete if not is_final(t)]


def pareto_front(trials: Sequence[FrozenTrial], feasible_only: bool = True,
                 ) -> list[FrozenTrial]:
    """Optuna's own Pareto front of `trials` (quality down, speed-up and compression up),
    best quality first; with `feasible_only`, of those within the quality constraint."""
    if not trials:
        return []
    study = optuna.create_study(directions=list(DIRECTIONS))
    study.add_trials(trials if feasible_only else [_unconstrained(t) for t in trials])
    # added in order, so the copy numbered i is trials[i]
    return sorted((trials[t.number] for t in study.best_trials), key=lambda t: t.values[0])


def _unconstrained(trial: FrozenTrial) -> FrozenTrial:
    attrs = {k: v for k, v in trial.system_attrs.items() if k != "constraints"}
    return optuna.trial.create_trial(state=trial.state, values=trial.values,
                                     params=trial.params, distributions=trial.distributions,
                                     user_attrs=trial.user_attrs, system_attrs=attrs)


def curve(trials: Sequence[FrozenTrial], teacher_quality: float,
          levels: Sequence[float] = LEVELS) -> list[Level]:
    """The answer: per level, the best speed-up, network speed-up and compression among the
    complete `trials` whose validation quality is within level x `teacher_quality`."""
    rows = []
    for level in levels:
        within = [t for t in trials if t.values is not None
                  and t.values[0] <= level * teacher_quality]
        rows.append(Level(level, len(within),
                          _best(within, lambda t: t.values[1]),
                          _best(within, lambda t: t.user_attrs.get(MODEL_SPEEDUP, math.nan)),
                          _best(within, lambda t: t.values[2]),
                          _least(within, lambda t: t.user_attrs.get("peak_ram", math.nan))))
    return rows


def _best(trials: list[FrozenTrial], measure) -> Best | None:
    scored = [(measure(t), t) for t in trials if math.isfinite(measure(t))]
    if not scored:
        return None
    value, trial = max(scored, key=lambda vt: (vt[0], -vt[1].values[0]))
    return Best(float(value), trial.number)


def _least(trials: list[FrozenTrial], measure) -> Best | None:
    scored = [(measure(t), t) for t in trials if math.isfinite(measure(t))]
    if not scored:
        return None
    value, trial = min(scored, key=lambda vt: (vt[0], vt[1].values[0]))
    return Best(float(value), trial.number)


def pick_finalists(trials: Sequence[FrozenTrial], count: int,
                   teacher_quality: float | None = None) -> list[FrozenTrial]:
    """Up to `count` search trials to train again as the teacher was: the best quality, then
    the students the curve names at each level (fastest, smallest, fastest network), so the
    finalists span the curve from the largest students to the smallest. Levels are measured
    from `teacher_quality`, or from the best student's when that is worse (at the search's
    short budget every student may sit above the teacher's bar)."""
    pool = [t for t in trials if t.state == TrialState.COMPLETE and not is_final(t)
            and OVER_BUDGET not in t.user_attrs]
    if not pool or count <= 0:
        return []
    best = min(pool, key=lambda t: t.values[0])
    reference = max(best.values[0], teacher_quality or 0.0)
    chosen = [best.number]
    for row in curve(pool, reference):
        for named in (row.speedup, row.compression, row.model_speedup):
            if named is not None and named.trial not in chosen:
                chosen.append(named.trial)
    by_number = {t.number: t for t in pool}
    return [by_number[n] for n in chosen[:count]]
