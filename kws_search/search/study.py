"""A study: opening it, what makes its trials comparable (its identity), what it records about
its inputs. What it queues is `queue.py`; where it stands, `progress.py`.

Re-running the same command resumes the study to the requested number of trials (see
`workers.py`); a study refuses to resume with other data, teacher, features or space, so its
trials are always measured against one thing (`check_identity`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from kws_search.checkpoint import read_checkpoint
from kws_search.data.datasets import folder_fingerprint
from kws_search.options import (
    QUALITY_MARGIN,
    RUNTIMES,
    SPEEDS,
    speed_objective,
)
from kws_search.search.attrs import DIRECTIONS, OBJECTIVES, TEACHER, study_teacher
from kws_search.search.budgets import Budgets
from kws_search.search.samplers import make_sampler
from kws_search.search.settings import DataSettings, Measures, StudySettings, WorkerSettings
from kws_search.search.space import SearchSpace
from kws_search.search.storage import StudyError, masked_url, open_storage

logger = logging.getLogger(__name__)

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
    return study_teacher(study).get("hop_us")


def record_study_info(study: optuna.Study, data: DataSettings, context: SearchContext,
                      space: SearchSpace) -> None:
    """Teacher numbers, the bar and the setup, as study user attributes (for report, export)."""
    info = {
        TEACHER: {k: v for k, v in context.teacher_metrics.items()
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
