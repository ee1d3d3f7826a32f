"""The teacher: trained once, saved with its numbers, and refused where it does not belong."""

from __future__ import annotations

import dataclasses

import pytest

from kws_search.checkpoint import read_checkpoint
from kws_search.teacher import TeacherMismatch, load_teacher


def test_saved_teacher_carries_its_numbers_and_loads_for_its_data(tiny_teacher, tiny_features):
    state = read_checkpoint(tiny_teacher)
    assert state["kind"] == "teacher"
    metrics = state["metrics"]
    for key in ("val_quality", "val_quality_lo", "val_quality_hi", "threshold", "test_quality",
                "macs", "bytes", "params", "latency_ms", "best_epoch"):
        assert key in metrics, key
    assert metrics["val_quality_lo"] <= metrics["val_quality"] <= metrics["val_quality_hi"]
    _, loaded = load_teacher(tiny_teacher, tiny_features)
    assert loaded == metrics


def test_a_teacher_of_other_data_or_features_is_refused(tiny_teacher, tiny_features):
    other_data = dataclasses.replace(tiny_features, fingerprint="0" * 16)
    with pytest.raises(TeacherMismatch, match="another dataset"):
        load_teacher(tiny_teacher, other_data)
    other_features = dataclasses.replace(
        tiny_features, config=dataclasses.replace(tiny_features.config, n_mels=32))
    with pytest.raises(TeacherMismatch, match="other feature settings"):
        load_teacher(tiny_teacher, other_features)


TINY = dict(epochs=2, lr=5e-3, batch_size=32)


def test_an_ensemble_target_is_the_mean_of_copies_trained_alone(tiny_features, tmp_path):
    import torch

    from kws_search.distill import teacher_outputs
    from kws_search.models import CRNNConfig
    from kws_search.teacher import ensemble_target, train_copies, train_teacher
    from kws_search.train import TrainConfig

    config = CRNNConfig(cnn_channels=4, hidden=8)
    copies = train_copies(tiny_features, config, TrainConfig(**TINY), 2, progress=False)
    target = ensemble_target(copies, tiny_features.train)
    alone = [train_teacher(tiny_features, tmp_path / f"copy{seed}.pt", config,
                           TrainConfig(**TINY, seed=seed), progress=False, members=1)
             for seed in (0, 1)]
    probs = [teacher_outputs(model, tiny_features.train).logits.softmax(-1) for model, _ in alone]
    torch.testing.assert_close(target.logits.exp(), (probs[0] + probs[1]) / 2)


def test_a_distilled_teacher_is_one_model_of_its_shape_with_its_copies_recorded(tiny_features,
                                                                                tmp_path):
    from kws_search.errors import ConfigError
    from kws_search.models import CRNNConfig
    from kws_search.teacher import train_teacher
    from kws_search.train import TrainConfig

    config = CRNNConfig(cnn_channels=4, hidden=8)
    _, single = train_teacher(tiny_features, tmp_path / "one.pt", config, TrainConfig(**TINY),
                              progress=False, members=1)
    _, metrics = train_teacher(tiny_features, tmp_path / "three.pt", config,
                               TrainConfig(**TINY), progress=False, members=3)
    state = read_checkpoint(tmp_path / "three.pt")
    assert state["model"] == read_checkpoint(tmp_path / "one.pt")["model"]
    assert metrics["params"] == single["params"] and metrics["macs"] == single["macs"]
    assert metrics["members"] == 3 and len(metrics["member_val_quality"]) == 3
    assert state["extra"]["distill"]["kd_weight"] > 0
    with pytest.raises(ConfigError, match="members must be >= 1"):
        train_teacher(tiny_features, tmp_path / "none.pt", config, members=0)
