"""Streaming TorchScript export: raw 16 kHz audio in, keyword probability out.

`StreamingKWS` wraps the trained model itself (the deployed `CRNN`, whose `step` and `head` are
its streaming mode) behind a log-mel front end, with explicit state in buffers, as
kws_streaming's "external state" mode does:

- samples: audio not yet framed. Frame k covers samples [k * hop, k * hop + n_fft), the framing
  the search trains and scores on, so a clip's stream equals its training features. (Models
  made with the centered STFT are primed with n_fft // 2 zeros instead; their first frames see
  zeros where training saw reflect padding, and their last frames never arrive.)
- frames: log-mel frames the conv's time kernel has not consumed yet (fewer than kernel_time).
- hidden: the RNN state [layers, 1, hidden], carried between steps.
- outputs / energies: at most `max_window_length` RNN outputs and their attention energies;
  attention pools over them, the oldest dropped first.

Each call runs the network only on the new frames and steps. `offline(audio)` is the same
computation on a whole clip from a fresh state, the reference the stream is compared with. The
RNN runs one step per call in both, as it does when the search scores a student
(`CRNN.stepwise`), so dynamic int8 layers give the same numbers in all three.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kws_search.checkpoint import (
    CheckpointError,
    is_exported,
    load_model,
    read_checkpoint,
)
from kws_search.data.front_end import FeatureConfig, LogMel
from kws_search.errors import ConfigError
from kws_search.files import write_atomic
from kws_search.geometry import StreamGeometry
from kws_search.models import CRNN, CRNNConfig
from kws_search.options import EXPORT_INFO

logger = logging.getLogger(__name__)

KEYWORD_CLASS = 1


def _trim(buffer: torch.Tensor, end: int, keep_from: int) -> torch.Tensor:
    """Drop items before global index `keep_from` from a buffer holding [end - len, end)."""
    length = buffer.size(-1)
    drop = min(max(keep_from - (end - length), 0), length)
    return buffer[..., drop:]


class StreamingKWS(nn.Module):
    """Keyword probability of a 16 kHz audio stream, batch 1, with state kept in buffers."""

    def __init__(self, model: CRNN, model_config: CRNNConfig, features: FeatureConfig, *,
                 keyword: str, quant: str = "none", max_window_seconds: float = 1.0,
                 threshold: float = 0.5) -> None:
        super().__init__()
        if features.hop_length > features.n_fft:
            raise ConfigError(f"hop_length {features.hop_length} > n_fft {features.n_fft}: "
                             "streaming needs overlapping frames")
        if max_window_seconds <= 0:
            raise ConfigError(f"max_window_seconds must be > 0, got {max_window_seconds}")
        self.front = LogMel(features, center=False)
        self.model = model.eval()
        self.keyword = keyword
        self.keyword_class = KEYWORD_CLASS
        self.quant = quant
        geometry = StreamGeometry.of(model_config, features)  # `_frames_at` is its frames_at
        self.sample_rate = geometry.sample_rate
        self.hop_length = geometry.hop
        self.n_fft = geometry.n_fft
        self.pad = geometry.pad
        self.stride_time = geometry.stride
        self.max_window_length = geometry.window_steps(max_window_seconds)
        self.window_seconds = float(max_window_seconds)
        self.threshold = float(threshold)
        c = model_config
        self.register_buffer("samples", torch.zeros(self.pad))  # [samples]
        self.register_buffer("frames", torch.zeros(c.n_mels, 0))  # [n_mels, frames]
        self.register_buffer("hidden", model.initial_state())  # [layers, 1, hidden]
        self.register_buffer("outputs", torch.zeros(0, c.hidden))  # [steps <= window, hidden]
        self.register_buffer("energies", torch.zeros(0))  # [steps <= window]
        self.register_buffer("last_prob", torch.zeros(()))  # []
        self.samples_seen = 0
        self.frames_done = 0
        self.steps_done = 0
        self.eval()

    # --- the front end and the model's streaming mode -----------------------------------------

    def _frames_at(self, samples: int) -> int:
        """Frames computable once `samples` real samples have arrived
        (`StreamGeometry.frames_at`, in TorchScript)."""
        padded = samples + self.pad
        if padded < self.n_fft:
            return 0
        return (padded - self.n_fft) // self.hop_length + 1

    def _log_mel(self, samples: torch.Tensor, count: int) -> torch.Tensor:
        """The first `count` frames of buffered samples -> log-mel [n_mels, count]."""
        return self.front(samples[:(count - 1) * self.hop_length + self.n_fft])

    def _steps(self, frames: torch.Tensor, count: int, hidden: torch.Tensor,
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The first `count` steps of buffered frames [n_mels, F] -> outputs [count, hidden],
        attention energies [count] and the new hidden state, one step per call (so the result
        does not depend on how the audio was chunked)."""
        x = frames[:, :(count - 1) * self.stride_time + self.model.kernel_time]
        # one column more than needed (zeros): torch's x86 static int8 conv computes a wrong
        # result when its output is one column wide, as a stream of one step per call asks
        x = torch.cat([x, x.new_zeros(x.size(0), self.stride_time)], dim=1)
        return self.model.run_steps(self.model.conv_features(x.unsqueeze(0))[:, :count], hidden)

    def _prob(self, outputs: torch.Tensor, energies: torch.Tensor) -> torch.Tensor:
        """Keyword probability of attention pooling over outputs [T, hidden], energies [T]."""
        return torch.softmax(self.model.head(outputs, energies), dim=-1)[self.keyword_class]

    def _window_probs(self, outputs: torch.Tensor, energies: torch.Tensor, first: int,
                      count: int) -> torch.Tensor:
        """Probabilities after steps first..first+count-1 of outputs [T, hidden] -> [count]."""
        probs: list[torch.Tensor] = []
        for i in range(first, first + count):
            start = max(0, i + 1 - self.max_window_length)
            probs.append(self._prob(outputs[start:i + 1], energies[start:i + 1]))
        return torch.stack(probs)

    # --- streaming ---------------------------------------------------------------------------

    def _advance(self, chunk: torch.Tensor, all_steps: bool) -> torch.Tensor:
        """Consume chunk [samples]; probabilities after each new step ([new] or [1] or [0])."""
        self.samples_seen += chunk.size(0)
        samples = torch.cat([self.samples, chunk.to(self.samples.dtype)])
        new_frames = self._frames_at(self.samples_seen) - self.frames_done
        if new_frames > 0:
            mel = self._log_mel(samples, new_frames)  # [n_mels, new_frames]
            self.frames = torch.cat([self.frames, mel], dim=1)
            self.frames_done += new_frames
        self.samples = _trim(samples, self.samples_seen + self.pad,
                             self.frames_done * self.hop_length)
        self.frames = _trim(self.frames, self.frames_done, self.steps_done * self.stride_time)
        new_steps = self.model.steps(self.frames_done) - self.steps_done
        if new_steps <= 0:
            return torch.zeros(0)
        out, energy, self.hidden = self._steps(self.frames, new_steps, self.hidden)
        outputs = torch.cat([self.outputs, out])
        energies = torch.cat([self.energies, energy])
        old = self.outputs.size(0)
        if all_steps:
            probs = self._window_probs(outputs, energies, old, new_steps)
        else:
            probs = self._window_probs(outputs, energies, old + new_steps - 1, 1)
        keep = outputs.size(0) - self.max_window_length
        if keep > 0:
            outputs, energies = outputs[keep:], energies[keep:]
        self.outputs, self.energies = outputs, energies
        self.steps_done += new_steps
        self.frames = _trim(self.frames, self.frames_done, self.steps_done * self.stride_time)
        self.last_prob = probs[-1]
        return probs

    def forward(self, chunk: torch.Tensor) -> torch.Tensor:
        """Keyword probability [] after a chunk of samples [samples] (any length)."""
        with torch.no_grad():
            self._advance(chunk, False)
        return self.last_prob.clone()

    @torch.jit.export
    def forward_steps(self, chunk: torch.Tensor) -> torch.Tensor:
        """One probability per 10 ms hop completed in the chunk [samples] -> [hops].

        Hop j (ending at sample j * hop_length) reports the probability after every step its
        samples allow; hops without a new RNN step repeat the previous probability.
        """
        with torch.no_grad():
            before_samples, before_steps = self.samples_seen, self.steps_done
            prev = self.last_prob.clone()
            probs = self._advance(chunk, True)  # [new steps]
            first_hop = before_samples // self.hop_length + 1
            last_hop = self.samples_seen // self.hop_length
            out: list[torch.Tensor] = []
            for hop in range(first_hop, last_hop + 1):
                step = self.model.steps(self._frames_at(hop * self.hop_length)) - before_steps
                out.append(prev if step <= 0 else probs[step - 1])
            if len(out) == 0:
                return torch.zeros(0)
            return torch.stack(out)

    @torch.jit.export
    def reset(self) -> None:
        """Forget the stream: empty buffers, zero hidden state, probability 0."""
        self.samples = torch.zeros(self.pad)
        self.frames = self.frames[:, :0]
        self.hidden = torch.zeros_like(self.hidden)
        self.outputs = self.outputs[:0]
        self.energies = self.energies[:0]
        self.last_prob = torch.zeros(())
        self.samples_seen = 0
        self.frames_done = 0
        self.steps_done = 0

    # --- whole-clip reference ----------------------------------------------------------------

    @torch.jit.export
    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-mel frames [n_mels, frames] the stream computes for a whole clip [samples]."""
        count = self._frames_at(audio.size(0))
        if count <= 0:
            return self.frames[:, :0]
        return self._log_mel(torch.cat([torch.zeros(self.pad), audio]), count)

    @torch.jit.export
    def offline(self, audio: torch.Tensor) -> torch.Tensor:
        """Probability [] for a whole clip [samples] from a fresh state, one RNN step at a
        time as the stream runs.

        Attention pools over the last max_window_length steps; the stream state is untouched.
        """
        with torch.no_grad():
            frames = self.features(audio)  # [n_mels, frames]
            steps = self.model.steps(frames.size(1))
            if steps <= 0:
                return torch.zeros(())
            out, energies, _ = self._steps(frames, steps, self.model.initial_state())
            window = self.max_window_length
            return self._prob(out[-window:], energies[-window:])


def build_streaming(model: nn.Module, state: dict[str, Any], max_window_seconds: float = 1.0,
                    threshold: float | None = None) -> StreamingKWS:
    """A StreamingKWS around a loaded model and its checkpoint dict (see checkpoint.py)."""
    config = CRNNConfig.from_dict(state["model"])
    if config.bidirectional:
        raise CheckpointError("a bidirectional model needs the whole clip and cannot stream; "
                              "export a student (students are unidirectional)")
    if threshold is None:
        threshold = float(state.get("metrics", {}).get("threshold", 0.5))
    return StreamingKWS(model, config,
                        FeatureConfig.from_dict(state["features"]), keyword=state["keyword"],
                        quant=state.get("quant", "none"), max_window_seconds=max_window_seconds,
                        threshold=threshold)


def export_checkpoint(checkpoint: Path, out: Path, max_window_seconds: float = 1.0,
                      threshold: float | None = None) -> Path:
    """Script the streaming model of a checkpoint and save it with its configs; return `out`.

    The file loads with plain `torch.jit.load` (no kws_search needed); its configs and metrics
    are in the extra file `kws_search.json` (see `read_export_info`).
    """
    out = Path(out)
    if out.is_dir():
        raise CheckpointError(f"--out {out} is a folder; give a file name, e.g. {out / 'model.pt'}")
    model, state = load_model(checkpoint)
    module = build_streaming(model, state, max_window_seconds, threshold)
    scripted = torch.jit.script(module)
    info = export_info(state, checkpoint, module, max_window_length=module.max_window_length)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer,
                   _extra_files={EXPORT_INFO: json.dumps(info, indent=2, default=str)})
    try:  # Python's own file errors name the path and the reason (a C++ enforce does not)
        write_atomic(out, buffer.getvalue())  # nothing half-written is left behind
    except OSError as exc:
        raise CheckpointError(f"cannot write {out}: {exc.strerror}; pass --out a writable "
                              "file") from None
    logger.info("exported streaming %s model (%s, window %d steps) to %s",
                state["keyword"], state.get("quant"), module.max_window_length, out)
    return out


def export_info(state: dict[str, Any], checkpoint: Path, stream: nn.Module,
                **more: Any) -> dict[str, Any]:
    """What an exported file says about itself (`kws_search.json`, in TorchScript and ONNX
    alike): the checkpoint's configs and metrics, the threshold and window of `stream` (the
    streaming module), and `more` for the format's own entries."""
    return {
        "kind": state.get("kind"), "keyword": state["keyword"], "quant": state.get("quant"),
        "model": state["model"], "features": state["features"],
        "metrics": state.get("metrics", {}), "threshold": stream.threshold,
        "max_window_seconds": stream.window_seconds,
        "dataset_fingerprint": state.get("dataset_fingerprint"), "checkpoint": str(checkpoint),
        **more,
    }


def load_exported(path: Path) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """A scripted streaming model (reset, in eval mode) and its `kws_search.json` info.

    CheckpointError says what the file is instead when it is not one (a trial or teacher
    checkpoint is exported first)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model {path} does not exist")
    if not is_exported(path):
        try:
            kind = f"a {read_checkpoint(path)['kind']} checkpoint"
        except CheckpointError:
            kind = "not a model file"
        raise CheckpointError(f"{path} is {kind}, not a streaming model made by `kws-search "
                              "export`; export it first (`kws-search export --trial N`, or "
                              "`--export-teacher` for the teacher)")
    extra = {EXPORT_INFO: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    module.eval()
    module.reset()
    info = json.loads(extra[EXPORT_INFO]) if extra[EXPORT_INFO] else {}
    return module, info
