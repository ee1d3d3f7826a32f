"""Checkpoint files: weights plus every config needed to rebuild the model from the file alone.

A checkpoint is a dict saved with torch.save:
  kind ("teacher" or "student"), model (CRNNConfig dict), features (FeatureConfig dict),
  quant (mode), keyword, dataset_fingerprint, metrics (dict of numbers), extra (dict), and
  state_dict. The state_dict is the float model's (with its calibration observers or fake-quant
  state for `static_int8` and `qat`): plain tensors only, so files load with
  `torch.load(weights_only=True)` and never unpickle objects. A quantized student is rebuilt
  from its float config and mode (`quantize.calibrated_structure`), loaded, and converted, which
  gives the deployed model bit for bit.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kws_search.data.front_end import FeatureConfig
from kws_search.errors import KwsSearchError
from kws_search.files import write_atomic
from kws_search.models import CRNNConfig
from kws_search.options import EXPORT_INFO
from kws_search.quantize import calibrated_structure, convert

# 2: quantized students store their calibrated float state; 1 stored packed quantized layers,
# which only load by unpickling (float models of format 1 still load)
FORMAT_VERSION = 2


class CheckpointError(KwsSearchError, ValueError):
    """A checkpoint file that is missing, unreadable or not a kws-search checkpoint."""


def save_checkpoint(path: Path | str, model: nn.Module, *, kind: str, model_config: CRNNConfig,
                    feature_config: FeatureConfig, keyword: str, dataset_fingerprint: str,
                    quant: str = "none", metrics: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (temp file + rename) and return its path.

    `model` is the float model, calibrated for its mode (`quantize.calibrate`), not the
    converted one: a converted model's packed layers are not plain tensors.
    """
    path = Path(path)
    weights = model.state_dict()
    packed = [k for k, v in weights.items() if not isinstance(v, torch.Tensor) or v.is_quantized]
    if packed:
        raise ValueError(f"save the calibrated float model, not the converted one ({packed[0]} "
                         "is a packed quantized layer)")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT_VERSION, "kind": kind, "model": model_config.to_dict(),
        "features": feature_config.to_dict(), "quant": quant, "keyword": keyword,
        "dataset_fingerprint": dataset_fingerprint, "metrics": dict(metrics or {}),
        "extra": dict(extra or {}), "state_dict": weights,
    }
    return write_atomic(path, lambda tmp: torch.save(state, tmp))


def is_exported(path: Path) -> bool:
    """Whether `path` is a file written by `export_checkpoint` (TorchScript with our info)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(f"extra/{EXPORT_INFO}") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """The checkpoint dict; CheckpointError names the file when it cannot be used."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the checkpoint file in it")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if is_exported(path):
        raise CheckpointError(f"{path} is a streaming model made by `kws-search export`, not a "
                              "checkpoint; use the checkpoint it was exported from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "Weights only load failed" in str(exc) and zipfile.is_zipfile(path):
            raise CheckpointError(f"{path} holds pickled objects, not only tensors and configs, "
                                  "so it is not loaded (an older kws-search's quantized student "
                                  "or a model saved whole); re-run the trial or save a "
                                  "state_dict") from None
        raise CheckpointError(f"{path} is not a model file of kws-search; give a teacher or "
                              "trial checkpoint, or a file made by `kws-search export`") from None
    if not isinstance(state, dict) or state.get("format") not in (1, FORMAT_VERSION):
        raise CheckpointError(f"{path} is not a kws-search checkpoint (format {FORMAT_VERSION})")
    return state


def build_model(state: dict[str, Any]) -> nn.Module:
    """Rebuild the (possibly quantized) model of a checkpoint dict, in eval mode."""
    model = calibrated_structure(CRNNConfig.from_dict(state["model"]), state["quant"])
    model.load_state_dict(state["state_dict"])
    return convert(model, state["quant"])


def load_model(path: Path | str) -> tuple[nn.Module, dict[str, Any]]:
    """Model and checkpoint dict of a file."""
    state = read_checkpoint(path)
    return build_model(state), state
