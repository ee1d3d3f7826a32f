"""Running speech without the keyword, from every engine: the talk a wake word must not fire on.

`kws-search data synth` writes `_speech_/<engine>.wav`, each engine's voices reading the
sentences below (none holds the keyword; several hold its near misses inside running speech).
`kws_search.wakeword` streams them, with the folder's other words and background noise, to
count false accepts per hour. They are never trained on: `scan_dataset` skips `_` folders.
Workers import this module by name (spawn), so it stays torch-free.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soundfile as sf

from kws_search.data.datasets import SPEECH_DIR
from kws_search.data.synth.engines import load
from kws_search.data.synth.render import Resampler, trim_word
from kws_search.data.synth.sentences import PASSES, SENTENCES

__all__ = ["PASSES", "SENTENCES", "render_speech"]


def render_speech(task: tuple[str, str, list[tuple[str, str, float, float, int]], int]
                  ) -> tuple[str, float, float]:
    """Worker: one engine reads `lines` (text, voice, rate, pitch, seed) with short pauses;
    writes `_speech_/<engine>.wav`; returns the engine, seconds of audio, seconds taken."""
    root, name, lines, sample_rate = task
    start = time.perf_counter()
    engine = load(name)
    rng = np.random.default_rng(lines[0][4] if lines else 0)
    parts: list[np.ndarray] = []
    resamplers: dict[int, Resampler] = {}
    try:
        for text, voice, rate, pitch, seed in lines:
            seg = trim_word(engine.speak(text, "", voice, rate, pitch, seed),
                            engine.sample_rate, text)
            native = engine.sample_rate
            resamplers.setdefault(native, Resampler(native, sample_rate))
            parts += [resamplers[native](seg[None])[0] * np.float32(rng.uniform(0.3, 0.9)),
                      np.zeros(int(rng.uniform(0.2, 1.0) * sample_rate), np.float32)]
    finally:
        engine.close()
    audio = np.concatenate(parts) if parts else np.zeros(sample_rate, np.float32)
    path = Path(root) / SPEECH_DIR / f"{name}.wav"
    sf.write(path, np.clip(audio, -1, 1), sample_rate, subtype="PCM_16", format="WAV")
    return name, audio.shape[0] / sample_rate, time.perf_counter() - start
