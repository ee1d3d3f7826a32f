"""A study: its settings, what makes its trials comparable, where it starts, its front.

Re-running the same command resumes the study to the requested number of trials (see
`workers.py`); a study refuses to resume with other data, teacher, features or space, so its
trials are always measured against one thing (`check_identity`).
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from kws_search.checkpoint import read_checkpoint
from kws_search.data.datasets import folder_fingerprint
from kws_search.options import (
    QUALITY_MARGIN,
    RUNTIMES,
    SPEEDS,
    speed_objective,
)
from kws_search.search.answer import front_pool, pareto_front, pick_finalists
from kws_search.search.attrs import DIRECTIONS, FAIL_REASON, OBJECTIVES
from kws_search.search.budgets import OVER_BUDGET, Budgets
from kws_search.search.fidelity import FINAL_OF, finished, is_final
from kws_search.search.samplers import make_sampler
from kws_search.search.settings import DataSettings, Measures, StudySettings, WorkerSettings
from kws_search.search.space import SearchSpace
from kws_search.search.storage import StudyError, masked_url, open_storage

logger = logging.getLogger(__name__)

# Students the study starts with, so the front starts where people got: the teacher's own
# shape with int8 weights (at equal size int8 costs nothing measurable, so it is the first
# point of an honest front), then the seeds' hand-made students (seminar reports), with attention
# distillation at 0.5, which took a 10x student from 2.56x to 1.40x the teacher's quality at
# convergence (bench_student_ceiling). They read the seminar's log-mels (400-point FFT, 40 bands).
HAND_TUNED: tuple[dict[str, Any], ...] = (
    {"cnn_channels": 8, "kernel_freq": 5, "kernel_time": 20, "stride_freq": 2,
     "stride_time": 8, "rnn": "gru", "hidden": 64, "layers": 2, "kd_weight": 0.5,
     "temperature": 6.0, "attn_weight": 0.0, "mode": "int8", "n_fft": 400, "n_mels": 40},
    {"cnn_channels": 3, "kernel_freq": 7, "kernel_time": 20, "stride_freq": 6,
     "stride_time": 10, "rnn": "gru", "hidden": 12, "layers": 2, "kd_weight": 0.8,
     "temperature": 10.0, "attn_weight": 0.5, "mode": "int8", "n_fft": 400,
     "n_mels": 40},
    {"cnn_channels": 4, "kernel_freq": 5, "kernel_time": 20, "stride_freq": 2,
     "stride_time": 8, "rnn": "gru", "hidden": 16, "layers": 1, "kd_weight": 0.8,
     "temperature": 10.0, "attn_weight": 0.5, "mode": "int8", "n_fft": 400,
     "n_mels": 40},
    # 10x fewer network MACs spent on the GRU, not the conv: 1.52x the teacher trained as a
    # finalist, where 6 channels and GRU 12 at the same MACs reach 2.11x (bench_student_ceiling
    # --width-lever; docs/benchmarks.md)
    {"cnn_channels": 2, "kernel_freq": 5, "kernel_time": 20, "stride_freq": 3,
     "stride_time": 10, "rnn": "gru", "hidden": 35, "layers": 1, "kd_weight": 0.5,
     "temperature": 6.0, "attn_weight": 0.5, "lr": 5e-3, "mode": "int8", "n_fft": 400,
     "n_mels": 40},
    # The small end, so every run measures it whatever its sampler draws: one channel with a
    # short time stride and a two-layer GRU (9.6x fewer network MACs and 46x fewer bytes,
    # like the student a search found with --seed 1, 0.55x the teacher on test), and an 18x
    # student (63x fewer bytes) of the same form
    {"cnn_channels": 1, "kernel_freq": 5, "kernel_time": 20, "stride_freq": 2,
     "stride_time": 6, "rnn": "gru", "hidden": 19, "layers": 2, "kd_weight": 0.5,
     "temperature": 6.0, "attn_weight": 0.5, "lr": 5e-3, "mode": "int8", "n_fft": 400,
     "n_mels": 40},
    {"cnn_channels": 1, "kernel_freq": 5, "kernel_time": 20, "stride_freq": 3,
     "stride_time": 8, "rnn": "gru", "hidden": 16, "layers": 2, "kd_weight": 0.5,
     "temperature": 6.0, "attn_weight": 0.5, "lr": 5e-3, "mode": "int8", "n_fft": 400,
     "n_mels": 40},
)

if TYPE_CHECKING:  # the context module builds on this one
    from kws_search.search.context import SearchContext


def open_study(settings: StudySettings, workers: WorkerSettings | None = None,
               heartbeat: bool = True) -> optuna.Study:
    """Create or load the study (same name, same storage = resume); `workers` sets the
    heartbeat that marks a killed worker's trial failed."""
    workers = workers or WorkerSettings()
    sampler = make_sampler(settings.sampler, settings.seed)
    storage = open_storage(settings.storage, heartbeat, workers.heartbeat_interval,
                           workers.grace_period)
    study = optuna.create_study(storage=storage, study_name=settings.name, sampler=sampler,
                                directions=list(DIRECTIONS), load_if_exists=True)
    if [d.name.lower() for d in study.directions] != list(DIRECTIONS):
        raise StudyError(f"study {settings.name!r} in {masked_url(settings.storage)} is not a "
                         "kws-search study (other objectives); choose another --study name")
    if study.metric_names != list(OBJECTIVES):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(OBJECTIVES))
    return study

