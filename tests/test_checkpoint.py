"""Checkpoint files: a float model round trip, plain-tensor files, and clear refusals."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
import torch

from kws_search.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    is_exported,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from kws_search.data.front_end import FeatureConfig
from kws_search.errors import KwsSearchError
from kws_search.models import CRNN, CRNNConfig

CONFIG = CRNNConfig(cnn_channels=4, hidden=6, rnn="rnn", layers=1)
FEATURES = FeatureConfig()


def save_tiny(path: Path, **options) -> tuple[CRNN, Path]:
    torch.manual_seed(0)
    model = CRNN(CONFIG).eval()
    values = dict(kind="teacher", model_config=CONFIG, feature_config=FEATURES,
                  keyword="sheila", dataset_fingerprint="abc123",
                  metrics={"val_quality": 0.25, "macs": 1234}, extra={"trial": 7})
    values.update(options)
    return model, save_checkpoint(path, model, **values)


def test_a_float_model_round_trips_with_everything_needed_to_rebuild_it(tmp_path):
    model, path = save_tiny(tmp_path / "deep" / "folder" / "t.pt")
    assert path == tmp_path / "deep" / "folder" / "t.pt"
    assert [p.name for p in path.parent.iterdir()] == ["t.pt"]  # no temp file left behind
    loaded, state = load_model(path)
    assert not loaded.training
    assert (state["kind"], state["keyword"], state["dataset_fingerprint"], state["quant"]) == (
        "teacher", "sheila", "abc123", "none")
    assert CRNNConfig.from_dict(state["model"]) == CONFIG
    assert FeatureConfig.from_dict(state["features"]) == FEATURES
    assert state["metrics"] == {"val_quality": 0.25, "macs": 1234}
    assert state["extra"] == {"trial": 7} and state["format"] == FORMAT_VERSION
    x = torch.randn(2, 40, 101)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_files_load_with_plain_torch_weights_only(tmp_path):
    _, path = save_tiny(tmp_path / "t.pt")
    state = torch.load(path, weights_only=True)  # no kws_search classes to unpickle
    assert all(isinstance(v, torch.Tensor) for v in state["state_dict"].values())
    rebuilt = CRNN(CRNNConfig.from_dict(state["model"]))
    rebuilt.load_state_dict(state["state_dict"])


def test_saving_again_replaces_the_file(tmp_path):
    save_tiny(tmp_path / "t.pt", metrics={"val_quality": 0.5})
    save_tiny(tmp_path / "t.pt", metrics={"val_quality": 0.1})
    assert read_checkpoint(tmp_path / "t.pt")["metrics"] == {"val_quality": 0.1}
    assert [p.name for p in tmp_path.iterdir()] == ["t.pt"]


def test_is_exported_only_for_exported_streaming_models(tmp_path):
    from kws_search.deploy.torchscript import export_checkpoint

    _, path = save_tiny(tmp_path / "t.pt", kind="student")
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a zip at all")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("archive/data.pkl", b"")
    exported = export_checkpoint(path, tmp_path / "t.ts")
    assert is_exported(exported)
    for other in (path, tmp_path / "garbage.pt", tmp_path / "other.zip", tmp_path / "nope.pt",
                  tmp_path):
        assert not is_exported(other), other


def test_an_exported_file_is_refused_saying_to_use_its_checkpoint(tmp_path):
    from kws_search.deploy.torchscript import export_checkpoint

    _, path = save_tiny(tmp_path / "t.pt", kind="student")
    exported = export_checkpoint(path, tmp_path / "t.ts")
    with pytest.raises(CheckpointError, match="use the checkpoint it was exported from") as info:
        read_checkpoint(exported)
    assert str(exported) in str(info.value)


def test_missing_foreign_and_wrong_format_files_are_refused_naming_them(tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(CheckpointError, match=re.escape(f"checkpoint {missing} does not exist")):
        read_checkpoint(missing)
    with pytest.raises(CheckpointError, match="is a folder; give the checkpoint file"):
        read_checkpoint(tmp_path)  # a folder is not a checkpoint file either
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save({"format": 99, "state_dict": {}}, tmp_path / "future.pt")
    torch.save({"state_dict": {}}, tmp_path / "unversioned.pt")
    for name in ("tensor.pt", "future.pt", "unversioned.pt"):
        with pytest.raises(CheckpointError, match=re.escape(
                f"{name} is not a kws-search checkpoint (format {FORMAT_VERSION})")):
            read_checkpoint(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a model\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    for name in ("notes.txt", "empty.pt"):  # whatever torch.load says, the message is ours
        with pytest.raises(CheckpointError, match=re.escape(
                f"{name} is not a model file of kws-search; give a teacher or trial checkpoint")):
            read_checkpoint(tmp_path / name)


def test_checkpoint_errors_are_user_errors():
    # the command line prints these as one line instead of a traceback
    assert issubclass(CheckpointError, KwsSearchError)
    assert issubclass(CheckpointError, ValueError)


def test_a_format_1_float_checkpoint_still_loads(tmp_path):
    model, path = save_tiny(tmp_path / "t.pt")
    state = torch.load(path, weights_only=True)
    torch.save({**state, "format": 1}, tmp_path / "old.pt")
    loaded, old = load_model(tmp_path / "old.pt")
    assert old["format"] == 1
    x = torch.randn(1, 40, 101)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
