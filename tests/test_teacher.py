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
