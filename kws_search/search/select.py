"""Choosing a trial from a study and fetching its checkpoint (for export and reports)."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from optuna.trial import FrozenTrial, TrialState

from kws_search.errors import KwsSearchError
from kws_search.options import RULES
from kws_search.search.answer import front_pool, ratio, within_for
from kws_search.search.attrs import CHECKPOINT_ARTIFACT, FAIL_REASON, feasible, study_teacher
from kws_search.search.budgets import OVER_BUDGET


class SelectionError(KwsSearchError, ValueError):
    """No trial fits what was asked; the message says what exists."""


def pick_trial(study: optuna.Study, trial: int | None = None, rule: str = "balanced",
               min_speedup: float = 0.0, min_compression: float = 0.0,
               within: float | None = None) -> FrozenTrial:
    """Trial number `trial`, or the trial a rule prefers among those meeting targets: the
    feasible ones, or with `within`, those within that multiple of the teacher's quality as the
    answer counts them (a finalist by the upper end of its paired 90% interval on test). Only
    students of one budget compete: the finalists once there are any.

    Rules: `fastest` (highest speed-up), `smallest` (highest compression), `best` (lowest
    quality value), `balanced` (highest min(speed-up, compression)); ties go to better quality.
    """
    trials = study.get_trials(deepcopy=False)
    if trial is not None:
        return _named_trial(study.study_name, trials, trial)
    if rule not in RULES:
        raise SelectionError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    if within is not None and not (within > 0 and math.isfinite(within)):
        raise SelectionError(f"--within must be a multiple > 0 of the teacher's quality, "
                             f"got {within}")
    teacher = study_teacher(study).get("val_quality")
    if within is not None and not teacher:
        raise SelectionError(f"study {study.study_name!r} records no teacher quality, so "
                             "--within has nothing to measure against; use --trial N")
    candidates = front_pool(trials)  # never a student over a budget: none was trained

    def allowed(t: FrozenTrial) -> bool:  # --within: as the answer counts (`answer.ratio`)
        return feasible(t) if within is None else ratio(t, teacher)[1] <= within
    pool = [t for t in candidates if allowed(t)
            and t.values[1] >= min_speedup and t.values[2] >= min_compression]
    if not pool:
        where = ("within the study's bar" if within is None
                 else f"within {within:g}x the teacher's quality")
        raise SelectionError(f"no student of study {study.study_name!r} {where} reaches "
                             f"speed-up >= {min_speedup:g} and compression >= "
                             f"{min_compression:g}; {_closest_hint(candidates, teacher)}")
    keys = {"fastest": lambda t: (-t.values[1], t.values[0]),
            "smallest": lambda t: (-t.values[2], t.values[0]),
            "best": lambda t: (t.values[0], -min(t.values[1:])),
            "balanced": lambda t: (-min(t.values[1], t.values[2]), t.values[0])}
    return min(pool, key=keys[rule])


def _named_trial(study_name: str, trials: list[FrozenTrial], number: int) -> FrozenTrial:
    """Trial `number`, when it is complete and was trained."""
    match = [t for t in trials if t.number == number]
    if not match:
        raise SelectionError(f"study {study_name!r} has no trial {number} "
                             f"(it has trials 0..{len(trials) - 1})")
    chosen = match[0]
    if chosen.state != TrialState.COMPLETE:
        reason = chosen.user_attrs.get(FAIL_REASON, "")
        raise SelectionError(f"trial {number} is {chosen.state.name}"
                             f"{f' ({reason})' if reason else ''}; pick a complete trial")
    if OVER_BUDGET in chosen.user_attrs:
        raise SelectionError(f"trial {number} is over the study's budgets "
                             f"({chosen.user_attrs[OVER_BUDGET]}), so it was never "
                             "trained; pick a trial within them")
    return chosen


def _closest_hint(candidates: list[FrozenTrial], teacher: float | None) -> str:
    """The student closest to the teacher and the `--within` that admits it, or what to do
    when there is none."""
    closest = min(candidates, key=lambda t: ratio(t, teacher or 1.0)[1], default=None)
    if closest is None or not teacher:
        return "lower the targets or run more trials"
    times = ratio(closest, teacher)[1]
    return (f"the closest is trial {closest.number} at {times:.2f}x the teacher (speed-up "
            f"{closest.values[1]:.2f}x, compression {closest.values[2]:.2f}x): pass --within "
            f"{within_for(times):g} to choose among students that close, or --trial N")


def fetch_checkpoint(study: optuna.Study, trial: FrozenTrial, dest: Path) -> Path:
    """Download the trial's checkpoint artifact to `dest`."""
    artifact = trial.user_attrs.get(CHECKPOINT_ARTIFACT)
    if not artifact:
        raise SelectionError(f"trial {trial.number} has no checkpoint artifact")
    folder = study.user_attrs.get("artifact_dir")
    if not folder:
        raise SelectionError(f"study {study.study_name!r} records no artifact folder; re-run "
                             "`kws-search run` for it to keep trial checkpoints")
    if not Path(folder).is_dir():
        raise SelectionError(f"artifact folder {folder!r} of study {study.study_name!r} is "
                             "missing; run export where the study's artifacts are")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)  # download_artifact refuses to overwrite
    download_artifact(artifact_store=FileSystemArtifactStore(folder), file_path=str(dest),
                      artifact_id=artifact)
    return dest
