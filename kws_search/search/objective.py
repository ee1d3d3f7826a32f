"""The Optuna objective: suggest, build, train, quantize, measure, record.

`make_objective` takes a `SearchContext` built once per worker (features, teacher, teacher
outputs, teacher measurements), so no trial reloads data or re-runs the teacher.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from kws_search.checkpoint import save_checkpoint
from kws_search.data.features import FeatureSet
from kws_search.data.front_end import FeatureConfig
from kws_search.deploy.latency import hop_latency_us
from kws_search.measure import answer_measures, measure_model, model_cost
from kws_search.models import CRNN, CRNNConfig
from kws_search.quantize import (
    calibrate,
    convert,
    prepare_for_training,
    quantized_modules,
    state_dict_bytes,
)
from kws_search.search.attrs import (
    CHECKPOINT_ARTIFACT,
    CONSTRAINTS_KEY,
    FAIL_REASON,
    PRUNED_AT,
    TRAIN_SECONDS,
    TRAINED_EPOCHS,
    TRAINED_SAMPLES,
)
from kws_search.search.budgets import OVER_BUDGET, UNTRAINED_QUALITY
from kws_search.search.context import SearchContext, StudentFeatures, cross_summary
from kws_search.search.fidelity import (
    FINAL_OF,
    FINAL_STAGE,
    RUNG_PREFIX,
    SEARCH_STAGE,
    STAGE,
    RungJudge,
    Rungs,
)
from kws_search.search.space import SearchSpace
from kws_search.train import NonFiniteLoss, TrainResult, train

logger = logging.getLogger(__name__)


def make_objective(context: SearchContext, space: SearchSpace,
                   after_epoch: Callable[[], None] | None = None,
                   ) -> Callable[[optuna.Trial], tuple[float, float, float]]:
    """The trial function for `study.optimize`; `after_epoch()` runs after every training epoch
    (an exception it raises ends the trial there)."""
    def objective(trial: optuna.Trial) -> tuple[float, float, float]:
        start = time.perf_counter()
        student = plan_student(trial, context, space)
        if record_budgets(trial, context, student):  # never trained: infeasible by its budgets
            trial.set_user_attr(TRAIN_SECONDS, time.perf_counter() - start)
            return UNTRAINED_QUALITY, student.size["speedup"], student.size["compression"]
        model, result = train_through_rungs(trial, context, space.rungs, student, after_epoch,
                                            start)
        calibrated, numbers = quantize_and_measure(context, student, model, result, start)
        return record(trial, context, student, calibrated, numbers)

    return objective


@dataclass
class Student:
    """One trial's student before training: its settings, the features it reads, its float
    twin (what MACs are counted on) and its size (`architecture_size`)."""

    config: Any  # `space.StudentConfig`
    own: StudentFeatures
    float_twin: CRNN
    size: dict[str, float]
    final: bool  # a finalist: trained as the teacher was, judged on test

    @property
    def features(self) -> FeatureSet:
        return self.own.features

    @property
    def per_epoch(self) -> int:
        """Training samples per epoch, whole batches."""
        train = self.config.train
        per_epoch = train.samples_per_epoch or self.features.train.shape[1]
        return max(1, per_epoch // train.batch_size) * train.batch_size


def plan_student(trial: optuna.Trial, context: SearchContext, space: SearchSpace) -> Student:
    """Sample the student and size it. Speed-up and compression follow from the architecture
    alone: known before training, so students stopped at a rung are compared (and reported)
    with them. Latency, when the speed-up or a budget needs it, is timed once, here."""
    config = space.sample(trial)
    final = FINAL_OF in trial.user_attrs
    if final:
        config = replace(config, train=replace(context.final_train, seed=config.train.seed))
    # the teacher's features (an imported teacher's may differ), or the student's own
    own = context.student_features(config.front_end)
    features = own.features.config
    config = replace(config, model=replace(config.model, n_mels=features.n_mels))
    teacher, measures = context.teacher_metrics, context.measures
    size = architecture_size(config.model, config.quant, features, teacher)
    if measures.speed == "model-macs":  # the hand-made searches' measure: the networks alone
        size["speedup"] = size["model_speedup"]
    if measures.speed == "latency" or measures.budgets.latency is not None:
        probe = _calibrated_probe(config.model, config.quant, own.calibration)
        size["hop_us"] = hop_latency_us(probe, config.quant, features, measures.runtime)
    if measures.speed == "latency":  # measured on the untrained model: weights do not count
        size["speedup"] = teacher["hop_us"] / size["hop_us"]
    for key, value in size.items():
        trial.set_user_attr(key, value)
    return Student(config, own, CRNN(config.model), size, final)


def record_budgets(trial: optuna.Trial, context: SearchContext, student: Student) -> str:
    """Which budgets the student breaks ('' when none). A student over one is never trained:
    it is recorded infeasible by the budgets it breaks."""
    budgets = context.measures.budgets
    over = budgets.broken(student.size)
    if over:
        trial.set_user_attr(OVER_BUDGET, over)
        _set_constraint(trial, UNTRAINED_QUALITY - context.quality_bar,
                        budgets.excess(student.size))
    return over


def train_through_rungs(trial: optuna.Trial, context: SearchContext, rungs: Rungs,
                        student: Student, after_epoch: Callable[[], None] | None,
                        start: float) -> tuple[torch.nn.Module, TrainResult]:
    """Train the student; at each rung a search student behind its peers stops there, and is
    recorded infeasible by its quality so far (a pruned trial has no values, so the samplers
    rank it with the students that missed the bar instead of counting it feasible)."""
    config = student.config
    torch.manual_seed(config.train.seed + trial.number)
    model = prepare_for_training(CRNN(config.model), config.quant)
    size = student.size
    judge = RungJudge(trial, rungs, context.quality_bar, size["speedup"],
                      size["compression"]) if rungs.epochs and not student.final else None
    trial.set_user_attr(STAGE, FINAL_STAGE if student.final else SEARCH_STAGE)

    def on_epoch(epoch: int, best_quality: float) -> None:
        if after_epoch is not None:
            after_epoch()
        if judge is not None:
            judge(epoch, best_quality)
    try:
        result = train(model, student.features, config.train, config.distill,
                       context.teacher_outputs, on_epoch=on_epoch)
    except NonFiniteLoss as exc:
        trial.set_user_attr(FAIL_REASON, str(exc))
        raise
    except optuna.TrialPruned:
        stopped_at = trial.user_attrs[PRUNED_AT]
        trial.set_user_attr(TRAIN_SECONDS, time.perf_counter() - start)
        trial.set_user_attr(TRAINED_EPOCHS, stopped_at)
        trial.set_user_attr(TRAINED_SAMPLES, stopped_at * student.per_epoch)
        _set_constraint(trial, trial.user_attrs[f"{RUNG_PREFIX}{stopped_at}"]
                        - context.quality_bar, context.measures.budgets.excess(size))
        raise
    return model, result


def quantize_and_measure(context: SearchContext, student: Student, model: torch.nn.Module,
                         result: TrainResult, start: float,
                         ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Calibrate and convert the trained student to its mode; measure it as it ships (and, for
    a finalist, judge it on the test split against the teacher on the same clips). Returns the
    calibrated model (what its checkpoint stores) and its numbers."""
    config, features = student.config, student.features
    calibrated = calibrate(model, config.quant, student.own.calibration)
    deployed = convert(calibrated, config.quant)
    train_seconds = time.perf_counter() - start
    numbers = measure_model(deployed, student.float_twin, features)
    if student.final:
        numbers.update(answer_measures(deployed, features,
                                       context.teacher_test_probs(student.own.features)))
    if not math.isfinite(numbers["val_quality"]):
        raise NonFiniteLoss(f"validation quality is {numbers['val_quality']}; the student "
                            "diverged")
    numbers.update({
        "float_val_quality": result.best_quality,
        "best_epoch": result.best_epoch,
        "state_dict_bytes": state_dict_bytes(deployed),
        "quant": config.quant,
        "quantized_modules": ",".join(quantized_modules(deployed)) or "-",
        TRAIN_SECONDS: train_seconds,
        # what it was trained on: epochs run (to convergence for a finalist) and samples
        TRAINED_EPOCHS: len(result.history),
        TRAINED_SAMPLES: len(result.history) * student.per_epoch,
        "latency_speedup": context.teacher_metrics["latency_ms"] / numbers["latency_ms"],
    })
    if student.own.cross is not None:  # recorded only: never an objective or the constraint
        cross = cross_summary(deployed, student.own.cross, numbers["threshold"])
        numbers.update({f"cross_{k}": v for k, v in cross.items()})
    return calibrated, numbers


