"""Background noise recordings for `_background_noise_/`: colored noise, hum, fan, water, babble.

All but babble are made with numpy from a seeded Generator; babble is several eSpeak talkers
reading neutral sentences over each other, rendered in a worker like the clips. Every file is
written at the same level (-20 dBFS RMS), as the SNR of the mix is set when noise is added.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf

from kws_search.data.synth.espeak import ESpeak
from kws_search.data.synth.render import Resampler, trim_word

NOISE_KINDS = ("white_noise", "pink_noise", "brown_noise", "hum", "fan", "running_water",
               "babble")
BABBLE_SENTENCES = (
    "the weather will be warm and bright for most of the afternoon",
    "please remember to bring the blue folder to the meeting",
    "we walked along the river until the market closed",
    "my brother bought a small boat last summer",
    "the train was late again because of the storm",
    "could you pass the bread and the butter please",
    "they are painting the kitchen a pale shade of green",
    "the children played football in the park all morning",
    "a long queue formed outside the bakery at dawn",
    "her garden is full of roses and tall sunflowers",
    "the library opens early on weekdays and later at weekends",
    "we should probably book the tickets before friday",
)


def _colored(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1 / f**exponent (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    return np.fft.irfft(spec * f ** (-exponent / 2), n)


def _bandpass(x: np.ndarray, lo: float, hi: float, sample_rate: int) -> np.ndarray:
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(x.shape[0], 1 / sample_rate)
    return np.fft.irfft(spec * ((f >= lo) & (f <= hi)), x.shape[0])


def _envelope(n: int, per_second: float, sample_rate: int, rng: np.random.Generator
              ) -> np.ndarray:
    """Slowly wandering positive gain, about 1 on average."""
    knots = rng.uniform(0.3, 1.7, math.ceil(n / sample_rate * per_second) + 2)
    return np.interp(np.arange(n), np.linspace(0, n, knots.shape[0]), knots)


def noise_recording(kind: str, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One background recording made with numpy (not babble): float64 [n], arbitrary level."""
    t = np.arange(n) / sample_rate
    if kind in ("white_noise", "pink_noise", "brown_noise"):
        return _colored(n, {"white_noise": 0.0, "pink_noise": 1.0, "brown_noise": 2.0}[kind], rng)
    if kind == "hum":  # mains hum: 50 or 60 Hz with harmonics, slight drift, a little hiss
        drift = 0.002 * np.cumsum(rng.standard_normal(n)) / math.sqrt(n)
        base = rng.choice([50.0, 60.0]) * (1 + drift)
        phase = 2 * np.pi * np.cumsum(base) / sample_rate
        hum = sum(rng.uniform(0.3, 1.0) / k * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
                  for k in range(1, 9))
        return hum + 0.02 * _colored(n, 1.0, rng)
    if kind == "fan":  # broadband airflow plus a wobbling blade-pass tone
        blade = rng.uniform(80, 160)
        tone = sum(np.sin(2 * np.pi * k * blade * t + rng.uniform(0, 2 * np.pi)) / k**2
                   for k in range(1, 4))
        air = _colored(n, 1.5, rng)
        air /= air.std()
        return air + 0.3 * tone * _envelope(n, 0.5, sample_rate, rng)
    if kind == "running_water":  # band-limited splashing noise plus little bubble chirps
        x = _bandpass(_colored(n, 0.5, rng), 300, 6000, sample_rate)
        x *= _envelope(n, 8, sample_rate, rng) / x.std()
        dur = int(0.02 * sample_rate)
        tb = np.arange(dur) / sample_rate
        for start in rng.integers(0, n - dur, int(25 * n / sample_rate)):
            f0 = rng.uniform(500, 3000)
            decay = np.exp(-tb * rng.uniform(150, 400))
            chirp = np.sin(2 * np.pi * f0 * tb * (1 + 20 * tb)) * decay
            x[start:start + dur] += rng.uniform(0.5, 2.0) * chirp
        return x
    raise ValueError(f"unknown noise kind {kind!r}")


def render_babble(task: tuple[list[tuple[str, int, int, int, int]], float, int]) -> np.ndarray:
    """Worker: overlapping talkers reading neutral sentences; float32 [time] at `sample_rate`.

    Each talker is (voice, rate, pitch, pitch range, seed).
    """
    talkers, seconds, sample_rate = task
    with ESpeak() as es:
        n = math.ceil(seconds * es.sample_rate)
        mix = np.zeros(n, dtype=np.float32)
        for t, (voice, rate, pitch, pitch_range, seed) in enumerate(talkers):
            rng = np.random.default_rng([seed, t])
            pos = int(rng.uniform(0, 2.0) * es.sample_rate)
            while pos < n:
                text = BABBLE_SENTENCES[rng.integers(len(BABBLE_SENTENCES))]
                seg = trim_word(es.synth(text, voice, rate, pitch, pitch_range, seed + pos),
                                es.sample_rate, text)[:n - pos]
                mix[pos:pos + seg.shape[0]] += seg * rng.uniform(0.5, 1.0)
                pos += seg.shape[0] + int(rng.uniform(0.1, 0.8) * es.sample_rate)
        native_rate = es.sample_rate
    return Resampler(native_rate, sample_rate)(mix[None])[0]


def write_noise(path: Path, x: np.ndarray, sample_rate: int) -> None:
    """Write at -20 dBFS RMS, peaks kept below full scale."""
    x = x - x.mean()
    x = x / (np.sqrt(np.mean(x**2)) + 1e-12) * 0.1
    x = x / max(1.0, float(np.abs(x).max()) / 0.95)
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
    sf.write(path, pcm, sample_rate, subtype="PCM_16", format="WAV")
