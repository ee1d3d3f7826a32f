"""The default dataset: keyword, command and confusable words spoken by eSpeak NG, offline.

eSpeak NG ships inside the `espeakng-loader` wheel and is driven through ctypes. A "speaker" is
one (English accent, voice variant, rate, pitch, pitch range) combination with an 8-hex id;
each says several words, and train / validation / test are split by speaker, exactly in the
Speech Commands layout (`<word>/<speaker>_nohash_<n>.wav`, `validation_list.txt`,
`testing_list.txt`, `_background_noise_/`) so `kws_search.data` reads it like the real thing.

Determinism: every random choice is drawn in the parent process from the seed; workers only
render. eSpeak keeps hidden state between utterances (pitch flutter phase, gain control) and
seeds its breath-noise generator from the clock, so each fixed chunk of clips is rendered by a
freshly loaded copy of the library with the noise seeded per clip: files do not depend on
worker count, scheduling or time.
"""

from __future__ import annotations

import _ctypes
import ctypes
import hashlib
import json
import logging
import math
import multiprocessing as mp
import shutil
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import espeakng_loader
import numpy as np
import soundfile as sf
from numpy.lib.stride_tricks import sliding_window_view
from tqdm import tqdm

logger = logging.getLogger(__name__)

COMMAND_WORDS: tuple[str, ...] = (
    "bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy", "house",
    "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven", "six", "stop",
    "three", "tree", "two", "up", "wow", "yes", "zero")
# Near misses of "sheila" (shared onset, vowel or "-ila" ending); none has its phonemes.
CONFUSABLE_WORDS: tuple[str, ...] = (
    "she", "sheep", "sheet", "shield", "sheena", "shelby", "shelley", "shell", "shale", "sheik",
    "leila", "lila", "delilah", "tequila", "ceiling", "healer", "dealer", "feeler", "sealer",
    "keeler", "shilling", "chiller", "shyla")
ACCENTS: tuple[str, ...] = (
    "en-us", "en", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-gb-x-rp", "en-us-nyc")
NOISE_DIR = "_background_noise_"
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

CHUNK_CLIPS = 64  # clips rendered by one fresh copy of the library (and resampled as one batch)
CLIPS_PER_SPEAKER = 20  # fewer clips each, so more speakers (1,200 by default)
REPEAT_RATE = 1.2  # mean clips per (speaker, word) pair: most once, some twice (`_nohash_1`)
MAX_RATE = 450  # eSpeak's words-per-minute ceiling
# eSpeak intones a clause by its closing mark (falling, rising, exclaimed, continuing), so every
# word is said with each tune, and a tune never tells the keyword apart
INTONATIONS = ("", ".", "?", "!", ",")
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_PHONEMES_IPA = 0x02
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class SynthConfig:
    """How the default dataset is made; stored in `synth.json` beside it."""

    keyword: str = "sheila"
    n_clips: int = 24_000  # total clips, all words
    keyword_fraction: float = 0.07  # enough keyword clips for >= 300 in validation and test
    confusable_fraction: float = 0.15  # share of confusable words among the rest
    seed: int = 0
    sample_rate: int = 16_000
    clip_seconds: float = 1.0
    val_fraction: float = 0.2  # by speaker: about 336 keyword clips, so validation separates
    test_fraction: float = 0.2  # models that differ by a few clips
    workers: int = 2


@dataclass(frozen=True)
class _Clip:
    """Everything a worker needs to render one file; all randomness already drawn."""

    path: str  # relative, "word/<speaker>_nohash_<n>.wav"
    text: str
    voice: str  # "en-us+m3"
    rate: int
    pitch: int
    pitch_range: int
    seed: int  # for the noise generators (breath, klatt)
    gain: float  # peak amplitude of the word, 0..1
    offset: float  # where the word starts, as a fraction of the free space in the clip


class _ESpeak:
    """One freshly loaded copy of libespeak-ng; `close` unloads it, so the next starts clean."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                              ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._lib = lib
        self._libc = ctypes.CDLL(None)  # the process's libc, whose rand() eSpeak also calls
        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(),
            _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialize (code {self.sample_rate})")
        self._pieces: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept alive while the library is
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: ctypes.Array, n: int, events: int) -> int:
        if wav and n > 0:
            self._pieces.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = continue

    def _voice(self, voice: str) -> None:
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"eSpeak NG has no voice {voice!r}")

    def synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int,
              seed: int) -> np.ndarray:
        """Speak `text`; int16 samples [time] at `self.sample_rate`."""
        self._voice(voice)
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch),
                             (_PARAM_RANGE, pitch_range)):
            self._lib.espeak_SetParameter(param, int(value), 0)
        self._lib.espeak_ng_SetRandSeed(seed)  # breath noise; seeded from the clock at init
        self._libc.srand(ctypes.c_uint(seed))
        self._pieces = []
        data = text.encode()
        err = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                     None, None)
        if err != 0:
            raise RuntimeError(f"eSpeak NG failed to speak {text!r} with {voice!r} (code {err})")
        return np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.int16)

    def phonemes(self, text: str, voice: str) -> str:
        """IPA phonemes of `text` as `voice` would say it."""
        self._voice(voice)
        ptr = ctypes.c_char_p(text.encode())
        return (self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), 0, _PHONEMES_IPA)
                or b"").decode()

    def close(self) -> None:
        self._lib.espeak_Terminate()
        handle = self._lib._handle
        del self._lib
        _ctypes.dlclose(handle)  # drop the library's static state with it

    def __enter__(self) -> _ESpeak:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Resampler:
    """Windowed-sinc polyphase resampler (torchaudio's `sinc_interp_hann`), numpy only."""

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
        raise RuntimeError(f"the synthesizer produced silence for {text!r}")
    loud = np.flatnonzero(mag > 0.02 * peak)
    margin = int(0.01 * sample_rate)
    seg = wav[max(0, loud[0] - margin):loud[-1] + margin + 1].astype(np.float32) / peak
    return fade_edges(seg, int(0.005 * sample_rate))


def fade_edges(x: np.ndarray, n: int) -> np.ndarray:
    n = min(n, x.shape[0] // 2)
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float32))).astype(np.float32)
    x[:n] *= ramp
    x[x.shape[0] - n:] *= ramp[::-1]
    return x


