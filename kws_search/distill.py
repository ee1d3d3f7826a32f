"""Distillation losses: dark knowledge (softened logits) and attention transfer.

The teacher's outputs on the fixed training copies are computed once (`teacher_outputs`) and
reused by every student, which is exact because students see the same cached copies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kws_search.errors import ConfigError


@dataclass(frozen=True)
class DistillConfig:
    """Loss weights: (1 - kd_weight) * CE + kd_weight * T^2 * KL + attn_weight * attention KL."""

    kd_weight: float = 0.0
    temperature: float = 1.0
    attn_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.kd_weight <= 1.0:
            raise ConfigError(f"distill.kd_weight must be in [0, 1], got {self.kd_weight}")
        if self.temperature <= 0:
            raise ConfigError(f"distill.temperature must be > 0, got {self.temperature}")
        if self.attn_weight < 0:
            raise ConfigError(f"distill.attn_weight must be >= 0, got {self.attn_weight}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TeacherOutputs:
    """Teacher logits [variants, clips, classes] and attention [variants, clips, steps]."""

    logits: torch.Tensor
    attention: torch.Tensor


@torch.inference_mode()
def teacher_outputs(teacher: nn.Module, train: torch.Tensor, batch: int = 2048) -> TeacherOutputs:
    """Run the teacher once over every cached training copy [variants, clips, n_mels, frames]."""
    teacher.eval()
    logits, attention = [], []
    for variant in train:
        lv, av = [], []
        for start in range(0, variant.shape[0], batch):
            lo, at = teacher.forward_parts(variant[start:start + batch].float())
            lv.append(lo)
            av.append(at)
        logits.append(torch.cat(lv))
        attention.append(torch.cat(av).half())
    return TeacherOutputs(torch.stack(logits), torch.stack(attention))


def align_attention(weights: torch.Tensor, steps: int) -> torch.Tensor:
    """Resample teacher attention [batch, t] to `steps` by linear interpolation, renormalized.

    Students with another time stride or kernel see a different number of steps; interpolating
    over the clip's time axis keeps "where the keyword is" comparable.
    """
    if weights.shape[-1] == steps:
        return weights
    resized = F.interpolate(weights.unsqueeze(1), size=steps, mode="linear", align_corners=True)
    resized = resized.squeeze(1).clamp_min(1e-8)
    return resized / resized.sum(-1, keepdim=True)


def distill_loss(logits: torch.Tensor, attention: torch.Tensor, labels: torch.Tensor,
                 teacher: tuple[torch.Tensor, torch.Tensor] | None,
                 config: DistillConfig) -> torch.Tensor:
    """Combined training loss for one batch; plain cross-entropy when there is no teacher."""
    ce = F.cross_entropy(logits, labels)
    if teacher is None or (config.kd_weight == 0 and config.attn_weight == 0):
        return ce
    t_logits, t_attention = teacher
    loss = (1 - config.kd_weight) * ce
    if config.kd_weight > 0:
        t = config.temperature
        kd = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(t_logits / t, -1),
                      log_target=True, reduction="batchmean")
        loss = loss + config.kd_weight * t * t * kd
    if config.attn_weight > 0:
        target = align_attention(t_attention.float(), attention.shape[-1])
        attn_kd = F.kl_div(attention.clamp_min(1e-8).log(), target, reduction="batchmean")
        loss = loss + config.attn_weight * attn_kd
    return loss
