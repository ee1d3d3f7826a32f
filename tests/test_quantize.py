"""Quantized students are smaller, close in output, and reload from their checkpoint."""

from __future__ import annotations

import pytest
import torch

from kws_search.checkpoint import CheckpointError, load_model, save_checkpoint
from kws_search.data.front_end import FeatureConfig
from kws_search.models import CRNN, CRNNConfig
from kws_search.quantize import (
    QUANT_MODES,
    calibrate,
    convert,
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
    calibrated = calibrate(_trained_like(mode), mode, calibration=x)
    deployed = convert(calibrated, mode)
    path = save_checkpoint(tmp_path / "s.pt", calibrated, kind="student", model_config=CONFIG,
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


@pytest.mark.parametrize("mode", ["int8", "static_int8"])
def test_checkpoints_hold_plain_tensors_and_refuse_converted_models(tmp_path, mode):
    x = torch.randn(4, 40, 101)
    calibrated = calibrate(_trained_like(mode), mode, calibration=x)
    options = dict(kind="student", model_config=CONFIG, feature_config=FeatureConfig(),
                   keyword="sheila", dataset_fingerprint="f", quant=mode)
    path = save_checkpoint(tmp_path / "s.pt", calibrated, **options)
    state = torch.load(path, weights_only=True)  # nothing to unpickle
    assert all(isinstance(v, torch.Tensor) for v in state["state_dict"].values())
    with pytest.raises(ValueError, match="calibrated float model"):
        save_checkpoint(tmp_path / "c.pt", convert(calibrated, mode), **options)
    assert not (tmp_path / "c.pt").exists()


def test_a_pickled_checkpoint_is_refused_not_unpickled(tmp_path):
    deployed = quantize(_trained_like("int8"), "int8")
    torch.save({"format": 1, "quant": "int8", "state_dict": deployed.state_dict()},
               tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="pickled objects"):
        load_model(tmp_path / "old.pt")
