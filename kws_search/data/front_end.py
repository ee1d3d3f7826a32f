"""The front end: feature settings, and the log-mel module in the two forms that compute it.

`LogMel` is torchaudio's mel spectrogram and a log: the form that makes every feature the
search trains and scores on, and the TorchScript stream's. `LogMel.dft` computes the same
frames as an ONNX graph can (a strided convolution with the windowed DFT basis), and is what
the ONNX export runs; a test holds the two equal.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torchaudio
from torch import nn

from kws_search.errors import ConfigError


@dataclass(frozen=True)
class FeatureConfig:
    """Front end and noise settings; part of the cache key and stored in every checkpoint."""

    sample_rate: int = 16_000
    clip_samples: int = 16_000
    n_fft: int = 400
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 40
    snr_low: float = -5.0
    snr_high: float = 15.0
    noise_prob: float = 0.8
    max_shift: float = 0.1  # seconds of random time shift for train copies
    train_variants: int = 8  # augmented copies of each train clip; an epoch picks one per clip
    # augmentation of train copies (kws_search.data.augment); 0 turns a lever off
    speed: float = 0.15  # speed perturbation: 1 +- speed
    reverb_prob: float = 0.5  # share of copies in a simulated room
    rt60_low: float = 0.1
    rt60_high: float = 0.8
    vtlp: float = 0.12  # vocal-tract-length warp factor: 1 +- vtlp
    colour_prob: float = 0.5  # share of copies through a random channel response
    seed: int = 0
    # False: frame k covers samples [k * hop, k * hop + n_fft), as a stream frames audio as it
    # arrives, so what is trained and scored is what the exported file computes. True: the
    # centered STFT (reflect padding by n_fft // 2) of models made before.
    center: bool = False

    @property
    def frames(self) -> int:
        """Feature frames per clip."""
        return self.frames_in(self.clip_samples)

    def frames_in(self, samples: int) -> int:
        """Feature frames in `samples` samples of audio (0 when too few)."""
        if self.center:
            return samples // self.hop_length + 1
        return 0 if samples < self.n_fft else (samples - self.n_fft) // self.hop_length + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        """The config a checkpoint or cache stores; one written before `center` existed was
        made with the centered STFT."""
        return cls(**{"center": True, **d})

    def with_front_end(self, n_fft: int, n_mels: int) -> FeatureConfig:
        """These settings with another FFT size (and window) and number of mel bands: a
        student's own front end over the same audio, augmented the same way."""
        return replace(self, n_fft=n_fft, win_length=n_fft, n_mels=n_mels)


def front_end_problem(config: FeatureConfig) -> str | None:
    """Why a front end cannot be used (frames that do not overlap, a mel band that no FFT
    bin falls in), or None."""
    if config.n_fft < config.hop_length:
        return (f"n_fft {config.n_fft} is shorter than the {config.hop_length}-sample hop, so "
                "frames would not overlap")
    bank = torchaudio.functional.melscale_fbanks(config.n_fft // 2 + 1, 0.0,
                                                 config.sample_rate / 2, config.n_mels,
                                                 config.sample_rate)
    empty = int((bank.max(dim=0).values == 0).sum())
    if empty:
        return (f"{empty} of {config.n_mels} mel bands get no bin of a {config.n_fft}-point "
                "FFT; use fewer mel bands or a longer FFT")
    return None


class LogMel(nn.Module):
    """Waveform [batch, samples] -> log-mel [batch, n_mels, frames], clamped before the log."""

    def __init__(self, config: FeatureConfig, center: bool | None = None) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate, n_fft=config.n_fft, win_length=config.win_length,
            hop_length=config.hop_length, n_mels=config.n_mels,
            center=config.center if center is None else center)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(wav).clamp(min=1e-9, max=1e9))

    def dft(self, samples: torch.Tensor, time_major: bool = False) -> torch.Tensor:
        """Log-mel of the uncentered frames of `samples` [n] (frame k covers samples
        [k * hop, k * hop + n_fft)) in the form an ONNX graph computes: [1, 1, n_mels, frames],
        or [1, 1, frames, n_mels] when `time_major`, which is for frames that do not overlap
        (n_fft == hop; the frames are then the samples reshaped, and the DFT one product,
        about twice as fast as the convolution).

        Framing and the windowed real DFT are one strided convolution with the basis as
        kernels; power and mel are one product (the mel matrix applied to the squared cos and
        sin parts). The basis is computed from its definition, so an exporter folds it rather
        than storing it."""
        spectrogram = self.mel.spectrogram
        n_fft, hop = spectrogram.n_fft, spectrogram.hop_length
        if spectrogram.win_length != n_fft:
            raise ConfigError(f"the DFT form needs win_length == n_fft, got "
                              f"{spectrogram.win_length} and {n_fft}")
        mel = self.mel.mel_scale.fb.transpose(0, 1)  # [n_mels, bins]
        doubled = torch.cat([mel, mel], dim=1)  # [n_mels, 2 * bins]
        if time_major:
            if hop != n_fft:
                raise ConfigError(f"time-major frames need hop == n_fft, got {hop} and {n_fft}")
            frames = samples.reshape(1, 1, -1, n_fft)
            energy = (frames @ dft_basis(n_fft)).square() @ doubled.transpose(0, 1)
        else:
            kernels = dft_basis(n_fft).transpose(0, 1).unsqueeze(1)  # [2 * bins, 1, n_fft]
            spectrum = nn.functional.conv1d(samples[None, None], kernels, stride=hop)
            energy = doubled[None, None] @ spectrum.square()  # [1, 1, n_mels, frames]
        return torch.log(energy.clamp(min=1e-9, max=1e9))


def dft_basis(n_fft: int) -> torch.Tensor:
    """Periodic Hann window times the real DFT basis [n_fft, 2 * bins] (cos, -sin): torchaudio's
    default window, written from its definition."""
    n = torch.arange(n_fft)
    k = torch.arange(n_fft // 2 + 1)
    turns = (n[:, None] * k[None, :]) % n_fft  # exact in integers
    angle = turns.to(torch.float32) * (2 * math.pi / n_fft)
    window = 0.5 - 0.5 * torch.cos(n.to(torch.float32) * (2 * math.pi / n_fft))
    return window[:, None] * torch.cat([torch.cos(angle), -torch.sin(angle)], dim=1)
