"""The CRNN keyword spotter (teacher and students share it) and its config.

Conv2d over the log-mel image -> flatten channels x frequency -> GRU/RNN -> attention pooling
-> linear classifier, as in the course seminar. The conv sits between a QuantStub and a
DeQuantStub so static post-training quantization and QAT can target it; in float they are
identities.

One model, two execution modes (as kws_streaming wraps one model definition for its streaming
modes): `forward` runs a batch of whole clips at once, for training; `step` (one RNN step with
explicit state) and `head` (attention pooling and the classifier over the steps so far) are
what the streaming export runs, and `stepwise` runs them over whole clips, one clip and one
step per call. Dynamically quantized layers pick their activation scale from each call's input,
so for them only the stepwise path gives the deployed model's numbers: the search, the
teacher's measurement and `evaluate` score that path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from kws_search.errors import ConfigError

RNN_CELLS = ("gru", "rnn")


def conv_steps(frames: int, kernel_time: int, stride_time: int) -> int:
    """RNN time steps the conv makes of `frames` feature frames (0 when too few)."""
    if frames < kernel_time:
        return 0
    return (frames - kernel_time) // stride_time + 1


@dataclass(frozen=True)
class CRNNConfig:
    """Architecture of a CRNN; teacher defaults are the seminar's base model (hidden 64)."""

    n_mels: int = 40
    cnn_channels: int = 8
    kernel_freq: int = 5
    kernel_time: int = 20
    stride_freq: int = 2
    stride_time: int = 8
    rnn: str = "gru"
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.1
    n_classes: int = 2
    # teachers only (an imported one may be): a bidirectional RNN needs the whole clip, so it
    # cannot stream, and students never are
    bidirectional: bool = False

    def __post_init__(self) -> None:
        if self.rnn not in RNN_CELLS:
            raise ConfigError(f"model.rnn must be one of {RNN_CELLS}, got {self.rnn!r}")
        for name in ("cnn_channels", "kernel_freq", "kernel_time", "stride_freq",
                     "stride_time", "hidden", "layers", "n_mels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.n_classes < 2:
            raise ConfigError(f"model.n_classes must be >= 2, got {self.n_classes}")
        if self.kernel_freq > self.n_mels:
            raise ConfigError(
                f"model.kernel_freq={self.kernel_freq} exceeds n_mels={self.n_mels}")

    @property
    def conv_freq(self) -> int:
        """Frequency bins after the conv."""
        return (self.n_mels - self.kernel_freq) // self.stride_freq + 1

    @property
    def rnn_input(self) -> int:
        """Features per time step fed to the RNN: channels x frequency bins."""
        return self.cnn_channels * self.conv_freq

    @property
    def rnn_output(self) -> int:
        """Features per time step out of the RNN (both directions of a bidirectional one)."""
        return self.hidden * (2 if self.bidirectional else 1)

    def steps(self, frames: int) -> int:
        """RNN time steps produced from `frames` feature frames."""
        return conv_steps(frames, self.kernel_time, self.stride_time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CRNNConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)


class Attention(nn.Module):
    """Additive attention pooling over time: Linear -> Tanh -> Linear -> softmax."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.energy = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [batch, time, hidden]
        weights = torch.softmax(self.energy(x).squeeze(-1), dim=-1)  # [batch, time]
        context = torch.bmm(weights.unsqueeze(1), x).squeeze(1)  # [batch, hidden]
        return context, weights


class CRNN(nn.Module):
    """Conv + RNN + attention keyword classifier on log-mel features [batch, n_mels, frames]."""

    __jit_ignored_attributes__ = ["config"]  # a scripted (exported) model keeps the ints below

    def __init__(self, config: CRNNConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.kernel_time = c.kernel_time
        self.stride_time = c.stride_time
        self.bidirectional = c.bidirectional
        self.state_shape = [c.layers * (2 if c.bidirectional else 1), 1, c.hidden]
        self.quant = torch.ao.quantization.QuantStub()
        self.conv = nn.Conv2d(1, c.cnn_channels, (c.kernel_freq, c.kernel_time),
                              stride=(c.stride_freq, c.stride_time))
        self.dequant = torch.ao.quantization.DeQuantStub()
        rnn_cls = nn.GRU if c.rnn == "gru" else nn.RNN
        self.rnn = rnn_cls(c.rnn_input, c.hidden, num_layers=c.layers, batch_first=True,
                           dropout=c.dropout if c.layers > 1 else 0.0,
                           bidirectional=c.bidirectional)
        self.attention = Attention(c.rnn_output)
        self.classifier = nn.Linear(c.rnn_output, c.n_classes)

    def conv_features(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel [batch, n_mels, frames] -> RNN inputs [batch, steps, channels * freq]."""
        x = self.quant(x.unsqueeze(1))
        x = self.dequant(self.conv(x))  # [batch, channels, freq, steps]
        return x.flatten(1, 2).transpose(1, 2)

    def forward_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [batch, classes] and attention weights [batch, steps] (for attention KD)."""
        out, _ = self.rnn(self.conv_features(x))  # [batch, steps, hidden]
        context, weights = self.attention(out)
        return self.classifier(context), weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_parts(x)[0]

    # --- the streaming mode: one step per call, state passed in and out ---------------------

    @torch.jit.export
    def steps(self, frames: int) -> int:
        """RNN steps computable from `frames` log-mel frames."""
        return conv_steps(frames, self.kernel_time, self.stride_time)

    @torch.jit.export
    def initial_state(self) -> torch.Tensor:
        """The RNN state before the first step: zeros [layers, 1, hidden]."""
        return torch.zeros(self.state_shape)

    @torch.jit.export
    def step(self, x: torch.Tensor, state: torch.Tensor,
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One RNN step of one stream: input [1, 1, rnn_input] (a conv column) and state
        [layers, 1, hidden] -> output [1, hidden], its attention energy [1], the new state."""
        out, state = self.rnn(x, state)
        out = out[0]  # [1, hidden]
        return out, self.attention.energy(out).squeeze(-1), state

    @torch.jit.export
    def head(self, outputs: torch.Tensor, energies: torch.Tensor) -> torch.Tensor:
        """Logits [classes] of attention pooling over step outputs [T, hidden] with their
        energies [T] (the steps a stream keeps in its window), in the form every export
        computes (`pool_logits`)."""
        if energies.numel() == 0:  # nothing heard yet: what the classifier makes of silence
            return self.classifier(outputs.new_zeros(1, outputs.size(1)))[0]
        return pool_logits(torch.exp(energies - energies.max()), self.classifier(outputs))

    @torch.jit.export
    def run_steps(self, x: torch.Tensor, state: torch.Tensor,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`step` over RNN inputs [1, steps, rnn_input], one call each -> outputs [steps,
        hidden], energies [steps] and the state after the last step."""
        outputs: list[torch.Tensor] = []
        energies: list[torch.Tensor] = []
        for t in range(x.size(1)):
            out, energy, state = self.step(x[:, t:t + 1], state)
            outputs.append(out)
            energies.append(energy)
        if len(outputs) == 0:
            return x.new_zeros(0, state.size(-1)), x.new_zeros(0), state
        return torch.cat(outputs), torch.cat(energies), state

    @torch.jit.export
    def stepwise(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [batch, classes] of whole clips [batch, n_mels, frames] computed as the
        exported stream computes them: one clip per call, the RNN one step per call.

        A bidirectional model cannot step (it needs the whole clip); it runs `forward`.
        """
        if self.bidirectional:
            return self.forward(x)
        logits: list[torch.Tensor] = []
        for clip in x:
            outputs, energies, _ = self.run_steps(self.conv_features(clip.unsqueeze(0)),
                                                  self.initial_state())
            logits.append(self.head(outputs, energies))
        return torch.stack(logits)


def pool_logits(weights: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Attention pooling as every streaming form computes it: step weights [T] (exp of the
    energies, up to one common factor) and the classifier's logits of each step [T, classes]
    -> the pooled logits [classes].

    The classifier is linear and softmax weights sum to one, so pooling the logits is pooling
    the outputs; a stream then keeps one weight and a few logits per step, not the output, and
    a step of weight 0 (an empty slot of a fixed-size window) counts for nothing."""
    return (weights @ logits) / weights.sum()


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of a float model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
