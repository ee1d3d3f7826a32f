"""The search context: what every trial of a worker shares, built once per worker.

Features (from the cache), the teacher and its numbers, its outputs over the train copies
(cached beside the features), calibration clips for static quantization, and the cross-engine
clips when given: no trial reloads data or re-runs the teacher.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kws_search.checkpoint import read_checkpoint
from kws_search.data.features import FeatureSet, prepare_feature_sets
from kws_search.data.front_end import FeatureConfig, front_end_problem
from kws_search.deploy.latency import hop_latency_us
from kws_search.distill import TeacherOutputs, teacher_outputs
from kws_search.errors import ConfigError, KwsSearchError
from kws_search.evaluate import EvalSet, eval_features, load_eval_set, summarize
from kws_search.files import write_atomic
from kws_search.measure import (
    bootstrap_interval,
    model_cost,
    predict_deployed,
    teacher_answer,
)
from kws_search.search.settings import DataSettings, Measures, StudySettings
from kws_search.search.space import FrontEnd, load_space
from kws_search.search.storage import artifact_dir_for
from kws_search.teacher import CONVERGED, load_teacher
from kws_search.train import TrainConfig

logger = logging.getLogger(__name__)

CALIBRATION_CLIPS = 512


@dataclass(frozen=True)
class CrossSet:
    """Clips of another speech synthesizer (voices nobody trains on), scored for the record.

    Never used for training, validation, selection, the objectives or the constraint.
    """

    eval_set: EvalSet
    features: torch.Tensor  # [clips, n_mels, frames]
    teacher: dict[str, float]  # `cross_summary` of the teacher at its own threshold


def cross_summary(model: torch.nn.Module, cross: CrossSet, threshold: float) -> dict[str, float]:
    """Quality, normalized quality, detected share of keyword clips and FA rate of `model` on
    the cross set, detecting at `threshold` (the model's own, from validation)."""
    result = summarize(predict_deployed(model, cross.features), cross.eval_set, threshold)
    return {"quality": result["quality"], "quality_norm": result["quality_norm"],
            "detected": result["detected"] / max(1, result["keyword_clips"]),
            "fa": result["fa"]}


@dataclass
class SearchContext:
    """What every trial shares; built once per worker process."""

    features: FeatureSet
    teacher: torch.nn.Module
    teacher_outputs: TeacherOutputs
    teacher_metrics: dict[str, Any]
    calibration: torch.Tensor  # [clips, n_mels, frames] for static quantization
    artifact_dir: Path | None = None  # trial checkpoints go here (an Optuna artifact store)
    cross: CrossSet | None = None  # recorded only (`run --cross-data`)
    measures: Measures = field(default_factory=Measures)  # the speed-up measure, the bar
    # students' own front ends (the space's `front_end`): their features, calibration clips
    # and cross-engine clips, by feature settings; the teacher's own are the fields above
    front_ends: dict[FeatureConfig, StudentFeatures] = field(default_factory=dict)
    # how finalists train: the teacher's own recipe (to convergence), read from its checkpoint
    final_train: TrainConfig = field(default_factory=TrainConfig)

    # the teacher's keyword probabilities on the test split, predicted on first use (only
    # finalists are judged there)
    _test_probs: np.ndarray | None = field(default=None, repr=False)

    def teacher_test_probs(self, features: FeatureSet) -> np.ndarray:
        """The teacher's keyword probabilities on the test split of `features` (a student's
        own front end has the same clips in the same order), for paired answers."""
        if self._test_probs is None:
            self._test_probs = predict_deployed(self.teacher, self.features.test)
        if self._test_probs.shape[0] != features.test.shape[0]:
            raise KwsSearchError("a front end's test split differs from the teacher's")
        return self._test_probs

    @property
    def quality_bar(self) -> float:
        return self.measures.margin * self.teacher_metrics["val_quality"]

    def student_features(self, front_end: FrontEnd) -> StudentFeatures:
        """What a student with `front_end` trains, calibrates and is scored on."""
        config = front_end.features(self.features.config)
        if config == self.features.config:
            return StudentFeatures(self.features, self.calibration, self.cross)
        if config not in self.front_ends:
            raise KwsSearchError(f"no features for front end n_fft {config.n_fft}, n_mels "
                                 f"{config.n_mels}; this worker was built for another space")
        return self.front_ends[config]


@dataclass(frozen=True)
class StudentFeatures:
    """A front end's features over the same train copies as the teacher's, its calibration
    clips (the same clips) and its cross-engine clips (None without --cross-data)."""

    features: FeatureSet
    calibration: torch.Tensor
    cross: CrossSet | None


def build_context(data: DataSettings, study: StudySettings, progress: bool = True,
                  teacher_hop_us: float | None = None) -> SearchContext:
    """Features, teacher, teacher outputs and calibration clips: once per worker; and the
    same for every front end of its own that the space lets a student choose."""
    fronts = [c for c in load_space(study.space).front_ends(data.features)
              if c != data.features]
    for config in fronts:
        problem = front_end_problem(config)
        if problem:  # the space was checked against the default hop; these are the run's
            raise ConfigError(f"front end n_fft {config.n_fft}, n_mels {config.n_mels}: "
                              f"{problem}")
    features, *own = prepare_feature_sets(data.root, data.keyword, [data.features, *fronts],
                                          data.cache_dir, progress=progress)
    teacher, metrics = load_teacher(data.teacher, features)
    metrics = _with_quality_interval(metrics, teacher, features)
    # the teacher's cost as the students' is computed (a checkpoint may predate a measure)
    metrics.update(model_cost(teacher.config, "none", features.config).to_dict())
    measures = study.measures
    if measures.speed == "latency":  # timed once per study: `teacher_hop_us` once it has it
        metrics["hop_us"] = teacher_hop_us or hop_latency_us(teacher, "none", features.config,
                                                             measures.runtime)
        logger.info("teacher: %.1f us per hop in %s", metrics["hop_us"], measures.runtime)
    outputs = _cached_teacher_outputs(teacher, features, data)
    generator = torch.Generator().manual_seed(study.seed)
    pick = torch.randperm(features.train.shape[1], generator=generator)[:CALIBRATION_CLIPS]
    artifacts = _ensure_dir(study.artifact_dir or artifact_dir_for(study.storage, study.name))
    cross, crosses = None, {}
    if data.cross_data is not None:
        cross = _cross_set(data, teacher, metrics.get("threshold", 0.5))
        for config in fronts:
            crosses[config] = replace(cross, features=eval_features(cross.eval_set, config))
    students = {}
    for config, student in zip(fronts, own, strict=True):
        students[config] = StudentFeatures(student, student.train[0, pick].float(),
                                           crosses.get(config))
    context = SearchContext(features, teacher, outputs, metrics, features.train[0, pick].float(),
                            artifacts, cross, measures=measures, front_ends=students,
                            final_train=teacher_recipe(data.teacher))
    if "test_clips" not in metrics or (features.test_engines is not None and not metrics.get(
            "test_quality_by_engine")):  # a teacher saved before the answer was judged so
        metrics.update(teacher_answer(context.teacher_test_probs(features),
                                      features.test_labels.numpy(), features.test_engines))
    return context


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


def _cross_set(data: DataSettings, teacher: torch.nn.Module, threshold: float) -> CrossSet:
    """The cross-engine clips, their features, and the teacher's numbers on them."""
    eval_set = load_eval_set(data.cross_data, data.keyword, data.features)
    cross = CrossSet(eval_set, eval_features(eval_set, data.features), {})
    cross = replace(cross, teacher=cross_summary(teacher, cross, threshold))
    logger.info("cross-engine set %s: %d clips, teacher quality %.3e", eval_set.describe(),
                len(eval_set.paths), cross.teacher["quality"])
    return cross


def _ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached_teacher_outputs(teacher: torch.nn.Module, features: Any,
                            data: DataSettings) -> TeacherOutputs:
    """Teacher outputs over the cached train copies, saved beside the feature cache."""
    stamp = int(Path(data.teacher).stat().st_mtime_ns)
    path = Path(data.cache_dir) / f"teacher-outputs-{features.fingerprint[:12]}-{stamp}.pt"
    if path.is_file():
        try:
            state = torch.load(path, weights_only=True)
            return TeacherOutputs(state["logits"], state["attention"])
        except Exception as exc:  # truncated or foreign: say which file, then rebuild it
            logger.warning("teacher outputs cache %s is unreadable (%s); rebuilding it", path,
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    outputs = teacher_outputs(teacher, features.train)
    write_atomic(path, lambda tmp: torch.save({"logits": outputs.logits,
                                               "attention": outputs.attention}, tmp))
    return outputs
