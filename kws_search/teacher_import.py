"""Importing a teacher trained in the course seminar (a PyTorch state_dict) as our CRNN.

The seminar's model: `conv = Sequential(Conv2d(1, cnn_out_channels, kernel_size, stride),
Flatten(1, 2))`, `gru = GRU(conv_out_frequency * cnn_out_channels, hidden_size,
num_layers=gru_num_layers, dropout=0.1, bidirectional=..., batch_first=True)`,
`attention.energy = Sequential(Linear(h, h), Tanh(), Linear(h, 1))` with softmax over time, and
`classifier = Linear(h, num_classes)` (h doubled when bidirectional), on the log-mel features
of the course seminar. Our CRNN has the same layers in the same order, so the weights map one to
one: only the names of the conv and the GRU differ.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import yaml

from kws_search.checkpoint import CheckpointError, save_checkpoint
from kws_search.data.features import FeatureSet
from kws_search.data.front_end import FeatureConfig
from kws_search.errors import yaml_problem
from kws_search.measure import measure_teacher
from kws_search.models import CRNN, CRNNConfig

RENAMES = (("conv.0.", "conv."), ("gru.", "rnn."))  # seminar prefix -> ours


@dataclass(frozen=True)
class SeminarConfig:
    """The seminar's TaskConfig fields that shape the model (defaults: the seminar's)."""

    n_mels: int = 40
    kernel_size: tuple[int, int] = (5, 20)
    stride: tuple[int, int] = (2, 8)
    cnn_out_channels: int = 8
    hidden_size: int = 64
    gru_num_layers: int = 2
    bidirectional: bool = False
    num_classes: int = 2

    def crnn(self) -> CRNNConfig:
        return CRNNConfig(n_mels=self.n_mels, cnn_channels=self.cnn_out_channels,
                          kernel_freq=self.kernel_size[0], kernel_time=self.kernel_size[1],
                          stride_freq=self.stride[0], stride_time=self.stride[1], rnn="gru",
                          hidden=self.hidden_size, layers=self.gru_num_layers,
                          n_classes=self.num_classes, bidirectional=self.bidirectional)

    def describe(self) -> str:
        return ", ".join(f"{k} {list(v) if isinstance(v, tuple) else v}"
                         for k, v in asdict(self).items())


def load_config(path: Path | None, **overrides: Any) -> SeminarConfig:
    """Settings from a small YAML file (seminar field names), then `overrides` (not None)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise CheckpointError(f"cannot read teacher settings {path}: {exc.strerror}"
                                  ) from None
        except yaml.YAMLError as exc:
            raise CheckpointError(f"teacher settings {path}: not valid YAML "
                                  f"({yaml_problem(exc)})") from None
        if not isinstance(values, dict):
            raise CheckpointError(f"{path}: expected a mapping of seminar settings")
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = [f.name for f in fields(SeminarConfig)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise CheckpointError(f"unknown teacher setting {unknown[0]!r}; known: {known}")
    for key in ("kernel_size", "stride"):
        if key in values:
            values[key] = tuple(values[key])
    try:
        config = SeminarConfig(**values)
        config.crnn()  # range checks
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"teacher settings: {exc}") from None
    return config


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict file, loaded with `weights_only` (a whole pickled model is refused)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"teacher file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} holds a whole pickled model, which is not loaded (unpickling runs code); "
            "save its weights instead: torch.save(model.state_dict(), 'teacher.pt')") from None
    except Exception as exc:
        raise CheckpointError(f"cannot read {path} as a state_dict: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise CheckpointError(f"{path} is not a state_dict (a mapping of names to tensors); "
                              "save it with torch.save(model.state_dict(), 'teacher.pt')")
    return state


def to_crnn_state(state: dict[str, torch.Tensor], config: SeminarConfig) -> dict[str, Any]:
    """The seminar's state_dict renamed for our CRNN; one line names any key that does not fit
    (missing, of another shape, or unexpected), with the settings it was checked against."""
    renamed = {}
    for key, value in state.items():
        for old, new in RENAMES:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        renamed[key] = value
    expected = CRNN(config.crnn()).state_dict()
    extra = [k for k in renamed if k not in expected]  # in the file's order
    if extra:
        raise CheckpointError(f"the state_dict has {_seminar_name(extra[0])!r}, which a model "
                              f"with {config.describe()} does not; check the teacher settings "
                              "(bidirectional, gru_num_layers)")
    for key, tensor in expected.items():
        if key not in renamed:
            raise CheckpointError(f"the state_dict has no {_seminar_name(key)!r} (shape "
                                  f"{list(tensor.shape)} expected for {config.describe()}); "
                                  "check the teacher settings")
        if renamed[key].shape != tensor.shape:
            raise CheckpointError(f"{_seminar_name(key)!r} has shape "
                                  f"{list(renamed[key].shape)}, expected {list(tensor.shape)} "
                                  f"for {config.describe()}; check the teacher settings")
    return {k: renamed[k] for k in expected}


def _seminar_name(key: str) -> str:
    """Our state_dict key under the seminar's name (for messages)."""
    for old, new in RENAMES:
        if key.startswith(new):
            return old + key[len(new):]
    return key


def import_teacher(source: Path, config: SeminarConfig, features: FeatureSet,
                   path: Path) -> tuple[CRNN, dict[str, Any]]:
    """Load a seminar state_dict as our CRNN, measure it on `features`, save it as a teacher
    checkpoint at `path` (what `run`, `export` and `evaluate` use); return model and metrics."""
    if features.config.n_mels != config.n_mels:
        raise CheckpointError(f"the teacher takes n_mels {config.n_mels} and the features "
                              f"have {features.config.n_mels}")
    model = CRNN(config.crnn())
    model.load_state_dict(to_crnn_state(read_state_dict(source), config))
    model.eval()
    start = time.perf_counter()
    metrics = measure_teacher(model, features)
    metrics.update(train_seconds=0.0, best_epoch=0, measure_seconds=time.perf_counter() - start)
    save_checkpoint(path, model, kind="teacher", model_config=config.crnn(),
                    feature_config=features.config, keyword=features.keyword,
                    dataset_fingerprint=features.fingerprint, metrics=metrics,
                    extra={"imported_from": str(Path(source).resolve()),
                           "seminar": {k: list(v) if isinstance(v, tuple) else v
                                       for k, v in asdict(config).items()}})
    return model, metrics


def feature_config(config: SeminarConfig) -> FeatureConfig:
    """The features the teacher was trained on: the seminar's log-mel with its n_mels."""
    return FeatureConfig(n_mels=config.n_mels)
