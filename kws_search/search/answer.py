"""The answer a study gives: how much faster and smaller a student is at a given quality.

For each quality level (a multiple of the teacher's quality) the curve names the student with
the best speed-up (the whole pipeline, front end included, as the study counts it), the best
speed-up of the networks alone (what the hand-made searches reported), and the best
compression, among the students within that level. Pure functions over Optuna trials, so the
search (choosing finalists), `run`, `report` and `export` read one curve.

A finalist is judged on the test split, which no decision saw, by its quality over the
teacher's on the same clips with a paired 90% interval (`measure.paired_ratio`): it counts at
a level only when the upper end of that interval is within it ("within 1.1x with 90%
confidence"). One within by its point estimate alone is counted apart (`likely`). Search
trials, which are never scored on test, are placed by validation quality over the teacher's
(a point estimate: how finalists are chosen).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from kws_search.search.attrs import CONSTRAINTS_KEY, DIRECTIONS, MODEL_SPEEDUP, RATIO, RATIO_HI
from kws_search.search.budgets import OVER_BUDGET
from kws_search.search.fidelity import is_final

LEVELS = (1.1, 1.25, 1.5, 2.0, 3.0)  # quality within these multiples of the teacher's


@dataclass(frozen=True)
class Best:
    """One measure's best student at one level: its value and trial number."""

    value: float
    trial: int


@dataclass(frozen=True)
class Level:
    """The best students within `level` x the teacher's validation quality."""

    level: float
    students: int  # within the level (for finalists: the upper end of the interval)
    speedup: Best | None
    model_speedup: Best | None
    compression: Best | None
    peak_ram: Best | None = None  # the least peak RAM (bytes), for device budgets
    likely: int = 0  # within by the point estimate alone, not counted above

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def front_pool(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The complete trials one front is made of: the finalists once there are any (trained to
    convergence), else the search trials; a front never mixes the two training lengths.
    Students over a device budget were never trained, so they are in no front."""
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
    attrs = {k: v for k, v in trial.system_attrs.items() if k != CONSTRAINTS_KEY}
    return optuna.trial.create_trial(state=trial.state, values=trial.values,
                                     params=trial.params, distributions=trial.distributions,
                                     user_attrs=trial.user_attrs, system_attrs=attrs)


def ratio(trial: FrozenTrial, teacher_quality: float) -> tuple[float, float]:
    """(point, upper end) of `trial`'s quality over the teacher's: a finalist's paired test
    ratio and the upper end of its 90% interval, or, for a trial not judged on test, its
    validation quality over `teacher_quality` (the teacher's validation quality) twice."""
    attrs = trial.user_attrs
    if RATIO in attrs and RATIO_HI in attrs and math.isfinite(attrs[RATIO_HI]):
        return float(attrs[RATIO]), float(attrs[RATIO_HI])
    point = trial.values[0] / teacher_quality
    return point, point


def within_for(times_teacher: float) -> float:
    """The `export --within` that admits a student `times_teacher` the teacher's quality (the
    upper end of its ratio): that multiple rounded up to a tenth."""
    return math.ceil(times_teacher * 10) / 10


def curve(trials: Sequence[FrozenTrial], teacher_quality: float,
          levels: Sequence[float] = LEVELS) -> list[Level]:
    """The answer: per level, the best speed-up, network speed-up and compression among the
    complete `trials` within that multiple of the teacher's quality (`ratio`: the upper end of
    a finalist's interval; validation over `teacher_quality` for a search trial)."""
    judged = [(t, *ratio(t, teacher_quality)) for t in trials if t.values is not None]
    rows = []
    for level in levels:
        within = [t for t, _, upper in judged if upper <= level]
        likely = sum(point <= level < upper for _, point, upper in judged)
        rows.append(Level(level, len(within),
                          _best(within, lambda t: t.values[1]),
                          _best(within, lambda t: t.user_attrs.get(MODEL_SPEEDUP, math.nan)),
                          _best(within, lambda t: t.values[2]),
                          _least(within, lambda t: t.user_attrs.get("peak_ram", math.nan)),
                          likely))
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
    the best quality in each size band (network speed-up 2x apart), the small end first, then
    the students the curve names, so the finalists cover the sizes from the largest students
    to the smallest whatever the search drew most. Candidates are within the curve's widest
    level of `teacher_quality`, or of the best student's when that is worse (at the search's
    short budget every student may sit above the teacher's bar).

    The best of a band, not its smallest student within a level: on noisy validation the
    smallest student that scores within a level is the one most likely to have done so by luck.
    """
    pool = [t for t in trials if t.state == TrialState.COMPLETE and not is_final(t)
            and OVER_BUDGET not in t.user_attrs]
    if not pool or count <= 0:
        return []
    best = min(pool, key=lambda t: t.values[0])
    reference = max(best.values[0], teacher_quality or 0.0)
    candidates = [t for t in pool if t.values[0] <= LEVELS[-1] * reference]
    chosen = [best.number]
    bands: dict[int, FrozenTrial] = {}
    for t in candidates:
        band = math.floor(math.log2(max(1.0, _network_speedup(t))))
        if band not in bands or t.values[0] < bands[band].values[0]:
            bands[band] = t
    for band in sorted(bands, reverse=True):
        if bands[band].number not in chosen:
            chosen.append(bands[band].number)
    for row in curve(pool, reference):
        for named in (row.speedup, row.compression, row.model_speedup):
            if named is not None and named.trial not in chosen:
                chosen.append(named.trial)
    by_number = {t.number: t for t in pool}
    return [by_number[n] for n in chosen[:count]]


def _network_speedup(trial: FrozenTrial) -> float:
    value = trial.user_attrs.get(MODEL_SPEEDUP)
    return float(value) if value is not None and math.isfinite(value) else trial.values[1]
