"""Training-copy augmentation, the way KWS practice widens a small set of voices.

Waveform: speed perturbation (tempo and pitch together, by resampling), room reverberation
(simulated impulse responses: a direct path plus an exponentially decaying diffuse tail).
Spectrum: vocal-tract-length perturbation (a piecewise-linear warp of the frequency axis, which
moves formants the way a longer or shorter vocal tract does) and a random microphone / channel
colouring (spectral tilt, band limits, a few broad peaks and dips). Everything is batched with
torch and drawn from a numpy Generator, so each cached train copy repeats exactly for a seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio.functional as AF

SPEED_STEP = 0.025  # speed factors are rounded to this, so each factor resamples one batch
RIR_SECONDS = 0.8


def speed_perturb(audio: torch.Tensor, amount: float, rng: np.random.Generator,
                  sample_rate: int) -> torch.Tensor:
    """Each clip [clips, samples] played 1 +- `amount` times as fast, kept centred on its energy.

    The clip keeps its length: a slowed word is cropped around its energy centre, a sped-up
    one padded with zeros.
    """
    if amount <= 0:
        return audio
    n = audio.shape[1]
    factors = np.round(rng.uniform(1 - amount, 1 + amount, audio.shape[0]) / SPEED_STEP)
    out = torch.empty_like(audio)
    for level in np.unique(factors):
        idx = torch.from_numpy(np.flatnonzero(factors == level))
        new_rate = int(round(sample_rate / (level * SPEED_STEP) / 100) * 100)
        moved = AF.resample(audio[idx], sample_rate, new_rate) if new_rate != sample_rate \
            else audio[idx]
        out[idx] = _centred(moved, n)
    return out


def _centred(x: torch.Tensor, n: int) -> torch.Tensor:
    """Crop (around each row's energy centre) or zero-pad (evenly) rows of x to length n."""
    length = x.shape[1]
    if length <= n:
        left = (n - length) // 2
        return torch.nn.functional.pad(x, (left, n - length - left))
    energy = x.square()
    centre = (energy * torch.arange(length)).sum(1) / energy.sum(1).clamp_min(1e-12)
    start = (centre - n / 2).round().long().clamp(0, length - n)  # [rows]
    return torch.gather(x, 1, start[:, None] + torch.arange(n)[None, :])


def reverberate(audio: torch.Tensor, prob: float, rt60: tuple[float, float],
                rng: np.random.Generator, sample_rate: int, chunk: int = 512) -> torch.Tensor:
    """Convolve a share `prob` of the clips with simulated room impulse responses.

    An impulse response is a direct path and a Gaussian tail decaying by 60 dB in RT60 seconds
    (drawn in `rt60`), mixed at a direct-to-reverberant ratio of -3..12 dB. The wet clip keeps
    the dry clip's RMS.
    """
    if prob <= 0:
        return audio
    n = audio.shape[1]
    chosen = np.flatnonzero(rng.random(audio.shape[0]) < prob)
    length = int(RIR_SECONDS * sample_rate)
    t = torch.arange(length) / sample_rate
    out = audio.clone()
    for start in range(0, chosen.size, chunk):
        idx = torch.from_numpy(chosen[start:start + chunk])
        k = idx.shape[0]
        times = torch.from_numpy(rng.uniform(*rt60, k)).float()[:, None]
        drr_db = torch.from_numpy(rng.uniform(-3.0, 12.0, k)).float()[:, None]
        delay = torch.from_numpy(rng.integers(int(0.002 * sample_rate),
                                              int(0.02 * sample_rate), k))
        noise = torch.from_numpy(rng.standard_normal((k, length), dtype=np.float32))
        tail = noise * torch.exp(-6.9 * t[None, :] / times)  # -60 dB at t = RT60
        tail[torch.arange(length)[None, :] < delay[:, None]] = 0.0
        tail *= torch.sqrt(10 ** (-drr_db / 10) / tail.square().sum(1, keepdim=True))
        tail[:, 0] += 1.0  # the direct path
        dry = audio[idx]
        wet = AF.fftconvolve(dry, tail)[:, :n]
        scale = dry.square().mean(1, keepdim=True).sqrt() / \
            wet.square().mean(1, keepdim=True).sqrt().clamp_min(1e-9)
        out[idx] = wet * scale
    return out


def warp_frequencies(power: torch.Tensor, amount: float, rng: np.random.Generator,
                     boundary: float = 0.8) -> torch.Tensor:
    """Vocal-tract-length perturbation of power spectra [clips, bins, frames].

    Frequency f moves to alpha * f (alpha in 1 +- amount) below `boundary` of the band, then
    linearly to the band edge, so the warp maps the band onto itself.
    """
    if amount <= 0:
        return power
    clips, bins, _ = power.shape
    alpha = torch.from_numpy(rng.uniform(1 - amount, 1 + amount, clips)).float()[:, None]
    top = bins - 1
    knee = boundary * top * torch.minimum(alpha, torch.ones_like(alpha)) / alpha  # [clips, 1]
    out_f = torch.arange(bins).float()[None, :]  # output bins, [1, bins]
    # inverse of the warp: where each output bin's energy comes from
    warped_knee = alpha * knee
    below = out_f / alpha
    above = knee + (out_f - warped_knee) * (top - knee) / (top - warped_knee)
    source = torch.where(out_f <= warped_knee, below, above).clamp(0, top)  # [clips, bins]
    low = source.floor().long().clamp(max=top - 1)
    weight = (source - low)[:, :, None]
    gather = lambda i: torch.gather(power, 1, i[:, :, None].expand_as(power))  # noqa: E731
    return gather(low) * (1 - weight) + gather(low + 1) * weight


def colour(power: torch.Tensor, prob: float, rng: np.random.Generator,
           sample_rate: int) -> torch.Tensor:
    """A random channel response on a share `prob` of power spectra [clips, bins, frames]:
    tilt of -4..4 dB per octave, a high-pass of 50-400 Hz, a low-pass of 3-7.6 kHz (half the
    time), and two broad peaks or dips of up to 8 dB."""
    if prob <= 0:
        return power
    clips, bins, _ = power.shape
    chosen = np.flatnonzero(rng.random(clips) < prob)
    k = chosen.size
    freq = np.linspace(0, sample_rate / 2, bins)[None, :]
    octaves = np.log2(np.maximum(freq, 50.0) / 1000.0)
    gain_db = rng.uniform(-4, 4, (k, 1)) * octaves
    high_pass = rng.uniform(50, 400, (k, 1))
    gain_db += -12 * np.log2(1 + (high_pass / np.maximum(freq, 1.0)) ** 2) / 2
    low_pass = np.where(rng.random((k, 1)) < 0.5, rng.uniform(3000, 7600, (k, 1)), np.inf)
    gain_db += -24 * np.log2(1 + (freq / low_pass) ** 4) / 2
    for _ in range(2):
        centre = np.exp(rng.uniform(math.log(200), math.log(6000), (k, 1)))
        width = rng.uniform(0.5, 1.5, (k, 1))  # octaves
        gain_db += rng.uniform(-8, 8, (k, 1)) * np.exp(
            -0.5 * (np.log2(np.maximum(freq, 1.0) / centre) / (width / 2)) ** 2)
    out = power.clone()
    idx = torch.from_numpy(chosen)
    out[idx] = power[idx] * torch.from_numpy(10 ** (gain_db / 10)).float()[:, :, None]
    return out
