"""Distillation losses: what each weight switches on, temperature scaling, teacher outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kws_search.distill import DistillConfig, align_attention, distill_loss, teacher_outputs
from kws_search.models import CRNN, CRNNConfig


def batch(seed: int = 0, steps: int = 11, teacher_steps: int = 11):
    """Student logits, student attention, labels and teacher (logits, attention) for 8 clips."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(8, 2, generator=g)
    attention = torch.softmax(torch.randn(8, steps, generator=g), -1)
    labels = torch.randint(0, 2, (8,), generator=g)
    teacher = (torch.randn(8, 2, generator=g) * 3,
               torch.softmax(torch.randn(8, teacher_steps, generator=g), -1).half())
    return logits, attention, labels, teacher


def test_no_teacher_weight_is_plain_cross_entropy():
    logits, attention, labels, teacher = batch()
    ce = F.cross_entropy(logits, labels)
    assert torch.equal(distill_loss(logits, attention, labels, teacher, DistillConfig()), ce)
    assert torch.equal(distill_loss(logits, attention, labels, None,
                                    DistillConfig(kd_weight=0.7, attn_weight=1.0)), ce)


def test_kd_weight_mixes_cross_entropy_and_softened_kl():
    logits, attention, labels, teacher = batch()
    t = 4.0
    p_teacher = torch.softmax(teacher[0] / t, -1)
    kl = (p_teacher * (p_teacher.log() - torch.log_softmax(logits / t, -1))).sum(-1).mean()
    ce = F.cross_entropy(logits, labels)
    loss = distill_loss(logits, attention, labels, teacher, DistillConfig(0.25, t))
    assert loss.item() == pytest.approx(0.75 * ce.item() + 0.25 * t * t * kl.item(), rel=1e-5)
    # all the weight on the teacher: the labels no longer matter
    full = DistillConfig(kd_weight=1.0, temperature=t)
    assert distill_loss(logits, attention, labels, teacher, full).item() == pytest.approx(
        distill_loss(logits, attention, 1 - labels, teacher, full).item(), rel=1e-6)


def test_temperature_squared_keeps_the_soft_loss_on_one_scale():
    # At high temperature KL shrinks as 1/T^2; the T^2 factor keeps the loss (and its gradient)
    # comparable across temperatures instead of vanishing.
    logits, attention, labels, teacher = batch(seed=2)
    loss = {t: distill_loss(logits, attention, labels, teacher,
                            DistillConfig(kd_weight=1.0, temperature=t)).item()
            for t in (1.0, 50.0, 100.0)}
    assert loss[100.0] == pytest.approx(loss[50.0], rel=0.01)
    assert loss[100.0] > 0.01
    assert loss[1.0] != pytest.approx(loss[100.0], rel=0.1)  # softening changes the target


def test_attention_term_is_off_at_zero_weight_and_measures_the_aligned_teacher():
    logits, attention, labels, teacher = batch(steps=7, teacher_steps=11)
    other = torch.softmax(torch.randn(8, 7), -1)
    kd_only = DistillConfig(kd_weight=0.5, temperature=2.0)
    assert torch.equal(distill_loss(logits, attention, labels, teacher, kd_only),
                       distill_loss(logits, other, labels, teacher, kd_only))
    with_attn = DistillConfig(kd_weight=0.5, temperature=2.0, attn_weight=0.3)
    assert distill_loss(logits, attention, labels, teacher, with_attn) > distill_loss(
        logits, attention, labels, teacher, kd_only)
    # a student attending exactly like the (resampled) teacher pays nothing extra
    matched = align_attention(teacher[1].float(), 7)
    assert distill_loss(logits, matched, labels, teacher, with_attn).item() == pytest.approx(
        distill_loss(logits, matched, labels, teacher, kd_only).item(), abs=1e-5)


def test_aligned_attention_keeps_where_the_keyword_is():
    weights = torch.full((1, 21), 0.01)
    weights[0, 10] = 1.0  # the middle of the clip
    weights = weights / weights.sum()
    assert align_attention(weights, 21) is weights
    aligned = align_attention(weights, 11)
    assert aligned.argmax().item() == 5
    assert aligned.sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("bad, field", [
    (dict(kd_weight=-0.1), "distill.kd_weight"), (dict(kd_weight=1.5), "distill.kd_weight"),
    (dict(temperature=0.0), "distill.temperature"), (dict(temperature=-2.0), "distill.temperature"),
    (dict(attn_weight=-1.0), "distill.attn_weight"),
])
def test_bad_distill_settings_are_refused_naming_the_field(bad, field):
    with pytest.raises(ValueError, match=field):
        DistillConfig(**bad)


def test_distill_config_edges_are_allowed_and_round_trip():
    config = DistillConfig(kd_weight=1.0, temperature=0.5, attn_weight=0.0)
    assert DistillConfig(**config.to_dict()) == config


def test_teacher_outputs_cover_every_copy_and_ignore_the_batch_size():
    torch.manual_seed(0)
    teacher = CRNN(CRNNConfig(cnn_channels=4, hidden=8, layers=1))
    teacher.train()
    train = torch.randn(2, 5, 40, 101).half()  # [variants, clips, n_mels, frames], cached as fp16
    outputs = teacher_outputs(teacher, train)
    assert not teacher.training  # run as deployed: no dropout
    assert outputs.logits.shape == (2, 5, 2)
    assert outputs.attention.shape == (2, 5, 11) and outputs.attention.dtype == torch.float16
    small = teacher_outputs(teacher, train, batch=2)
    assert torch.allclose(small.logits, outputs.logits, atol=1e-5)
    assert torch.allclose(small.attention.float(), outputs.attention.float(), atol=1e-3)
    with torch.no_grad():
        direct, _ = teacher.forward_parts(train[1].float())
    assert torch.allclose(outputs.logits[1], direct, atol=1e-5)
