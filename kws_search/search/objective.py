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
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from kws_search.checkpoint import save_checkpoint
from kws_search.data.features import FeatureSet
from kws_search.data.front_end import FeatureConfig
from kws_search.deploy.latency import hop_latency_us
from kws_search.measure import (
    answer_measures,
    count_macs,
    frontend_bytes,
    frontend_macs,
    macs_per_second,
    measure_model,
)
from kws_search.memory import peak_ram_bytes
from kws_search.models import CRNN, CRNNConfig
from kws_search.quantize import (
    calibrate,
    convert,
    prepare_for_training,
    quantized_modules,
    quantized_structure,
    state_dict_bytes,
    stored_bytes,
)
from kws_search.search.attrs import (
    BUDGET_EPOCHS,
    BUDGET_SAMPLES,
    CHECKPOINT_ARTIFACT,
    CONSTRAINTS_KEY,
    FAIL_REASON,
    TRAIN_SECONDS,
)
from kws_search.search.budgets import OVER_BUDGET, UNTRAINED_QUALITY, Budgets
from kws_search.search.context import SearchContext, cross_summary
from kws_search.search.fidelity import (
    FINAL_OF,
    FINAL_STAGE,
    RUNG_PREFIX,
    SEARCH_STAGE,
    STAGE,
    RungJudge,
)
from kws_search.search.space import SearchSpace
from kws_search.train import NonFiniteLoss, train

logger = logging.getLogger(__name__)



