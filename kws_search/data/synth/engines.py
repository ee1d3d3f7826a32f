"""The speech engines of the default dataset: eSpeak NG, SVOX Pico and hibari, each behind one
small class that speaks a planned clip.

A model trained on one synthesizer learns, in part, that synthesizer; several engines with
voices varied inside each teach the keyword instead. Every engine here installs offline from
the package registry with its voices inside the package (nothing is downloaded at run time):

- eSpeak NG (`espeakng-loader`, GPL-3.0): formant synthesis, 8 English accents x voice variants.
- SVOX Pico (`ttspico`, Apache-2.0; builds a C extension): en-US and en-GB, pitch and rate set
  per clip with its markup.
- hibari (`hibari-tts`, Apache-2.0): one neural US English voice (onnxruntime), varied by pace,
  pitch (its f0 track scaled) and formants (the audio played faster or slower before
  resampling, as vocal tract length perturbation does).

The keyword and the confusable words are spoken from phonemes (eSpeak NG's IPA for the word,
converted to the engine's alphabet and checked symbol by symbol), never from a lexicon's guess:
hibari's US lexicon reads "sheila" as "Shayla". Workers import this module by name (spawn), so
it stays torch-free.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from kws_search.data.synth.espeak import MAX_RATE, ESpeak, SynthError
from kws_search.errors import ConfigError


@dataclass(frozen=True)
class EngineInfo:
    """What `synth.json` records about an engine, and how to get it when it is missing."""

    name: str
    module: str  # importable when installed
    distribution: str  # the package whose version is recorded
    license: str
    kind: str  # formant, diphone/HMM, neural
    weight: float  # share of the dataset's speakers, before the missing engines are dropped


EXTRA_HINT = "pip install 'kws-search[voices]' (or -e '.[voices]' in a clone)"
ENGINES: dict[str, EngineInfo] = {
    "espeak": EngineInfo("espeak", "espeakng_loader", "espeakng-loader", "GPL-3.0", "formant",
                         0.4),
    "pico": EngineInfo("pico", "ttspico", "ttspico", "Apache-2.0", "HMM (SVOX Pico)", 0.3),
    "hibari": EngineInfo("hibari", "hibari", "hibari-tts", "Apache-2.0", "neural", 0.3),
}
PICO_VOICES = ("en-US", "en-GB")
HIBARI_VOICES = ("heart",)  # the voice inside the package; the others download at run time
HIBARI_RATE = 24_000


def installed(name: str) -> bool:
    return importlib.util.find_spec(ENGINES[name].module) is not None


def available(names: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """The engines of `names` that are installed, and one line for each that is not."""
    for name in names:
        if name not in ENGINES:
            raise ConfigError(f"unknown speech engine {name!r}; choose from "
                              f"{', '.join(ENGINES)}")
    missing = [n for n in names if not installed(n)]
    return (tuple(n for n in names if n not in missing),
            [f"{n}: not installed, skipped; add it with {EXTRA_HINT}" for n in missing])


def version(name: str) -> str:
    return metadata.version(ENGINES[name].distribution)


# eSpeak NG's IPA -> the two other alphabets. Longest symbols first; a symbol with no entry is an
# error, so a keyword is never spoken with a phoneme silently dropped.
_COMMON = {"ˈ": None, "ˌ": None}
_TO_MISAKI = {  # hibari (Kokoro's alphabet: diphthongs as one capital letter)
    "eɪ": "A", "aɪ": "I", "oʊ": "O", "aʊ": "W", "ɔɪ": "Y", "əʊ": "O", "tʃ": "ʧ", "dʒ": "ʤ",
    "ɜː": "ɜɹ", "iː": "i", "uː": "u", "ɑː": "ɑ", "ɔː": "ɔ", "ɐ": "ə", "ᵻ": "ɪ", "ɾ": "T",
    "ɫ": "l", "r": "ɹ", "ː": "", "ˈ": "ˈ", "ˌ": "ˌ",
}
_TO_XSAMPA = {  # SVOX Pico's phoneme markup
    "eɪ": "eI", "aɪ": "aI", "oʊ": "@U", "aʊ": "aU", "ɔɪ": "OI", "əʊ": "@U", "tʃ": "tS",
    "dʒ": "dZ", "ʃ": "S", "ʒ": "Z", "θ": "T", "ð": "D", "ŋ": "N", "ə": "@", "ɚ": "@`",
    "ɪ": "I", "ʊ": "U", "ɛ": "E", "æ": "{", "ɑ": "A", "ɔ": "O", "ʌ": "V", "ɜ": "3", "ɐ": "@",
    "ᵻ": "I", "ɹ": "r", "r": "r", "ɾ": "t", "ɫ": "l", "ɡ": "g", "ː": ":", "ˈ": "'", "ˌ": "%",
    **{c: c for c in "bdfhijklmnpstuvwz"},
}


def convert(ipa: str, engine: str) -> str:
    """`ipa` (eSpeak NG's phonemes of a word) in `engine`'s alphabet; ConfigError naming the
    symbol the engine has no phoneme for."""
    if engine == "espeak":
        return ipa
    table = _TO_MISAKI if engine == "hibari" else _TO_XSAMPA
    keys = sorted(table, key=len, reverse=True)
    out, i = [], 0
    while i < len(ipa):
        key = next((k for k in keys if ipa.startswith(k, i)), None)
        if key is None:
            if engine == "hibari" and ipa[i] in _MISAKI_PLAIN:
                out.append(ipa[i])
                i += 1
                continue
            raise ConfigError(f"{engine} has no phoneme for {ipa[i]!r} in /{ipa}/; "
                              "choose another keyword or drop the engine")
        out.append(table[key])
        i += len(key)
    return "".join(out)


_MISAKI_PLAIN = set("bdfhijklmnpstuvwzæðŋəɚɛɑɔɜɡɪɹʃʊʌʒθ")


class Pico:
    """SVOX Pico: `speak` returns int16 samples at 16 kHz."""

    sample_rate = 16_000
    max_rate = 300.0  # percent of the voice's normal pace

    def __init__(self) -> None:
        import ttspico

        self._voices = {v: ttspico.TtsEngine(v) for v in PICO_VOICES}

    def speak(self, text: str, phonemes: str, voice: str, rate: float, pitch: float,
              seed: int) -> np.ndarray:
        word = (f'<phoneme alphabet="xsampa" ph="{phonemes}"/>{_mark(text)}' if phonemes
                else text)
        markup = (f'<speed level="{round(rate)}"><pitch level="{round(pitch)}">{word}'
                  '</pitch></speed>')
        pcm = self._voices[voice].speak(markup)
        if not pcm:
            raise SynthError(f"Pico produced no sound for {text!r} with {voice!r}")
        return np.frombuffer(pcm, dtype=np.int16)

    def close(self) -> None:
        self._voices.clear()


class Hibari:
    """hibari's neural voice: `speak` returns float32 samples at 24 kHz; `pitch` scales the f0
    track (percent)."""

    sample_rate = HIBARI_RATE
    max_rate = 200.0  # percent: hibari's speed 2.0

    def __init__(self) -> None:
        from hibari import Hibari as Model

        self._model = Model(threads=1)

    def speak(self, text: str, phonemes: str, voice: str, rate: float, pitch: float,
              seed: int) -> np.ndarray:
        from hibari import dsp

        model = self._model
        ids = model.ids(phonemes + _mark(text)) if phonemes else model.ids(
            "".join(model.phonemize(text)))
        if len(ids) < 3:
            raise SynthError(f"hibari has no phonemes for {text!r}")
        lh, th, ln, lr, phi, f0 = (o[0] for o in model.sess.run(
            None, {"ids": np.asarray([ids], np.int64),
                   "speed": np.asarray([rate / 100], np.float32)}))
        return dsp.synth(lh, th, ln, lr, phi, f0 * (pitch / 100), np.random.default_rng(seed))

    def close(self) -> None:
        del self._model


class Espeak:
    """eSpeak NG through `ESpeak`: int16 samples at its own rate (22,050 Hz)."""

    max_rate = float(MAX_RATE)

    def __init__(self) -> None:
        self._es = ESpeak()
        self.sample_rate = self._es.sample_rate

    def speak(self, text: str, phonemes: str, voice: str, rate: float, pitch: float,
              seed: int, pitch_range: float = 50) -> np.ndarray:
        return self._es.synth(text, voice, int(rate), int(pitch), int(pitch_range), seed)

    def close(self) -> None:
        self._es.close()


def _mark(text: str) -> str:
    """The closing mark of `text` ("sheila?" -> "?"), which sets the engine's intonation."""
    return text[-1] if text and text[-1] in ".?!," else ""


def load(name: str) -> Espeak | Pico | Hibari:
    """A fresh instance of engine `name`; close it when done."""
    return {"espeak": Espeak, "pico": Pico, "hibari": Hibari}[name]()
