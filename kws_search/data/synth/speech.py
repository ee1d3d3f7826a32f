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

SENTENCES: tuple[str, ...] = (
    "she said the shelves in the shed were still full of old paint",
    "the ceiling in the hallway needs another coat before the winter",
    "we drove along the coast and stopped for lunch in a small harbour town",
    "the dealer offered a fair price for the car but we decided to wait",
    "sheep were grazing on the hill behind the farmhouse",
    "can you check whether the meeting moved to thursday afternoon",
    "the healer in the story lived alone at the edge of the forest",
    "my neighbour keeps chickens and sells the eggs at the weekend market",
    "a sheet of ice covered the pond for most of january",
    "turn the music down a little, the baby is finally asleep",
    "the shield hung above the fireplace in the great hall",
    "he poured the tea and asked if anyone wanted sugar",
    "the museum is closed on mondays but open late on fridays",
    "delilah and her sister were planning a trip to the mountains",
    "the feeling of the first warm day of spring is hard to describe",
    "please leave the parcel with the neighbour if nobody answers",
    "the shilling was an old coin that nobody uses anymore",
    "tequila, lime and salt were set out on the table",
    "our flight was delayed, so we spent three hours in the airport",
    "the little shell on the beach was pink on the inside",
    "lila finished the report and sent it to everyone on the team",
    "they are building a new bridge across the river next year",
    "sheena told me the recipe needs twice as much flour",
    "the chiller in the kitchen broke down during the heat wave",
    "it might rain later, so take an umbrella just in case",
    "the teacher read the children a story about a sleepy bear",
    "shelley and shelby both sing in the choir on sundays",
    "switch off the lights in the living room when you go to bed",
    "the sealer on the bathroom window has started to peel",
    "we watched the sun set over the lake from the wooden pier",
)
PASSES = 2  # each engine reads every sentence this many times, in different voices


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
