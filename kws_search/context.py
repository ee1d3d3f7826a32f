"""The search context: what every trial of a worker shares, built once per worker.

Features (from the cache), the teacher and its numbers, its outputs over the train copies
(cached beside the features), calibration clips for static quantization, and the cross-engine
clips when given: no trial reloads data or re-runs the teacher.
"""

from __future__ import annotations

import logging
import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from kws_search.checkpoint import read_checkpoint
from kws_search.distill import TeacherOutputs, teacher_outputs
from kws_search.errors import ConfigError
from kws_search.evaluate import eval_features, load_eval_set
from kws_search.features import FeatureSet, front_end_problem, prepare_feature_sets
from kws_search.latency import hop_latency_us
from kws_search.measure import (
    bootstrap_interval,
    frontend_bytes,
    frontend_macs,
    predict_deployed,
)
from kws_search.objective import CrossSet, SearchContext, StudentFeatures, cross_summary
from kws_search.search_space import load_space
from kws_search.storage import artifact_dir_for
from kws_search.study import RunSettings
from kws_search.teacher import CONVERGED, load_teacher
from kws_search.train import TrainConfig

logger = logging.getLogger(__name__)

CALIBRATION_CLIPS = 512

def build_context(settings: RunSettings, progress: bool = True) -> SearchContext:
    """Features, teacher, teacher outputs and calibration clips: once per worker; and the
    same for every front end of its own that the space lets a student choose."""
    fronts = [c for c in load_space(settings.space).front_ends(settings.features)
              if c != settings.features]
    for config in fronts:
        problem = front_end_problem(config)
        if problem:  # the space was checked against the default hop; these are the run's
            raise ConfigError(f"front end n_fft {config.n_fft}, n_mels {config.n_mels}: "
                              f"{problem}")
    features, *own = prepare_feature_sets(settings.data, settings.keyword,
                                          [settings.features, *fronts], settings.cache_dir,
                                          progress=progress)
    teacher, metrics = load_teacher(settings.teacher, features)
    metrics = _with_quality_interval(metrics, teacher, features)
    metrics.update(frontend_macs=frontend_macs(teacher.config, features.config),
                   frontend_bytes=frontend_bytes(features.config))
    if settings.speed == "latency":
        metrics["hop_us"] = hop_latency_us(teacher, "none", features.config, settings.runtime)
        logger.info("teacher: %.1f us per hop in %s", metrics["hop_us"], settings.runtime)
    outputs = _cached_teacher_outputs(teacher, features, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    pick = torch.randperm(features.train.shape[1], generator=generator)[:CALIBRATION_CLIPS]
    artifacts = _ensure_dir(settings.artifact_dir
                            or artifact_dir_for(settings.storage, settings.study))
    cross, crosses = None, {}
    if settings.cross_data is not None:
        cross = _cross_set(settings, teacher, metrics.get("threshold", 0.5))
        for config in fronts:
            crosses[config] = replace(cross, features=eval_features(cross.eval_set, config))
    students = {}
    for config, student in zip(fronts, own, strict=True):
        students[config] = StudentFeatures(student, student.train[0, pick].float(),
                                           crosses.get(config))
    return SearchContext(features, outputs, metrics, features.train[0, pick].float(), artifacts,
                         cross, speed=settings.speed, runtime=settings.runtime,
                         margin=settings.margin, front_ends=students,
                         final_train=teacher_recipe(settings.teacher))


def teacher_recipe(path: Path) -> TrainConfig:
    """How the teacher at `path` was trained (finalists train the same way); the converged
    recipe for a teacher that does not say (an imported one)."""
    stored = read_checkpoint(path).get("extra", {}).get("train")
    if not stored:
        return CONVERGED
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in stored.items() if k in known})

def _with_quality_interval(metrics: dict[str, Any], teacher: torch.nn.Module,
                           features: FeatureSet) -> dict[str, Any]:
    """Teacher metrics with the validation interval; teachers saved before it was measured
    get it here (one pass over the validation split)."""
    if "val_quality_lo" in metrics:
        return metrics
    labels = features.validation_labels.numpy()
    lo, hi = bootstrap_interval(predict_deployed(teacher, features.validation), labels)
    return {**metrics, "val_quality_lo": lo, "val_quality_hi": hi}

def _cross_set(settings: RunSettings, teacher: torch.nn.Module, threshold: float) -> CrossSet:
    """The cross-engine clips, their features, and the teacher's numbers on them."""
    eval_set = load_eval_set(settings.cross_data, settings.keyword, settings.features)
    cross = CrossSet(eval_set, eval_features(eval_set, settings.features), {})
    cross = replace(cross, teacher=cross_summary(teacher, cross, threshold))
    logger.info("cross-engine set %s: %d clips, teacher quality %.3e", eval_set.describe(),
                len(eval_set.paths), cross.teacher["quality"])
    return cross

def _ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path

def _cached_teacher_outputs(teacher: torch.nn.Module, features: Any,
                            settings: RunSettings) -> TeacherOutputs:
    """Teacher outputs over the cached train copies, saved beside the feature cache."""
    stamp = int(settings.teacher.stat().st_mtime_ns)
    path = settings.cache_dir / f"teacher-outputs-{features.fingerprint[:12]}-{stamp}.pt"
    if path.is_file():
        try:
            state = torch.load(path, weights_only=True)
            return TeacherOutputs(state["logits"], state["attention"])
        except Exception as exc:  # truncated or foreign: say which file, then rebuild it
            logger.warning("teacher outputs cache %s is unreadable (%s); rebuilding it", path,
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    outputs = teacher_outputs(teacher, features.train)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"logits": outputs.logits, "attention": outputs.attention}, tmp)
    os.replace(tmp, path)
    return outputs