def make_objective(context: SearchContext, space: SearchSpace,
                   after_epoch: Callable[[], None] | None = None,
                   ) -> Callable[[optuna.Trial], tuple[float, float, float]]:
    """The trial function for `study.optimize`; `after_epoch()` runs after every training epoch
    (an exception it raises ends the trial there)."""
    teacher = context.teacher_metrics
    rungs = space.rungs

    def objective(trial: optuna.Trial) -> tuple[float, float, float]:
        config = space.sample(trial)
        final = FINAL_OF in trial.user_attrs  # a finalist: trained as the teacher was
        if final:
            config = replace(config, train=replace(context.final_train,
                                                   seed=config.train.seed))
        # the teacher's features (an imported teacher's may differ), or the student's own
        own = context.student_features(config.front_end)
        features = own.features
        config = replace(config, model=replace(config.model, n_mels=features.config.n_mels))
        start = time.perf_counter()
        # speed-up and compression follow from the architecture alone: known before training,
        # so students stopped at a rung are compared (and reported) with them
        float_twin = CRNN(config.model)
        size = architecture_size(float_twin, config.quant, features.config, teacher)
        speed, budgets = context.measures.speed, context.measures.budgets
        if speed == "model-macs":  # the seeds' measure: the networks alone
            size["speedup"] = size["model_speedup"]
        if speed == "latency":  # measured on the untrained model: weights do not count
            probe = _calibrated_probe(config.model, config.quant, own.calibration)
            size["hop_us"] = hop_latency_us(probe, config.quant, features.config,
                                            context.measures.runtime)
            size["speedup"] = teacher["hop_us"] / size["hop_us"]
        for key, value in size.items():
            trial.set_user_attr(key, value)
        over = _over_budget(trial, budgets, size, config, own, context.measures.runtime)
        if over:  # never trained: ends now, infeasible by the budgets it breaks
            trial.set_user_attr(TRAIN_SECONDS, time.perf_counter() - start)
            _set_constraint(trial, UNTRAINED_QUALITY - context.quality_bar,
                            budgets.excess(size))
            return UNTRAINED_QUALITY, size["speedup"], size["compression"]
        torch.manual_seed(config.train.seed + trial.number)
        student = prepare_for_training(CRNN(config.model), config.quant)
        judge = RungJudge(trial, rungs, context.quality_bar, size["speedup"],
                          size["compression"]) if rungs.epochs and not final else None
        trial.set_user_attr(STAGE, FINAL_STAGE if final else SEARCH_STAGE)
        per_epoch = config.train.samples_per_epoch or features.train.shape[1]
        per_epoch = max(1, per_epoch // config.train.batch_size) * config.train.batch_size

        def on_epoch(epoch: int, best_quality: float) -> None:
            if after_epoch is not None:
                after_epoch()
            if judge is not None:
                judge(epoch, best_quality)
        try:
            result = train(student, features, config.train, config.distill,
                           context.teacher_outputs, on_epoch=on_epoch)
        except NonFiniteLoss as exc:
            trial.set_user_attr(FAIL_REASON, str(exc))
            raise
        except optuna.TrialPruned:
            stopped_at = trial.user_attrs["pruned_at_epoch"]
            trial.set_user_attr(TRAIN_SECONDS, time.perf_counter() - start)
            trial.set_user_attr(BUDGET_EPOCHS, stopped_at)
            trial.set_user_attr(BUDGET_SAMPLES, stopped_at * per_epoch)
            # infeasible by its quality so far, so samplers rank it with the students that
            # missed the bar instead of counting it feasible (a pruned trial has no values)
            _set_constraint(trial, trial.user_attrs[f"{RUNG_PREFIX}{stopped_at}"]
                            - context.quality_bar, budgets.excess(size))
            raise
        calibrated = calibrate(student, config.quant, own.calibration)
        deployed = convert(calibrated, config.quant)
        train_seconds = time.perf_counter() - start
        measures = measure_model(deployed, float_twin, features)
        if final:  # the answer: on the test split, against the teacher on the same clips
            measures.update(answer_measures(deployed, features,
                                            context.teacher_test_probs(own.features)))
        quality, threshold = measures["val_quality"], measures["threshold"]
        if not math.isfinite(quality):
            raise NonFiniteLoss(f"validation quality is {quality}; the student diverged")
        measures.update({
            "float_val_quality": result.best_quality,
            "best_epoch": result.best_epoch,
            "state_dict_bytes": state_dict_bytes(deployed),
            "quant": config.quant,
            "quantized_modules": ",".join(quantized_modules(deployed)) or "-",
            TRAIN_SECONDS: train_seconds,
            # what it was trained on: epochs run (to convergence for a finalist) and samples
            BUDGET_EPOCHS: len(result.history),
            BUDGET_SAMPLES: len(result.history) * per_epoch,
        })
        speedup, compression = size["speedup"], size["compression"]
        measures.update(latency_speedup=teacher["latency_ms"] / measures["latency_ms"])
        if own.cross is not None:  # recorded only: never an objective or the constraint
            cross = cross_summary(deployed, own.cross, threshold)
            measures.update({f"cross_{k}": v for k, v in cross.items()})
        for key, value in measures.items():
            trial.set_user_attr(key, value)
        _set_constraint(trial, quality - context.quality_bar, budgets.excess(size))
        if context.artifact_dir is not None:
            _attach_checkpoint(trial, context, features, calibrated, config, measures)
        return quality, speedup, compression

    return objective


def architecture_size(float_model: CRNN, quant: str, features: FeatureConfig,
                      teacher: dict[str, Any]) -> dict[str, float]:
    """MACs and bytes of a student, its front end apart, and its ratios to the teacher's.

    `speedup` (the objective) counts the whole pipeline, front end included, for both;
    `model_speedup` the networks alone. `compression` is of the stored weights; the front
    end's tables (`frontend_bytes`) are the same for both and shown apart.
    """
    config = float_model.config
    size: dict[str, float] = {
        "macs": count_macs(float_model, features.n_mels, features.frames),
        "frontend_macs": frontend_macs(config, features),
        "bytes": stored_bytes(quantized_structure(config, quant)),
        "frontend_bytes": frontend_bytes(features),
        "peak_ram": peak_ram_bytes(config, features)}
    size["macs_per_second"] = macs_per_second(size["macs"] + size["frontend_macs"], features)
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


def _over_budget(trial: optuna.Trial, budgets: Budgets, size: dict[str, float], config: Any,
                 own: Any, runtime: str) -> str:
    """Which budgets the student breaks ('' when none), recorded on the trial; a latency
    budget times the untrained student first (unless the speed-up already did)."""
    if budgets.latency is not None and "hop_us" not in size:
        probe = _calibrated_probe(config.model, config.quant, own.calibration)
        size["hop_us"] = hop_latency_us(probe, config.quant, own.features.config, runtime)
        trial.set_user_attr("hop_us", size["hop_us"])
    over = budgets.broken(size)
    if over:
        trial.set_user_attr(OVER_BUDGET, over)
    return over


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
