"""Turning planned clips into wav files: speak, trim, resample, place, write (the worker side).

Each chunk of clips (one engine's) is rendered by a freshly loaded engine in a worker process,
so a file never depends on which worker made it or what that worker spoke before. Workers
import this module by name (spawn), so it stays torch-free.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.lib.stride_tricks import sliding_window_view

from kws_search.data.synth.engines import Espeak, Hibari, Kokoro, Pico, load
from kws_search.data.synth.espeak import SynthError
from kws_search.data.synth.plan import Clip
from kws_search.data.synth.sentences import SPEECH_WORD

Engine = Espeak | Pico | Hibari | Kokoro
# clips rendered by one freshly loaded engine: eSpeak keeps state between words, so small
# chunks; the others load models, so larger ones
CHUNK_CLIPS = {"espeak": 64, "pico": 256, "hibari": 256, "kokoro": 64}


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


def _speak_to_fit(engine: Engine, clip: Clip, max_seconds: float) -> tuple[np.ndarray, int]:
    """The word, trimmed, and its sample rate (the engine's, shifted by the clip's formant
    factor); spoken faster (or finally cropped) when longer than `max_seconds`."""
    rate = clip.rate
    sample_rate = (engine.sample_rate if clip.formant == 1.0
                   else round(engine.sample_rate * clip.formant / 100) * 100)
    max_len = int(max_seconds * sample_rate)
    for _ in range(4):
        raw = engine.speak(clip.text, clip.phonemes, clip.voice, rate, clip.pitch, clip.seed,
                           **({"pitch_range": clip.pitch_range} if clip.engine == "espeak"
                              else {}))
        seg = trim_word(raw, sample_rate, clip.text)
        if seg.shape[0] <= max_len or rate >= engine.max_rate:
            break
        rate = min(engine.max_rate, math.ceil(rate * seg.shape[0] / max_len * 1.1))
    if seg.shape[0] > max_len:
        seg = fade_edges(seg[:max_len], int(0.02 * sample_rate))
    return seg, sample_rate


def _excerpt(engine: Engine, clip: Clip, clip_seconds: float) -> tuple[np.ndarray, int]:
    """0.5-0.95 of a clip's length cut from the sentence `clip.text` (running speech), at a
    place drawn from the clip's seed; faded at both ends."""
    sample_rate = (engine.sample_rate if clip.formant == 1.0
                   else round(engine.sample_rate * clip.formant / 100) * 100)
    kwargs = {"pitch_range": clip.pitch_range} if clip.engine == "espeak" else {}
    seg = trim_word(engine.speak(clip.text, "", clip.voice, clip.rate, clip.pitch, clip.seed,
                                 **kwargs), sample_rate, clip.text)
    rng = np.random.default_rng(clip.seed)
    length = min(seg.shape[0], int(rng.uniform(0.5, 0.95) * clip_seconds * sample_rate))
    start = int(rng.uniform() * (seg.shape[0] - length))
    return fade_edges(seg[start:start + length].copy(), int(0.02 * sample_rate)), sample_rate


def render_chunk(task: tuple[str, list[Clip], int, float]) -> tuple[str, int, float]:
    """Worker: render, resample and write one chunk of clips of one engine; returns the
    engine, how many clips and the seconds taken."""
    root, clips, sample_rate, clip_seconds = task
    start = time.perf_counter()
    n_out = round(clip_seconds * sample_rate)
    resamplers: dict[int, Resampler] = {}
    batch = np.zeros((len(clips), n_out), dtype=np.float32)  # [clips, samples]
    engine = load(clips[0].engine)
    try:
        for i, clip in enumerate(clips):
            if clip.path.startswith(f"{SPEECH_WORD}/"):
                seg, native = _excerpt(engine, clip, clip_seconds)
            else:
                seg, native = _speak_to_fit(engine, clip, 0.95 * clip_seconds)
            if native not in resamplers:
                resamplers[native] = Resampler(native, sample_rate)
            seg = resamplers[native](seg[None])[0][:n_out]
            begin = int(clip.offset * (n_out - seg.shape[0]))
            batch[i, begin:begin + seg.shape[0]] = seg * clip.gain
    finally:
        engine.close()
    pcm = np.clip(np.round(batch * 32767.0), -32768, 32767).astype(np.int16)
    for clip, samples in zip(clips, pcm, strict=True):
        sf.write(Path(root) / clip.path, samples, sample_rate, subtype="PCM_16", format="WAV")
    return clips[0].engine, len(clips), time.perf_counter() - start