def record(trial: optuna.Trial, context: SearchContext, student: Student,
           calibrated: torch.nn.Module, numbers: dict[str, Any]) -> tuple[float, float, float]:
    """Write the numbers and the constraint on the trial, attach its checkpoint, and return
    the objectives."""
    for key, value in numbers.items():
        trial.set_user_attr(key, value)
    quality, size = numbers["val_quality"], student.size
    _set_constraint(trial, quality - context.quality_bar,
                    context.measures.budgets.excess(size))
    if context.artifact_dir is not None:
        _attach_checkpoint(trial, context, student.features, calibrated, student.config,
                           numbers)
    return quality, size["speedup"], size["compression"]


def architecture_size(config: CRNNConfig, quant: str, features: FeatureConfig,
                      teacher: dict[str, Any]) -> dict[str, float]:
    """A student's cost (`measure.model_cost`: MACs and bytes, its front end apart, peak RAM,
    MACs per second) and its ratios to the teacher's.

    `speedup` (the objective) counts the whole pipeline, front end included, for both;
    `model_speedup` the networks alone. `compression` is of the stored weights; the front
    end's tables (`frontend_bytes`) are the same for both and shown apart.
    """
    size: dict[str, float] = model_cost(config, quant, features).to_dict()
    teacher_total = teacher["macs"] + teacher["frontend_macs"]
    size.update(speedup=teacher_total / (size["macs"] + size["frontend_macs"]),
                model_speedup=teacher["macs"] / size["macs"],
                compression=teacher["bytes"] / size["bytes"])
    return size


