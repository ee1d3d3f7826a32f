"""Quantization modes for students and what each stores.

Modes:
- `none`: float32.
- `float16`: dynamic float16 of RNN and linear layers.
- `int8`: dynamic int8 of GRU and linear layers (weights int8, activations quantized on the fly).
- `static_int8`: `int8` plus post-training static int8 of the conv, calibrated on train clips.
- `qat`: like `static_int8`, but the conv trains with fake quantization (QAT) first.

PyTorch has no dynamically quantized `nn.RNN`, so a plain-RNN student keeps its RNN in float in
every mode; `stored_bytes` counts what is really stored, so that shows in its compression.
"""

from __future__ import annotations

import copy
import functools
import io
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn
from torch.ao import quantization as tq
from torch.ao.nn import quantized as nnq
from torch.ao.nn.quantized import dynamic as nnqd
from torch.ao.nn.quantized.dynamic.modules.rnn import RNNBase as DynamicRNNBase

from kws_search.errors import ConfigError
from kws_search.models import CRNN, CRNNConfig

QUANT_MODES = ("none", "float16", "int8", "static_int8", "qat")
ENGINE = "x86"
T = TypeVar("T")


def _quiet(function: Callable[..., T]) -> Callable[..., T]:
    """Run `function` without torch.ao's deprecation notices (its eager-mode API is what the
    exported files use); the caller's warning filters stay as they were."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*deprecated.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.ao")
            return function(*args, **kwargs)
    return wrapper


def _check(mode: str) -> None:
    if mode not in QUANT_MODES:
        raise ConfigError(f"unknown quantization mode {mode!r}; choose from {QUANT_MODES}")


def _mark_conv(model: CRNN, qconfig: tq.QConfig) -> None:
    """Give only the quant stub, conv and dequant stub a qconfig (the rest stays float)."""
    torch.backends.quantized.engine = ENGINE
    model.qconfig = None
    for name in ("quant", "conv", "dequant"):
        getattr(model, name).qconfig = qconfig


@_quiet
def prepare_for_training(model: CRNN, mode: str) -> CRNN:
    """Before training: insert fake quantization for `qat`; other modes train in float."""
    _check(mode)
    if mode == "qat":
        _mark_conv(model, tq.get_default_qat_qconfig(ENGINE))
        model.train()
        tq.prepare_qat(model, inplace=True)
    return model


@_quiet
def _dynamic(model: nn.Module, mode: str) -> nn.Module:
    if mode == "float16":
        return tq.quantize_dynamic(model, {nn.GRU, nn.Linear}, dtype=torch.float16)
    return tq.quantize_dynamic(model, {nn.GRU, nn.Linear}, dtype=torch.qint8)


@torch.no_grad()
@_quiet
def calibrate(model: CRNN, mode: str, calibration: torch.Tensor | None = None) -> CRNN:
    """The float model with everything its mode's conversion reads (a new module).

    For `static_int8` the conv gets observers that see `calibration` (log-mel clips [n, n_mels,
    frames], required); a `qat` model already carries its fake-quant state; the other modes
    convert from the weights alone. Its state_dict holds plain tensors only, so this form is
    what checkpoints store, and `convert` of it is the deployed model, the same every time.
    """
    _check(mode)
    model = copy.deepcopy(model).eval()
    if mode == "static_int8":
        if calibration is None:
            raise ValueError("static_int8 needs calibration clips")
        _mark_conv(model, tq.get_default_qconfig(ENGINE))
        tq.prepare(model, inplace=True)
        model.conv_features(calibration.float())
    return model


@torch.no_grad()
@_quiet
def convert(model: CRNN, mode: str) -> nn.Module:
    """The deployable model of a `calibrate`d one (a new module; `model` is left as it is)."""
    _check(mode)
    model = copy.deepcopy(model).eval()
    if mode == "none":
        return model
    if mode in ("static_int8", "qat"):
        tq.convert(model, inplace=True)
    return _dynamic(model, mode).eval()


def quantize(model: CRNN, mode: str, calibration: torch.Tensor | None = None) -> nn.Module:
    """The deployable model for `mode` (a new module; `model` is left as it is).

    `calibration` (log-mel clips [n, n_mels, frames]) is required for `static_int8`.
    """
    return convert(calibrate(model, mode, calibration), mode)


@_quiet
def calibrated_structure(config: CRNNConfig, mode: str) -> CRNN:
    """An untrained model laid out like `calibrate(..., mode)` output, to load a state_dict into."""
    _check(mode)
    model = prepare_for_training(CRNN(config), mode).eval()
    if mode == "static_int8":
        _mark_conv(model, tq.get_default_qconfig(ENGINE))
        tq.prepare(model, inplace=True)
    return model


@_quiet
def quantized_structure(config: CRNNConfig, mode: str) -> nn.Module:
    """An untrained model laid out like `quantize(..., mode)` output: what size is measured on."""
    with warnings.catch_warnings():  # observers that saw only zeros say so; sizes do not care
        warnings.simplefilter("ignore")
        model = prepare_for_training(CRNN(config), mode).eval()
        return quantize(model, mode, torch.zeros(1, config.n_mels, config.kernel_time))


def batch_dependent(model: nn.Module) -> bool:
    """Whether a call's numbers depend on the rest of its input: dynamic int8 layers take the
    activation scale from each call's whole input, so one clip scores differently alone than
    in a batch (and one step alone than with others). Float and float16 layers do not."""
    for m in model.modules():
        if isinstance(m, DynamicRNNBase) and m.dtype == torch.qint8:
            return True
        if isinstance(m, nnqd.Linear) and m.weight().dtype == torch.qint8:
            return True
    return False


def _rnn_weight_shapes(m: nn.Module) -> tuple[int, int]:
    """(weight elements, bias elements) of a (possibly quantized) GRU/RNN module."""
    gates = {"GRU": 3, "LSTM": 4}.get(m.mode if hasattr(m, "mode") else "", 1)
    weights = biases = 0
    for layer in range(m.num_layers):
        inp = m.input_size if layer == 0 else m.hidden_size
        weights += gates * m.hidden_size * (inp + m.hidden_size)
        biases += 2 * gates * m.hidden_size
    return weights, biases


def stored_bytes(model: nn.Module) -> int:
    """Bytes the weights take as stored: elements x bytes per element, plus quantization params.

    Float tensors count 4 (or 2) bytes per element; int8 weights 1 byte plus 8 bytes of scale and
    zero point per tensor (per output channel for the per-channel conv); biases stay float32.
    The same rule for float and quantized models, so compression ratios compare like with like.
    """
    total = 0
    for m in model.modules():
        if isinstance(m, nnqd.Linear):
            # weight() is int8 for an int8 layer; a float16 one hands back float32 copies
            w, b = m.weight(), m.bias()
            per = 1 if w.dtype == torch.qint8 else 2
            total += w.numel() * per + (b.numel() * 4 if b is not None else 0)
            total += 8 if per == 1 else 0
        elif isinstance(m, DynamicRNNBase):
            w, b = _rnn_weight_shapes(m)
            per = 1 if m.dtype == torch.qint8 else 2
            tensors = 2 * m.num_layers
            total += w * per + b * 4 + (8 * tensors if per == 1 else 0)
        elif isinstance(m, nnq.Conv2d):
            w = m.weight()
            channels = w.q_per_channel_scales().numel() if w.qscheme() in (
                torch.per_channel_affine, torch.per_channel_symmetric) else 1
            total += w.numel() + 8 * channels + 8  # weight, its scales, output scale/zp
            bias = m.bias()
            total += bias.numel() * 4 if bias is not None else 0
        elif isinstance(m, nnq.Quantize):
            total += 8
        else:
            total += sum(p.numel() * p.element_size() for p in m.parameters(recurse=False))
    return total


def state_dict_bytes(model: nn.Module) -> int:
    """Size of the serialized state_dict (torch.save), overheads included; for reference."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def quantized_modules(model: nn.Module) -> list[str]:
    """Names of modules that ended up quantized, so a mode that did nothing is visible."""
    kinds = (nnqd.Linear, DynamicRNNBase, nnq.Conv2d)
    return [name for name, m in model.named_modules() if isinstance(m, kinds)]
