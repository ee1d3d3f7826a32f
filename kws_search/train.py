"""The training loop for teachers and students (no Optuna here).

Batches are gathered from the in-memory feature cache: a class-balanced draw of clips, one
cached noisy copy per clip, optional SpecAugment masks. The best epoch on validation is kept.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from kws_search.data.features import FeatureSet
from kws_search.distill import DistillConfig, TeacherOutputs, distill_loss
from kws_search.errors import ConfigError, KwsSearchError
from kws_search.measure import split_quality

logger = logging.getLogger(__name__)


class NonFiniteLoss(KwsSearchError, RuntimeError):
    """Training diverged (loss is NaN or infinite)."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer and data settings; teacher defaults follow the seminar."""

    epochs: int = 20
    lr: float = 3e-4
    weight_decay: float = 1e-5
    batch_size: int = 128
    grad_clip: float = 5.0
    spec_augment: bool = True
    freq_mask: int = 15
    time_mask: int = 35
    samples_per_epoch: int = 0  # 0: one pass worth of clips
    seed: int = 0
    # 0: warm-up then cosine decay over `epochs`. > 0: train to convergence: the rate halves
    # after `patience` epochs without a better validation quality, and training stops at the
    # next such stall after `lr_drops` halvings (or at `epochs`).
    patience: int = 0
    lr_drops: int = 3
    # how batches draw negatives: "words" gives every other word the same share, so rare words
    # (confusables said by few speakers) are seen as often as common ones; "clips": uniformly
    negatives: str = "words"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or self.patience < 0:
            raise ConfigError(f"epochs and batch_size must be >= 1, lr > 0 and patience >= 0; "
                             f"got epochs={self.epochs}, batch_size={self.batch_size}, "
                             f"lr={self.lr}, patience={self.patience}")
        if self.negatives not in ("words", "clips"):
            raise ConfigError(f"train.negatives must be 'words' or 'clips', got {self.negatives!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """Best validation quality, its epoch, and per-epoch history."""

    best_quality: float
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)


def spec_augment(x: torch.Tensor, freq_mask: int, time_mask: int,
                 generator: torch.Generator) -> torch.Tensor:
    """One random frequency band and one time span set to the batch mean, per clip, in place."""
    batch, n_mels, frames = x.shape
    fill = x.mean()
    for size, axis, length in ((freq_mask, 1, n_mels), (time_mask, 2, frames)):
        if size <= 0:
            continue
        width = torch.randint(0, size + 1, (batch, 1), generator=generator)
        start = (torch.rand(batch, 1, generator=generator) * (length - width + 1)).long()
        pos = torch.arange(length).unsqueeze(0)
        mask = (pos >= start) & (pos < start + width)  # [batch, length]
        x.masked_fill_(mask.unsqueeze(2) if axis == 1 else mask.unsqueeze(1), fill)
    return x


def warmup_cosine(total: int, warmup_share: float = 0.05) -> Callable[[int], float]:
    """LR factor per step: linear warm-up over the first 5%, then cosine decay to 2%."""
    warmup = max(1, int(total * warmup_share))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def warmup_constant(warmup: int) -> Callable[[int], float]:
    """LR factor per step: linear warm-up over `warmup` steps, then constant."""
    return lambda step: min(1.0, (step + 1) / max(1, warmup))


def balanced_indices(labels: torch.Tensor, count: int, generator: torch.Generator,
                     words: torch.Tensor | None = None) -> torch.Tensor:
    """`count` clip indices drawn with replacement so both classes are equally likely; with
    `words` (word index per clip), every word among the negatives is equally likely too."""
    per_class = torch.bincount(labels, minlength=2).float()
    weights = (1.0 / per_class.clamp_min(1))[labels]
    if words is not None:
        negative = labels == 0
        per_word = torch.bincount(words[negative]).float()
        n_words = int((per_word > 0).sum())
        weights[negative] = 1.0 / (n_words * per_word[words[negative]])
    return torch.multinomial(weights, count, replacement=True, generator=generator)


def train(model: nn.Module, features: FeatureSet, config: TrainConfig,
          distill: DistillConfig | None = None, teacher: TeacherOutputs | None = None,
          progress: bool = False, desc: str = "train",
          on_epoch: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train `model` in place and load the weights of its best validation epoch.

    `on_epoch(epoch, best_quality)` runs after each epoch; an exception it raises (a pruned
    trial) ends training there, with the model left as it is.
    Raises NonFiniteLoss when the loss turns NaN/inf, naming the epoch and step.
    """
    distill = distill or DistillConfig()
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    per_epoch = config.samples_per_epoch or features.train.shape[1]
    steps = max(1, per_epoch // config.batch_size)
    plateau = config.patience > 0
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_constant(steps) if plateau else warmup_cosine(steps * config.epochs))
    stalls = drops = 0
    val_x, val_y = features.split("validation")
    result = TrainResult(best_quality=float("inf"), best_epoch=-1)
    best_state = copy.deepcopy(model.state_dict())
    bar = tqdm(range(config.epochs), desc=desc, disable=not progress, unit="epoch")
    for epoch in bar:
        total = _train_epoch(model, features, config, distill, teacher, optimizer, scheduler,
                             generator, steps, epoch)
        quality = split_quality(model, val_x, val_y)
        result.history.append({"epoch": epoch + 1, "loss": total / steps, "val_quality": quality})
        if quality < result.best_quality:
            result.best_quality, result.best_epoch = quality, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
            stalls = 0
        elif plateau:
            stalls, drops = _stalled(stalls + 1, drops, config, scheduler)
            if stalls > config.patience:
                logger.info("%s converged: no better validation for %d epochs after %d "
                            "halvings of the rate", desc, config.patience, drops)
                break
        bar.set_postfix(loss=f"{total / steps:.4f}", val=f"{quality:.2e}",
                        best=f"{result.best_quality:.2e}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
        logger.debug("%s epoch %d loss %.4f val %.3e", desc, epoch + 1, total / steps, quality)
        if on_epoch is not None:
            on_epoch(epoch + 1, result.best_quality)
    model.load_state_dict(best_state)
    model.eval()
    return result


def _stalled(stalls: int, drops: int, config: TrainConfig, scheduler: Any) -> tuple[int, int]:
    """After an epoch without a better validation: halve the rate once `patience` such epochs
    have passed, at most `lr_drops` times; (stalls, drops) after it, with stalls past
    `patience` when training has converged."""
    if stalls < config.patience:
        return stalls, drops
    if drops == config.lr_drops:
        return config.patience + 1, drops
    scheduler.base_lrs = [lr / 2 for lr in scheduler.base_lrs]
    return 0, drops + 1


def _train_epoch(model: nn.Module, features: FeatureSet, config: TrainConfig,
                 distill: DistillConfig, teacher: TeacherOutputs | None,
                 optimizer: torch.optim.Optimizer, scheduler: Any, generator: torch.Generator,
                 steps: int, epoch: int) -> float:
    """One epoch of `steps` balanced batches, each clip from a random augmented copy; returns
    the summed loss."""
    model.train()
    words = features.train_words if config.negatives == "words" else None
    idx = balanced_indices(features.train_labels, steps * config.batch_size, generator, words)
    var = torch.randint(0, features.train.shape[0], idx.shape, generator=generator)
    total = 0.0
    for step in range(steps):
        b_idx = idx[step * config.batch_size:(step + 1) * config.batch_size]
        b_var = var[step * config.batch_size:(step + 1) * config.batch_size]
        x = features.train[b_var, b_idx].float()  # [batch, n_mels, frames]
        if config.spec_augment:
            spec_augment(x, config.freq_mask, config.time_mask, generator)
        logits, attention = model.forward_parts(x)
        t_out = None if teacher is None else (teacher.logits[b_var, b_idx],
                                               teacher.attention[b_var, b_idx])
        loss = distill_loss(logits, attention, features.train_labels[b_idx], t_out, distill)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"loss became {loss.item()} at epoch {epoch + 1} step "
                                f"{step + 1}; lower the learning rate or the KD weight")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        total += loss.item()
    return total
