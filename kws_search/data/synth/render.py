"""Turning planned clips into wav files: speak, trim, place, resample, write (the worker side).

Each chunk of `CHUNK_CLIPS` clips is rendered by a freshly loaded copy of eSpeak NG in a worker
process and resampled as one batch, so a file never depends on which worker made it or what
that worker spoke before. Workers import this module by name (spawn), so it stays torch-free.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.lib.stride_tricks import sliding_window_view

from kws_search.data.datasets import fit_length
from kws_search.data.synth.espeak import MAX_RATE, ESpeak, SynthError
from kws_search.data.synth.plan import Clip

CHUNK_CLIPS = 64  # clips rendered by one fresh copy of the library (and resampled as one batch)


class Resampler:
    """Windowed-sinc polyphase resampler (torchaudio's `sinc_interp_hann`), numpy only.

    Kept instead of `torchaudio.functional.resample` (outputs within 7e-6 of it) because a synth
    worker that imports torch for it peaks at 543 MB instead of 72 MB and starts 1.4 s later
    (4 chunks of 64 clips in a fresh process).
    """

    def __init__(self, orig: int, new: int, lowpass_width: int = 6, rolloff: float = 0.99):
        g = math.gcd(orig, new)
        self.orig, self.new = orig // g, new // g
        base = min(self.orig, self.new) * rolloff
        self.width = math.ceil(lowpass_width * self.orig / base)
        idx = np.arange(-self.width, self.width + self.orig) / self.orig
        t = (-np.arange(self.new)[:, None] / self.new + idx[None, :]) * base
        t = np.clip(t, -lowpass_width, lowpass_width)
        window = np.cos(t * np.pi / lowpass_width / 2) ** 2
        kernel = np.sinc(t) * window * base / self.orig  # [new, taps]
        self.kernel = np.ascontiguousarray(kernel.T, dtype=np.float32)  # [taps, new]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """[batch, time] -> [batch, ceil(time * new / orig)], float32."""
        if self.orig == self.new:
            return x.astype(np.float32)
        batch, n = x.shape
        padded = np.pad(x.astype(np.float32), ((0, 0), (self.width, self.width + self.orig)))
        frames = sliding_window_view(padded, self.kernel.shape[0], axis=1)[:, ::self.orig]
        frames = np.ascontiguousarray(frames)  # [batch, frames, taps]
        out = (frames.reshape(-1, frames.shape[-1]) @ self.kernel).reshape(batch, -1)
        return out[:, :math.ceil(self.new * n / self.orig)]


def trim_word(wav: np.ndarray, sample_rate: int, text: str) -> np.ndarray:
    """Cut leading/trailing silence, scale to peak 1 and fade the edges; float32 [time]."""
    mag = np.abs(wav.astype(np.float32))
    peak = float(mag.max()) if mag.size else 0.0
    if peak == 0.0:
        raise SynthError(f"the synthesizer produced silence for {text!r}")
    loud = np.flatnonzero(mag > 0.02 * peak)
    margin = int(0.01 * sample_rate)
    seg = wav[max(0, loud[0] - margin):loud[-1] + margin + 1].astype(np.float32) / peak
    return fade_edges(seg, int(0.005 * sample_rate))


def fade_edges(x: np.ndarray, n: int) -> np.ndarray:
    """Raised-cosine fade over `n` samples at both ends of x [time], in place (no clicks)."""
    n = min(n, x.shape[0] // 2)
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float32))).astype(np.float32)
    x[:n] *= ramp
    x[x.shape[0] - n:] *= ramp[::-1]
    return x


def _speak_to_fit(es: ESpeak, clip: Clip, max_len: int) -> np.ndarray:
    """The word, trimmed; spoken faster (or finally cropped) when longer than `max_len`."""
    rate = clip.rate
    for _ in range(4):
        seg = trim_word(es.synth(clip.text, clip.voice, rate, clip.pitch, clip.pitch_range,
                                 clip.seed), es.sample_rate, clip.text)
        if seg.shape[0] <= max_len or rate >= MAX_RATE:
            break
        rate = min(MAX_RATE, math.ceil(rate * seg.shape[0] / max_len * 1.1))
    if seg.shape[0] > max_len:
        seg = fade_edges(seg[:max_len], int(0.02 * es.sample_rate))
    return seg


def render_chunk(task: tuple[str, list[Clip], int, float]) -> int:
    """Worker: render, resample and write one chunk of clips; returns how many."""
    root, clips, sample_rate, clip_seconds = task
    with ESpeak() as es:
        n_native = math.ceil(clip_seconds * es.sample_rate)
        batch = np.zeros((len(clips), n_native), dtype=np.float32)  # [clips, native samples]
        for i, clip in enumerate(clips):
            seg = _speak_to_fit(es, clip, int(0.95 * n_native))
            start = int(clip.offset * (n_native - seg.shape[0]))
            batch[i, start:start + seg.shape[0]] = seg * clip.gain
        native_rate = es.sample_rate
    audio = fit_length(Resampler(native_rate, sample_rate)(batch),
                       round(clip_seconds * sample_rate))  # [clips, samples]
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    for clip, samples in zip(clips, pcm, strict=True):
        sf.write(Path(root) / clip.path, samples, sample_rate, subtype="PCM_16", format="WAV")
    return len(clips)