# What makes a study's trials comparable: fixed when it is created (names for messages)
IDENTITY = {"dataset_fingerprint": "dataset", "teacher_sha256": "teacher", "keyword": "keyword",
            "features": "feature config", "space_params": "search space",
            "speed": "speed objective", "quality_margin": "quality bar (--margin)",
            "cross_fingerprint": "cross-engine folder", "budgets": "budgets"}
# studies made before the front end was counted hold speed-ups of the networks alone
LEGACY_SPEED = speed_objective("model-macs", "")

def study_identity(data: DataSettings, measures: Measures, space: SearchSpace,
                   ) -> dict[str, Any]:
    """The study's identity from the settings, read cheaply (the teacher file names the data
    it was trained on; `load_teacher` later checks the data folder against it)."""
    state = read_checkpoint(data.teacher)
    digest = hashlib.sha256(Path(data.teacher).read_bytes()).hexdigest()
    identity = {"dataset_fingerprint": state.get("dataset_fingerprint"),
                "teacher_sha256": digest, "keyword": data.keyword,
                "features": data.features.to_dict(), "space_params": space.identity(),
                "speed": speed_objective(measures.speed, measures.runtime),
                "quality_margin": measures.margin, "budgets": measures.budgets.to_dict()}
    if data.cross_data is not None:  # the clips the trials' cross numbers are measured on
        identity["cross_fingerprint"] = folder_fingerprint(Path(data.cross_data), data.keyword)
    return json.loads(json.dumps(identity))  # as stored: tuples become lists