def _speak_to_fit(es: _ESpeak, clip: _Clip, max_len: int) -> np.ndarray:
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


def _render_chunk(task: tuple[str, list[_Clip], int, float]) -> int:
    """Worker: render, resample and write one chunk of clips; returns how many."""
    root, clips, sample_rate, clip_seconds = task
    with _ESpeak() as es:
        n_native = math.ceil(clip_seconds * es.sample_rate)
        batch = np.zeros((len(clips), n_native), dtype=np.float32)  # [clips, native samples]
        for i, clip in enumerate(clips):
            seg = _speak_to_fit(es, clip, int(0.95 * n_native))
            start = int(clip.offset * (n_native - seg.shape[0]))
            batch[i, start:start + seg.shape[0]] = seg * clip.gain
        native_rate = es.sample_rate
    audio = fit_samples(_Resampler(native_rate, sample_rate)(batch),
                        round(clip_seconds * sample_rate))
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    for clip, samples in zip(clips, pcm, strict=True):
        sf.write(Path(root) / clip.path, samples, sample_rate, subtype="PCM_16", format="WAV")
    return len(clips)


def fit_samples(x: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad the last axis to `n`."""
    if x.shape[-1] >= n:
        return x[..., :n]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])])


def _render_babble(task: tuple[list[tuple[str, int, int, int, int]], float, int]) -> np.ndarray:
    """Worker: overlapping talkers reading neutral sentences; float32 [time] at `sample_rate`."""
    talkers, seconds, sample_rate = task
    with _ESpeak() as es:
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
    return _Resampler(native_rate, sample_rate)(mix[None])[0]


def _variants() -> list[str]:
    """Voice variant names shipped with eSpeak NG, plus "" for the plain accent voice."""
    names = sorted(p.name for p in (Path(espeakng_loader.get_data_path()) / "voices" / "!v")
                   .iterdir() if p.is_file())
    return ["", *names]


def _spread(total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """`total` split into `n` near-equal integer parts, remainders to random parts."""
    parts = np.full(n, total // n, dtype=np.int64)
    parts[rng.permutation(n)[:total % n]] += 1
    return parts


def speaker_ids(seed: int, n: int) -> list[str]:
    ids: list[str] = []
    seen: set[str] = set()
    for i in range(n):
        salt = 0
        while True:
            sid = hashlib.sha256(f"kws-synth:{seed}:{i}:{salt}".encode()).hexdigest()[:8]
            if sid not in seen:
                break
            salt += 1
        seen.add(sid)
        ids.append(sid)
    return ids


def _check(cfg: SynthConfig) -> None:
    if not 0 < cfg.keyword_fraction < 1 or not 0 <= cfg.confusable_fraction <= 1:
        raise ValueError("keyword_fraction must be in (0, 1) and confusable_fraction in [0, 1]")
    if cfg.val_fraction <= 0 or cfg.test_fraction <= 0 or cfg.val_fraction + cfg.test_fraction >= 1:
        raise ValueError("val_fraction and test_fraction must be > 0 and sum to less than 1")
    if round(cfg.n_clips * cfg.keyword_fraction) < 3:
        raise ValueError(f"n_clips * keyword_fraction = {cfg.n_clips * cfg.keyword_fraction:.1f}"
                         "; at least 3 keyword clips are needed (one per split)")
    if cfg.clip_seconds <= 0 or cfg.sample_rate <= 0 or cfg.workers < 1:
        raise ValueError("clip_seconds, sample_rate and workers must be positive")


def _plan(cfg: SynthConfig) -> tuple[list[str], dict[str, list[int]], list[_Clip]]:
    """Speaker ids, speakers per split, and every clip with its parameters drawn."""
    words = [cfg.keyword, *[w for w in COMMAND_WORDS if w != cfg.keyword]]
    n_commands = len(words) - 1
    words += [w for w in CONFUSABLE_WORDS if w not in words]
    n_kw = round(cfg.n_clips * cfg.keyword_fraction)
    rest = cfg.n_clips - n_kw
    n_conf = round(rest * cfg.confusable_fraction)
    rng = np.random.default_rng([cfg.seed, 1])
    counts = [n_kw, *_spread(rest - n_conf, n_commands, rng),
              *_spread(n_conf, len(words) - 1 - n_commands, rng)]

    n_spk = max(3, math.ceil(cfg.n_clips / CLIPS_PER_SPEAKER), math.ceil(n_kw / REPEAT_RATE))
    ids = speaker_ids(cfg.seed, n_spk)
    order = np.random.default_rng([cfg.seed, 2]).permutation(n_spk)
    n_val = max(1, round(n_spk * cfg.val_fraction))
    n_test = max(1, round(n_spk * cfg.test_fraction))
    if n_val + n_test >= n_spk:
        raise ValueError(f"{n_spk} speakers are too few for the split; raise n_clips")
    splits = {"validation": sorted(order[:n_val].tolist()),
              "test": sorted(order[n_val:n_val + n_test].tolist()),
              "train": sorted(order[n_val + n_test:].tolist())}

    # how often each speaker says each word: spread per split by speaker share, so every word
    # with >= 3 clips (the keyword included) reaches every split
    said: list[tuple[int, int, int]] = []  # (speaker, word index, clips)
    rng = np.random.default_rng([cfg.seed, 3])
    names = list(splits)
    sizes = np.array([len(splits[s]) for s in names])
    for w, count in enumerate(counts):
        share = count * sizes / n_spk
        per_split = np.floor(share).astype(np.int64)
        per_split[np.argsort(-(share - per_split), kind="stable")[:count - per_split.sum()]] += 1
        for i in np.flatnonzero(per_split == 0):
            if count >= len(names):
                per_split[np.argmax(per_split)] -= 1
                per_split[i] += 1
        for name, c in zip(names, per_split, strict=True):
            if c == 0:
                continue
            pool = splits[name]
            m = min(len(pool), max(1, round(c / REPEAT_RATE)))
            chosen = rng.choice(pool, size=m, replace=False)
            repeats = _spread(int(c), m, rng)
            said += [(int(s), w, int(k)) for s, k in zip(chosen, repeats, strict=True)]
    said.sort()

    rng = np.random.default_rng([cfg.seed, 4])
    variants = _variants()
    voices = [ACCENTS[rng.integers(len(ACCENTS))]
              + (f"+{v}" if (v := variants[rng.integers(len(variants))]) else "")
              for _ in range(n_spk)]
    rates = rng.uniform(80, 240, n_spk)  # words per minute; isolated words are slow
    pitches = rng.uniform(5, 95, n_spk)  # eSpeak's 0..99 scale, nearly all of it
    ranges = rng.uniform(5, 99, n_spk)
    levels = rng.uniform(-26, -3, n_spk)  # speaker loudness, dBFS peak
    clips: list[_Clip] = []
    for s, w, k in said:
        for n in range(k):
            clips.append(_Clip(
                path=f"{words[w]}/{ids[s]}_nohash_{n}.wav",
                text=words[w] + INTONATIONS[rng.integers(len(INTONATIONS))], voice=voices[s],
                rate=int(np.clip(rates[s] * np.exp(rng.normal(0, 0.06)), 80, MAX_RATE)),
                pitch=int(np.clip(pitches[s] + rng.normal(0, 3), 0, 99)),
                pitch_range=int(np.clip(ranges[s] + rng.normal(0, 5), 0, 99)),
                seed=int(rng.integers(2**31)),
                gain=float(10 ** (min(-1.0, levels[s] + rng.normal(0, 2)) / 20)),
                offset=float(rng.uniform())))
    return ids, splits, clips


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


def write_noise(path: Path, x: np.ndarray, sample_rate: int) -> None:
    """Write at -20 dBFS RMS, peaks kept below full scale."""
    x = x - x.mean()
    x = x / (np.sqrt(np.mean(x**2)) + 1e-12) * 0.1
    x = x / max(1.0, float(np.abs(x).max()) / 0.95)
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
    sf.write(path, pcm, sample_rate, subtype="PCM_16", format="WAV")


def prepare_root(root: Path, overwrite: bool) -> None:
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        if overwrite and (root / "synth.json").is_file():
            shutil.rmtree(root)
        else:
            why = "" if not overwrite else " and has no synth.json, so it is not deleted"
            raise FileExistsError(f"{root} exists and is not empty{why}; "
                                  "choose a new folder or remove it")
    root.mkdir(parents=True, exist_ok=True)


def synthesize(root: Path, cfg: SynthConfig = SynthConfig(), progress: bool = True,
               overwrite: bool = False) -> dict:
    """Write the dataset under root in Speech Commands layout; return a summary dict
    (clips per word, speakers per split, seconds taken).

    Raises FileExistsError when `root` is non-empty, unless `overwrite` is set and `root` holds
    an earlier synthesized dataset (a `synth.json`), which is then deleted first.
    """
    _check(cfg)
    root = Path(root)
    prepare_root(root, overwrite)
    start = time.perf_counter()
    ids, splits, clips = _plan(cfg)
    meta = {"config": asdict(cfg), "complete": False,
            "espeakng_loader": metadata.version("espeakng-loader")}
    (root / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    for word in sorted({c.path.split("/")[0] for c in clips}):
        (root / word).mkdir()
    logger.info("synthesizing %d clips from %d speakers into %s with %d worker(s)",
                len(clips), len(ids), root, cfg.workers)

    noise_rng = np.random.default_rng([cfg.seed, 5])
    seconds = {k: float(noise_rng.integers(30, 61)) for k in NOISE_KINDS}
    variants = _variants()
    talkers = [(f"{ACCENTS[i % len(ACCENTS)]}+{variants[noise_rng.integers(1, len(variants))]}",
                int(noise_rng.uniform(140, 200)),
                int(noise_rng.uniform(20, 80)), int(noise_rng.uniform(20, 80)),
                int(noise_rng.integers(2**30))) for i in range(7)]
    tasks = [(str(root), clips[i:i + CHUNK_CLIPS], cfg.sample_rate, cfg.clip_seconds)
             for i in range(0, len(clips), CHUNK_CLIPS)]
    ctx = mp.get_context("spawn")  # each worker loads its own eSpeak; no state is inherited
    with ctx.Pool(min(cfg.workers, len(tasks))) as pool, \
            tqdm(total=len(clips), unit="clip", desc="synthesizing", disable=not progress) as bar:
        babble = pool.apply_async(_render_babble, ((talkers, seconds["babble"],
                                                    cfg.sample_rate),))
        for done in pool.imap_unordered(_render_chunk, tasks):
            bar.update(done)
        babble_audio = babble.get()

    (root / NOISE_DIR).mkdir()
    for kind in NOISE_KINDS:
        n = int(seconds[kind] * cfg.sample_rate)
        x = (fit_samples(babble_audio, n) if kind == "babble"
             else noise_recording(kind, n, cfg.sample_rate, noise_rng))
        write_noise(root / NOISE_DIR / f"{kind}.wav", x, cfg.sample_rate)

    split_of_speaker = {ids[s]: name for name, members in splits.items() for s in members}
    split_of = {c.path: split_of_speaker[c.path.split("/")[1][:8]] for c in clips}
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        lines = sorted(p for p, s in split_of.items() if s == split)
        (root / name).write_text("".join(f"{p}\n" for p in lines))

    words = sorted({c.path.split("/")[0] for c in clips})
    summary = {
        "clips": len(clips),
        "clips_per_word": {w: sum(c.path.startswith(f"{w}/") for c in clips) for w in words},
        "speakers": len(ids),
        "speakers_per_split": {s: len(v) for s, v in splits.items()},
        "clips_per_split": {s: sum(v == s for v in split_of.values()) for s in splits},
        "keyword_clips_per_split": {
            s: sum(v == s and p.startswith(f"{cfg.keyword}/") for p, v in split_of.items())
            for s in splits},
        "noise_files": [f"{NOISE_DIR}/{k}.wav" for k in NOISE_KINDS],
        "seconds": round(time.perf_counter() - start, 2),
    }
    meta.update(complete=True, summary=summary)
    (root / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("synthesized %d clips in %.1f s into %s", len(clips), summary["seconds"], root)
    return summary


def phonemes(word: str, accent: str = "en-us") -> str:
    """IPA phonemes eSpeak NG uses for `word` in `accent` (to check confusables are distinct)."""
    with _ESpeak() as es:
        return es.phonemes(word, accent)
