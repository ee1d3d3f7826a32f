"""Training learns, distillation losses behave, and divergence is reported."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kws_search.distill import DistillConfig, align_attention, distill_loss, teacher_outputs
from kws_search.models import CRNN, CRNNConfig
from kws_search.train import NonFiniteLoss, TrainConfig, balanced_indices, spec_augment, train

SMALL = CRNNConfig(cnn_channels=4, hidden=8, layers=1)


def test_training_beats_chance_on_tones(tiny_features):
    torch.manual_seed(0)
    model = CRNN(SMALL)
    result = train(model, tiny_features, TrainConfig(epochs=6, lr=1e-2, batch_size=32,
                                                     spec_augment=False))
    assert result.best_quality < 0.08  # chance is ~0.08 (keyword share 20% x 0.4)
    assert len(result.history) == 6


def test_distillation_runs_with_teacher_outputs(tiny_features):
    teacher = CRNN(CRNNConfig(cnn_channels=4, hidden=16))
    outputs = teacher_outputs(teacher, tiny_features.train)
    assert outputs.logits.shape == (2, 80, 2)
    student = CRNN(CRNNConfig(cnn_channels=2, hidden=4, layers=1, stride_time=10))
    train(student, tiny_features, TrainConfig(epochs=1, batch_size=32),
          DistillConfig(kd_weight=0.5, temperature=4.0, attn_weight=0.5), outputs)


def test_kd_loss_is_zero_when_student_matches_teacher():
    logits = torch.randn(8, 2)
    attn = torch.softmax(torch.randn(8, 11), -1)
    labels = torch.randint(0, 2, (8,))
    config = DistillConfig(kd_weight=1.0, temperature=3.0, attn_weight=1.0)
    assert distill_loss(logits, attn, labels, (logits, attn), config).item() == pytest.approx(
        0.0, abs=1e-5)


def test_attention_alignment_keeps_a_distribution():
    weights = torch.softmax(torch.randn(4, 11), -1)
    aligned = align_attention(weights, 7)
    assert aligned.shape == (4, 7)
    assert torch.allclose(aligned.sum(-1), torch.ones(4))


def test_nan_loss_raises_a_clear_error(tiny_features):
    broken = dataclasses.replace(tiny_features, train=torch.full_like(tiny_features.train,
                                                                       float("nan")))
    with pytest.raises(NonFiniteLoss, match="lower the learning rate"):
        train(CRNN(SMALL), broken, TrainConfig(epochs=1, batch_size=32))


def test_balanced_sampling_and_spec_augment():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([1] * 10 + [0] * 990)
    picked = labels[balanced_indices(labels, 4000, g)].float().mean()
    assert 0.45 < picked < 0.55
    x = torch.randn(4, 40, 101)
    masked = spec_augment(x.clone(), 15, 35, g)
    assert (masked != x).any()


def test_converged_recipe_stops_when_validation_stalls(tiny_features, caplog):
    torch.manual_seed(0)
    config = TrainConfig(epochs=50, lr=1e-2, batch_size=32, patience=1, lr_drops=1,
                         spec_augment=False)
    with caplog.at_level("INFO", logger="kws_search.train"):
        result = train(CRNN(SMALL), tiny_features, config)
    assert len(result.history) < 50  # stopped early: the tiny set is learned in a few epochs
    assert "converged" in caplog.text
    assert result.best_quality == min(h["val_quality"] for h in result.history)


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(batch_size=0), dict(lr=-1e-3),
                                 dict(patience=-1)])
def test_nonsense_training_settings_are_refused(bad):
    with pytest.raises(ValueError, match="epochs and batch_size"):
        TrainConfig(**bad)


def test_word_balanced_negatives_see_rare_words_as_often_as_common_ones():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([1] * 100 + [0] * 900)
    words = torch.tensor([0] * 100 + [1] * 800 + [2] * 100)  # word 2 is rare among negatives
    idx = balanced_indices(labels, 20_000, g, words)
    drawn = torch.bincount(words[idx], minlength=3).float() / 20_000
    assert torch.allclose(drawn, torch.tensor([0.5, 0.25, 0.25]), atol=0.02)
    by_clip = torch.bincount(words[balanced_indices(labels, 20_000, g)], minlength=3) / 20_000
    assert by_clip[2] < 0.1  # uniform over clips: the rare word is rarely seen


def test_features_know_each_train_clips_word(tiny_features):
    words = tiny_features.train_words
    assert words.shape == tiny_features.train_labels.shape
    assert torch.equal(words == words[tiny_features.train_labels == 1][0],
                       tiny_features.train_labels == 1)