def check_identity(study: optuna.Study, identity: dict[str, Any], allow_changes: bool) -> None:
    """Refuse to resume a study with trials measured against other data, teacher, features,
    keyword or space; with `allow_changes`, go on and record what changed. Then store it."""
    stored = dict(study.user_attrs)
    if "space_params" in stored:  # made before these were part of the identity
        stored.setdefault("speed", LEGACY_SPEED)
        stored.setdefault("quality_margin", QUALITY_MARGIN)
        stored.setdefault("budgets", {})
    changed = [k for k in IDENTITY if k in stored and k in identity and stored[k] != identity[k]]
    trials = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
    if changed and trials and not allow_changes:
        what = ", ".join(IDENTITY[k] for k in changed)
        speeds = {speed_objective(s, r): f"--speed {s}" + (f" --runtime {r}" if s == "latency"
                                                           else "")
                  for s in SPEEDS for r in RUNTIMES}
        hint = {"dataset_fingerprint": f" (it holds trials on {stored.get('data', '?')})",
                "teacher_sha256": f" (its teacher: {stored.get('teacher_path', '?')})",
                "speed": f" (its speed-up: {stored.get('speed')}; " + (
                    f"resume it with {speeds[stored['speed']]})" if stored.get("speed") in speeds
                    else "measured on an export this version no longer makes)"),
                "quality_margin": f" (its bar: {stored.get('quality_margin')}x the teacher; "
                                  f"resume it with --margin {stored.get('quality_margin')})",
                "budgets": f" (its budgets: {Budgets(**stored.get('budgets') or {}).describe()};"
                           " resume it with those)",
                "cross_fingerprint": f" (its trials were scored on {stored.get('cross_data', '?')}"
                                     " as that folder was then; resume it with --no-cross-data "
                                     "to score nothing more)"}
        raise StudyError(
            f"study {study.study_name!r} has {len(trials)} trial{'s' if len(trials) != 1 else ''} "
            f"measured with a different {what}"
            f"{''.join(hint.get(k, '') for k in changed[:1])}; use a new --study name, or "
            "--allow-changes to continue it on purpose (the change is recorded)")
    if changed and trials:
        log = list(stored.get("changes", []))
        log.append({"at_trial": len(trials), "changed": [IDENTITY[k] for k in changed]})
        study.set_user_attr("changes", log)
        logger.warning("study %s: continuing with another %s (--allow-changes; recorded in "
                       "its 'changes' attribute)", study.study_name,
                       ", ".join(IDENTITY[k] for k in changed))
    for key, value in identity.items():
        if stored.get(key) != value:
            study.set_user_attr(key, value)

def stored_teacher_hop_us(study: optuna.Study) -> float | None:
    """The teacher's per-hop time the study was made with (`--speed latency`), or None: every
    worker, on any machine and on every resume, divides by this one number."""
    return (study.user_attrs.get("teacher") or {}).get("hop_us")


def record_study_info(study: optuna.Study, data: DataSettings, context: SearchContext,
                      space: SearchSpace) -> None:
    """Teacher numbers, the bar and the setup, as study user attributes (for report, export)."""
    info = {
        "teacher": {k: v for k, v in context.teacher_metrics.items()
                    if isinstance(v, (int, float, str, dict))},
        "quality_bar": context.quality_bar,
        "keyword": data.keyword,
        "data": str(Path(data.root).resolve()),
        "dataset_fingerprint": context.features.fingerprint,
        "teacher_path": str(Path(data.teacher).resolve()),
        "space": space.text,
        "features": data.features.to_dict(),
        "artifact_dir": str(context.artifact_dir.resolve()) if context.artifact_dir else "",
    }
    if context.cross is not None:  # recorded only; absent without --cross-data
        info["cross_data"] = str(Path(context.cross.eval_set.root).resolve())
        info["teacher_cross"] = dict(context.cross.teacher)
    for key, value in info.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)

def seed_hand_tuned(study: optuna.Study, space: SearchSpace) -> int:
    """Enqueue the seeds' hand-tuned students (values the space can hold) into a new study.

    Each queued trial is claimed by exactly one worker: PostgreSQL locks the row, and SQLite
    storages from `open_storage` take the write lock for the claim (`_serialize_sqlite`).
    """
    if study.get_trials(deepcopy=False):
        return 0
    dists = space.distributions()
    queued = 0
    for params in HAND_TUNED:
        fixed = {k: v for k, v in params.items() if k in dists}
        if all(_holds(dists[k], v) for k, v in fixed.items()):
            study.enqueue_trial(fixed, skip_if_exists=True)
            queued += 1
    return queued


def _holds(dist: BaseDistribution, value: Any) -> bool:
    """Whether a distribution of the space can take `value` (a choice, or on its range/step)."""
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if not dist.low <= value <= dist.high:
        return False
    step = getattr(dist, "step", None)
    return step is None or abs((value - dist.low) / step - round((value - dist.low) / step)) < 1e-9