def _calibrated_probe(config: CRNNConfig, quant: str, calibration: torch.Tensor) -> CRNN:
    """An untrained student calibrated for its mode: what the latency of an architecture is
    measured on before training."""
    model = prepare_for_training(CRNN(config), quant)
    if quant == "qat":
        with torch.no_grad():
            model(calibration[:16])  # its fake-quant observers need to have seen data
    return calibrate(model.eval(), quant, calibration)


def _set_constraint(trial: optuna.Trial, violation: float, budgets: list[float]) -> None:
    """The quality constraint (<= 0: within the bar), then one per budget (value / budget - 1),
    in the list form that both Optuna's samplers (`FrozenTrial.constraints`) and
    optuna-dashboard (greyed out when infeasible) read; `Trial.set_constraint` writes a keyed
    form that the dashboard does not read."""
    storage = trial.storage
    study_id = storage.get_study_id_from_name(trial.study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    storage.set_trial_system_attr(trial_id, CONSTRAINTS_KEY, [violation, *budgets])


def _attach_checkpoint(trial: optuna.Trial, context: SearchContext, features: FeatureSet,
                       model: torch.nn.Module, config: Any, measures: dict[str, Any]) -> None:
    """Save the student (its calibrated float form) as a checkpoint; attach it to the trial."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"trial-{trial.number}.pt"
        save_checkpoint(path, model, kind="student", model_config=config.model,
                        feature_config=features.config, keyword=features.keyword,
                        dataset_fingerprint=features.fingerprint, quant=config.quant,
                        metrics=measures, extra={"distill": config.distill.to_dict(),
                                                 "train": config.train.to_dict(),
                                                 "trial": trial.number})
        before = set(context.artifact_dir.iterdir())
        try:
            artifact_id = upload_artifact(
                artifact_store=FileSystemArtifactStore(str(context.artifact_dir)),
                file_path=str(path), study_or_trial=trial)
        except OSError:  # disk full or folder gone: leave no half-written checkpoint
            if context.artifact_dir.is_dir():
                for partial in set(context.artifact_dir.iterdir()) - before:
                    partial.unlink(missing_ok=True)
            raise
    trial.set_user_attr(CHECKPOINT_ARTIFACT, artifact_id)
