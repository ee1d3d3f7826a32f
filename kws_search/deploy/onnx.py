"""ONNX export with external state (`onnx_runtime.OnnxStream` streams audio through the file).

kws_streaming's external-state mode: the file is one fixed-shape graph that takes one block of
audio (`stride_time` hops: exactly one RNN step) and every piece of state as inputs, and gives
the keyword probability and the next state as outputs. The caller keeps the state; nothing is
hidden in the runtime. Inputs, in order:

- audio [block_samples]: the next block of 16 kHz samples.
- tail [n_fft - hop] (only when the FFT is longer than the hop): the samples before it, which
  the block's first frames overlap.
- frames [1, 1, n_mels, kernel_time - stride_time] (only when the kernel is longer than the
  stride): log-mel frames of earlier blocks the conv still reads; [1, 1, kernel_time -
  stride_time, n_mels] (time-major) when the FFT is as long as the hop.
- hidden [layers, 1, hidden]: the RNN state.
- window [window, 1 + classes]: the attention window, oldest first; per step its attention
  weight exp(energy) and its class logits (`models.pool_logits`; an empty slot is zeros).

Outputs: prob [] and the next value of each state, named `next_<state>`, in the same order.
Every state starts as zeros. The block grid is set so that each block ends exactly where an RNN
step's last frame ends: the caller prepends `lead_samples` zeros to the stream, and the first
`warmup_blocks` blocks only fill the front end's state (`tail`, `frames`): they are not steps,
so the caller keeps their other states at zero and ignores their prob. All three numbers are
in the model's metadata, with the export info (`kws_search.json`).

The graph is the model's own streaming forms run on one block: the front end is
`LogMel.dft` (the window and DFT basis are computed from their definition when the session
loads, so the file stores only the mel matrix), of which only the frames the conv reads are
computed (a kernel shorter than its stride skips the rest); then the conv, `CRNN.step` and the
attention head's `pool_logits`.

Quantization modes: `none` stores float32 weights and `float16` stores the RNN and linear
weights in float16, computed in float32 as PyTorch's dynamic float16 does: both give the
TorchScript file's numbers to float rounding. ONNX Runtime has no int8 GRU (and no form of
PyTorch's per-call activation scales), so the int8 modes fall back to weight-only int8 for the
GRU and linear layers: their weights are stored as int8 and dequantized in the graph, and
their activations stay float. The static int8 conv (`static_int8`, `qat`) is held as it is
deployed: int8 weights, and input and output rounded to uint8 with the calibrated scales
(QuantizeLinear/DequantizeLinear). Their numbers are close to the scored int8 model's, not
equal.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kws_search.checkpoint import CheckpointError, read_checkpoint
from kws_search.data.front_end import FeatureConfig, LogMel
from kws_search.deploy.onnx_weights import onnx_weights, store_weights
from kws_search.deploy.torchscript import (
    KEYWORD_CLASS,
    build_streaming,
    export_info,
)
from kws_search.files import write_atomic
from kws_search.geometry import StreamGeometry
from kws_search.models import CRNN, CRNNConfig, pool_logits
from kws_search.options import EXPORT_INFO
from kws_search.quantize import calibrated_structure, convert

logger = logging.getLogger(__name__)

OPSET = 18
# constant folding at export: only nodes with inputs up to FOLD_INPUTS elements (scalars and
# shapes), and results up to FOLD_OUTPUTS; weights and the DFT basis stay as stored/computed
FOLD_INPUTS, FOLD_OUTPUTS = 16, 256
ENERGY_LIMIT = 40.0  # exp(+-40) and sums of 100 of them stay well inside float32


class BlockStep(nn.Module):
    """One RNN step of the streaming model from one block of audio, all state explicit: the
    model's own forms, run on a block (`LogMel.dft`, the conv, `CRNN.step`, `pool_logits`).

    Written for a short graph (each ONNX Runtime node costs about 0.3 us a call, whatever its
    size): the attention window keeps, per step, its weight exp(energy) and its class logits,
    not the step's output (`pool_logits`), so an empty slot (all zeros) weighs nothing.
    """

    def __init__(self, model: CRNN, features: FeatureConfig, window: int,
                 conv_qparams: tuple[tuple[float, int], tuple[float, int]] | None = None,
                 ) -> None:
        super().__init__()
        c = model.config
        self.model = model.eval()  # the export's own copy (onnx_weights)
        # one step of one stream is the same either way, and batch-second has no Transposes
        model.rnn.batch_first = False
        self.conv_qparams = conv_qparams  # static int8 conv: (scale, zero point) in and out
        self.front = LogMel(features, center=False)
        self.hop = features.hop_length
        geometry = StreamGeometry.of(c, features)
        self.need = geometry.block_frames  # frames of this block the conv reads
        self.carry = geometry.carried_frames  # frames of earlier blocks it reads
        self.stride = c.stride_time
        self.window = window
        self.time_major = features.n_fft == self.hop  # frames do not overlap
        self.tail = geometry.tail_samples
        self.energy_limit = _energy_limit(model)

    def forward(self, audio: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        named = dict(zip(self.state_shapes(), state, strict=True))
        tail, frames = named.get("tail"), named.get("frames")
        samples = audio if tail is None else torch.cat([tail, audio])
        first = (self.stride - self.need) * self.hop  # the frames before it are never read
        mel = self.front.dft(samples[first:], self.time_major)
        time_axis = 2 if self.time_major else 3
        columns = mel if frames is None else torch.cat([frames, mel], dim=time_axis)
        conv = self._conv(columns)  # [1, channels, freq, 1] ([1, channels, 1, freq])
        out, energy, hidden = self.model.step(conv.reshape(1, 1, -1), named["hidden"])
        if self.energy_limit is not None:
            energy = energy.clamp(-self.energy_limit, self.energy_limit)
        row = torch.cat([torch.exp(energy)[None], self.model.classifier(out)], dim=1)
        window = torch.cat([named["window"][1:], row])  # [window, 1 + classes]
        logits = pool_logits(window[:, 0], window[:, 1:])
        prob = torch.softmax(logits, dim=0)[KEYWORD_CLASS]
        next_state = []
        if tail is not None:
            next_state.append(samples[samples.size(0) - tail.size(0):])
        if frames is not None:
            next_state.append(columns.narrow(time_axis, columns.size(time_axis)
                                             - frames.size(time_axis), frames.size(time_axis)))
        return (prob, *next_state, hidden, window)

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        """The conv (on time-major frames, with its kernel and stride transposed to match); a
        static int8 one rounds its input and output to uint8 as PyTorch's does."""
        if self.conv_qparams is not None:
            in_scale, in_zero = self.conv_qparams[0]
            x = torch.fake_quantize_per_tensor_affine(x, in_scale, in_zero, 0, 255)
        conv = self.model.conv
        if self.time_major:
            x = nn.functional.conv2d(x, conv.weight.transpose(2, 3), conv.bias,
                                     stride=conv.stride[::-1])
        else:
            x = conv(x)
        if self.conv_qparams is not None:
            out_scale, out_zero = self.conv_qparams[1]
            x = torch.fake_quantize_per_tensor_affine(x, out_scale, out_zero, 0, 255)
        return x

    def state_shapes(self) -> dict[str, list[int]]:
        """Name -> shape of every state input, in graph order (all start as zeros)."""
        c = self.model.config
        shapes = {}
        if self.tail:
            shapes["tail"] = [self.tail]
        if self.carry:
            shapes["frames"] = ([1, 1, self.carry, c.n_mels] if self.time_major
                                else [1, 1, c.n_mels, self.carry])
        shapes.update(hidden=list(self.model.state_shape), window=[self.window, 1 + c.n_classes])
        return shapes


