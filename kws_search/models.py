"""The CRNN keyword spotter (teacher and students share it) and its config.

Conv2d over the log-mel image -> flatten channels x frequency -> GRU/RNN -> attention pooling
-> linear classifier, as in the course seminar. The conv sits between a QuantStub and a
DeQuantStub so static post-training quantization and QAT can target it; in float they are
identities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

RNN_CELLS = ("gru", "rnn")


@dataclass(frozen=True)
class CRNNConfig:
    """Architecture of a CRNN; teacher defaults follow BACKGROUND.md (hidden 64)."""

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
            raise ValueError(f"model.rnn must be one of {RNN_CELLS}, got {self.rnn!r}")
        for name in ("cnn_channels", "kernel_freq", "kernel_time", "stride_freq",
                     "stride_time", "hidden", "layers", "n_mels"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel_freq > self.n_mels:
            raise ValueError(
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
        return max(0, (frames - self.kernel_time) // self.stride_time + 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CRNNConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
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

    def __init__(self, config: CRNNConfig) -> None:
        super().__init__()
        self.config = config
        c = config
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


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of a float model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