def feasible_front(study: optuna.Study) -> list[FrozenTrial]:
    """Pareto front of the complete, feasible trials (min quality, max speed-up, compression),
    best quality first, of one budget: the finalists once there are any, else the search's.
    Optuna's own front, which leaves out trials whose constraint (the quality bar, set on
    every complete trial) is violated."""
    return pareto_front(front_pool(study.get_trials(deepcopy=False)))


FINALISTS_AFTER = "finalists_after"  # study attr: search trials finished when they were chosen


def queue_finalists(study: optuna.Study, count: int) -> int:
    """Queue up to `count` students of the finished search to be trained again the way the
    teacher was (`answer.pick_finalists`); returns how many are queued now.

    They are chosen once per size of the search: re-running the same command queues none
    (and finishes the ones an interrupted run left), while a search grown with more --trials
    gets the students its new curve names that no finalist trained yet."""
    trials = study.get_trials(deepcopy=False)
    searched = sum(finished(t) for t in trials if not is_final(t))
    done = {t.user_attrs[FINAL_OF] for t in trials if is_final(t)}
    if done and FINALISTS_AFTER not in study.user_attrs:  # chosen before this attr existed
        study.set_user_attr(FINALISTS_AFTER, searched)
    if count <= 0 or study.user_attrs.get(FINALISTS_AFTER) == searched:
        return 0
    teacher = (study.user_attrs.get("teacher") or {}).get("val_quality")
    chosen = [t for t in pick_finalists(trials, count, teacher) if t.number not in done]
    for t in chosen:
        study.enqueue_trial(t.params, user_attrs={FINAL_OF: t.number})
    study.set_user_attr(FINALISTS_AFTER, searched)
    return len(chosen)


@dataclass
class Progress:
    """What the progress bar shows."""

    finals: int = 0  # finalists trained (to convergence), counted apart from the search
    complete: int = 0
    over_budget: int = 0  # of the complete: over a device budget, so never trained
    pruned: int = 0  # stopped at a rung (multi-fidelity); they count towards --trials
    failed: int = 0
    running: int = 0
    front: int = 0
    best_speedup: float = 0.0
    best_compression: float = 0.0
    fail_reasons: collections.Counter = field(default_factory=collections.Counter)

def complete_text(progress: Progress) -> str:
    """'42 complete' or '42 complete (30 over a budget: ended untrained)'."""
    return f"{progress.complete} complete" + (
        f" ({progress.over_budget} over a budget: ended untrained)" if progress.over_budget
        else "")

def progress_of(study: optuna.Study) -> Progress:
    """Counts for the progress bar; failures grouped by kind (reasons that differ only in
    numbers, like the step a loss turned NaN, count as one, shown by their first example)."""
    trials = study.get_trials(deepcopy=False)
    state = Progress()
    examples: dict[str, str] = {}
    for t in trials:
        if t.state == TrialState.COMPLETE and is_final(t):
            state.finals += 1
        elif t.state == TrialState.COMPLETE:
            state.complete += 1
            state.over_budget += OVER_BUDGET in t.user_attrs
        elif finished(t):
            state.pruned += 1
        elif t.state == TrialState.FAIL:
            state.failed += 1
            reason = t.user_attrs.get(FAIL_REASON, "unknown (worker died?)")
            state.fail_reasons[examples.setdefault(_reason_kind(reason), reason)] += 1
        elif t.state == TrialState.RUNNING:
            state.running += 1
    front = feasible_front(study)
    state.front = len(front)
    state.best_speedup = max((t.values[1] for t in front), default=0.0)
    state.best_compression = max((t.values[2] for t in front), default=0.0)
    return state

def _reason_kind(reason: str) -> str:
    """A failure reason with its numbers blanked, to group reasons of one kind."""
    return re.sub(r"\b\d+(\.\d+)?(e[-+]?\d+)?\b", "#", reason)