def _energy_limit(model: CRNN) -> float | None:
    """None when no attention energy can pass +-ENERGY_LIMIT (so exp(energy) is safe in float);
    otherwise the limit, which the graph then clamps energies to.

    The last energy layer reads a tanh, so |energy| <= sum |weights| + |bias|."""
    last = model.attention.energy[-1]
    bound = float(last.weight.detach().abs().sum() + last.bias.detach().abs().sum())
    return None if bound <= ENERGY_LIMIT else ENERGY_LIMIT


def export_onnx(checkpoint: Path, out: Path, max_window_seconds: float = 1.0,
                threshold: float | None = None) -> tuple[Path, dict[str, Any]]:
    """Write the streaming model of a checkpoint as ONNX with external state; return the path
    and its info (also in the file's metadata)."""
    import onnx

    out = Path(out)
    if out.is_dir():
        raise CheckpointError(f"--out {out} is a folder; give a file name, e.g. "
                              f"{out / 'model.onnx'}")
    state = read_checkpoint(checkpoint)
    quant = state.get("quant", "none")
    calibrated = calibrated_structure(CRNNConfig.from_dict(state["model"]), quant)
    calibrated.load_state_dict(state["state_dict"])
    # refuses what cannot stream, and sets the window and threshold as the TorchScript does
    stream = build_streaming(convert(calibrated, quant), state, max_window_seconds, threshold)
    model, plan, conv_qparams = onnx_weights(calibrated, quant)
    features = FeatureConfig.from_dict(state["features"])
    block = BlockStep(model, features, stream.max_window_length, conv_qparams)
    shapes = block.state_shapes()
    layout = StreamGeometry.of(model.config, features).block_layout()
    example = (torch.zeros(layout["block_samples"]),
               *(torch.zeros(shape) for shape in shapes.values()))
    proto = _quiet_export(block, example, plan, ["audio", *shapes],
                          ["prob", *(f"next_{name}" for name in shapes)])
    info = export_info(state, checkpoint, stream, quant=quant, **layout, onnx_weights=(
        "float32" if quant == "none" else "float16" if quant == "float16"
        else "int8, weight-only (fallback)"))
    meta = {**{k: str(v) for k, v in layout.items()}, "sample_rate": str(features.sample_rate),
            "threshold": repr(stream.threshold), "keyword": state["keyword"],
            EXPORT_INFO: json.dumps(info, default=str)}
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    try:
        write_atomic(out, proto.SerializeToString())
    except OSError as exc:
        raise CheckpointError(f"cannot write {out}: {exc.strerror}; pass --out a writable "
                              "file") from None
    logger.info("exported ONNX %s model (%s) to %s", state["keyword"], quant, out)
    return out, info


def _quiet_export(module: nn.Module, example: tuple[torch.Tensor, ...], plan: dict[str, Any],
                  inputs: list[str], outputs: list[str]) -> Any:
    """torch.onnx.export without its progress lines or per-node provenance. Small constants
    are folded; large ones (the DFT basis, the frame index) stay computations that ONNX
    Runtime folds when the session loads, so the file does not store them."""
    import contextlib
    import warnings

    import onnxscript.optimizer

    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it warns that torchvision's ops are not registered
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, example, dynamo=True, optimize=False,
                                    opset_version=OPSET, input_names=inputs,
                                    output_names=outputs, verbose=False)
        exporter_log.setLevel(level)
        proto = program.model_proto
        store_weights(proto, plan, "model.")
        proto = onnxscript.optimizer.optimize(proto, input_size_limit=FOLD_INPUTS,
                                              output_size_limit=FOLD_OUTPUTS)
    for node in proto.graph.node:
        del node.metadata_props[:]
    return proto
