"""Training, saving and reusing the teacher (the base CRNN of the course seminar)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from kws_search.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from kws_search.data.features import FeatureSet
from kws_search.data.front_end import FeatureConfig
from kws_search.distill import DistillConfig, TeacherOutputs, teacher_outputs
from kws_search.errors import ConfigError
from kws_search.measure import (
    au_fa_fr,
    measure_teacher,
    predict,
)
from kws_search.models import CRNN, CRNNConfig
from kws_search.train import TrainConfig, TrainResult, train

logger = logging.getLogger(__name__)


# The default teacher trains to convergence: the rate halves when validation stalls for 4
# epochs, and training stops at the 4th stall (see TrainConfig.patience). The augmented copies
# already vary it; SpecAugment on top made it 2.4x worse on validation (3.6e-4 against 1.5e-4)
# and worse on the cross-engine folder too.
CONVERGED = TrainConfig(epochs=80, lr=2e-3, patience=4, lr_drops=3, spec_augment=False)
# The course seminar's recipe, kept to reproduce the hand-made searches: stops still learning.
SEMINAR = TrainConfig()
RECIPES = {"converged": CONVERGED, "seminar": SEMINAR}
# The default teacher is the task's base model trained once, to convergence: the bar students
# are held to is then a model of the teacher's own shape and recipe, which a student trained the
# same way can reach. `members` > 1 distils it from the mean of that many copies (ensemble
# distillation: better on validation, though not on other engines' voices); the teacher's
# metrics record `members`, so a study shows which teacher set its bar.
MEMBERS = 1
ENSEMBLE_DISTILL = DistillConfig(kd_weight=0.7, temperature=2.0)


class TeacherMismatch(CheckpointError):
    """The teacher on disk was trained on another dataset or other features."""


def train_teacher(features: FeatureSet, path: Path, model_config: CRNNConfig = CRNNConfig(),
                  train_config: TrainConfig = CONVERGED, progress: bool = True,
                  members: int = MEMBERS) -> tuple[CRNN, dict[str, Any]]:
    """Train the teacher on `features`, save it to `path` with its metrics, return both.

    With `members` > 1, that many copies train first (seeds seed, seed + 1, ...) and the
    teacher is one more model of `model_config` distilled from their mean probabilities.
    """
    if members < 1:
        raise ConfigError(f"teacher members must be >= 1, got {members}")
    start = time.perf_counter()
    target, member_quality = None, []
    if members > 1:
        copies = train_copies(features, model_config, train_config, members, progress)
        target = ensemble_target(copies, features.train)
        val_x, val_y = features.split("validation")
        member_quality = [au_fa_fr(predict(m, val_x), val_y.numpy()) for m in copies]
    model, result = fit(features, model_config, train_config, target, progress,
                        "teacher" if members == 1 else "teacher (distilled)")
    metrics = measure_teacher(model, features)
    metrics.update(train_seconds=time.perf_counter() - start, best_epoch=result.best_epoch,
                   members=members, member_val_quality=member_quality)
    extra = {"train": train_config.to_dict(), "history": result.history, "members": members}
    if target is not None:
        extra["distill"] = ENSEMBLE_DISTILL.to_dict()
    save_checkpoint(path, model, kind="teacher", model_config=model_config,
                    feature_config=features.config, keyword=features.keyword,
                    dataset_fingerprint=features.fingerprint, metrics=metrics, extra=extra)
    logger.info("teacher saved to %s: val %.3e test %.3e", path, metrics["val_quality"],
                metrics["test_quality"])
    return model, metrics


def fit(features: FeatureSet, model_config: CRNNConfig, train_config: TrainConfig,
        target: TeacherOutputs | None = None, progress: bool = True, desc: str = "teacher",
        ) -> tuple[CRNN, TrainResult]:
    """A model of `model_config` from `train_config.seed`, trained on the labels and, when
    `target` is given, distilled from it (ENSEMBLE_DISTILL)."""
    torch.manual_seed(train_config.seed)
    model = CRNN(model_config)
    result = train(model, features, train_config, ENSEMBLE_DISTILL if target else None, target,
                   progress=progress, desc=desc)
    return model, result


def train_copies(features: FeatureSet, model_config: CRNNConfig, train_config: TrainConfig,
                 members: int, progress: bool = True) -> list[CRNN]:
    """`members` models of `model_config` trained from consecutive seeds (seed, seed + 1, ...)."""
    return [fit(features, model_config, replace(train_config, seed=train_config.seed + i),
                progress=progress, desc=f"teacher copy {i + 1}/{members}")[0]
            for i in range(members)]


def ensemble_target(members: list[CRNN], train_copies: torch.Tensor) -> TeacherOutputs:
    """The mean probabilities of `members` (as log-probabilities, which a softmax maps back) and
    their mean attention on every training copy [variants, clips, n_mels, frames]."""
    outputs = [teacher_outputs(m, train_copies) for m in members]
    probs = torch.stack([o.logits.softmax(-1) for o in outputs]).mean(0)  # [variants, clips, 2]
    attention = torch.stack([o.attention.float() for o in outputs]).mean(0)
    return TeacherOutputs(probs.clamp_min(1e-8).log(), attention.half())


def load_teacher(path: Path, features: FeatureSet) -> tuple[CRNN, dict[str, Any]]:
    """A saved teacher that matches `features`; TeacherMismatch says how to fix a mismatch."""
    model, state = load_model(path)
    if state["kind"] != "teacher":
        raise TeacherMismatch(f"{path} is a {state['kind']} checkpoint, not a teacher")
    if state["dataset_fingerprint"] != features.fingerprint or state["keyword"] != features.keyword:
        raise _mismatch(path, state, "on another dataset or keyword")
    check_teacher_features(path, features.config, state)
    return model, state["metrics"]


def check_teacher_features(path: Path, config: FeatureConfig,
                           state: dict[str, Any] | None = None) -> None:
    """Refuse the teacher at `path` if it was made with other features than `config` (cheap:
    done before any features are computed)."""
    state = state if state is not None else read_checkpoint(path)
    if state["features"] != config.to_dict():
        raise _mismatch(path, state, "with other feature settings")


def _mismatch(path: Path, state: dict[str, Any], what: str) -> TeacherMismatch:
    made = "imported" if state.get("extra", {}).get("imported_from") else "trained"
    return TeacherMismatch(f"teacher {path} was {made} {what}; retrain it with `kws-search "
                           "teacher --force` (which replaces it) or pass --teacher PATH")
