"""Quantized students are smaller, close in output, and reload from their checkpoint."""

from __future__ import annotations

import pytest
import torch

from kws_search.checkpoint import CheckpointError, load_model, save_checkpoint
from kws_search.features import FeatureConfig
from kws_search.models import CRNN, CRNNConfig
from kws_search.quantize import (
    QUANT_MODES,
    prepare_for_training,
    quantize,
    quantized_modules,
    stored_bytes,
)

CONFIG = CRNNConfig(cnn_channels=4, hidden=16, layers=2)


def _trained_like(mode: str) -> CRNN:
    torch.manual_seed(0)
    model = prepare_for_training(CRNN(CONFIG), mode)
    model(torch.randn(8, 40, 101))  # QAT observers see data once
    return model.eval()


@pytest.mark.parametrize("mode", QUANT_MODES)
def test_modes_shrink_and_stay_close(mode):
    x = torch.randn(16, 40, 101)
    model = _trained_like(mode)
    float_bytes = stored_bytes(CRNN(CONFIG))
    deployed = quantize(model, mode, calibration=x)
    with torch.no_grad():
        diff = (torch.softmax(deployed(x), -1) - torch.softmax(model(x), -1)).abs().max()
    assert diff < 0.05
    if mode in ("int8", "static_int8", "qat"):
        assert stored_bytes(deployed) < 0.4 * float_bytes
    if mode == "float16":
        assert stored_bytes(deployed) < 0.6 * float_bytes


def test_plain_rnn_stays_float_and_size_shows_it():
    model = CRNN(CRNNConfig(cnn_channels=4, hidden=16, rnn="rnn"))
    deployed = quantize(model, "int8")
    assert "rnn" not in quantized_modules(deployed)
    assert isinstance(deployed.rnn, torch.nn.RNN)


@pytest.mark.parametrize("mode", QUANT_MODES)
def test_checkpoint_round_trip(tmp_path, mode):
    x = torch.randn(4, 40, 101)
    deployed = quantize(_trained_like(mode), mode, calibration=x)
    path = save_checkpoint(tmp_path / "s.pt", deployed, kind="student", model_config=CONFIG,
                           feature_config=FeatureConfig(), keyword="sheila",
                           dataset_fingerprint="f", quant=mode, metrics={"val_quality": 0.1})
    model, state = load_model(path)
    assert state["metrics"]["val_quality"] == 0.1
    with torch.no_grad():
        assert torch.equal(model(x), deployed(x))


def test_unreadable_checkpoint_names_the_file(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="x.pt"):
        load_model(tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="int4"):
        quantize(CRNN(CONFIG), "int4")
