"""What the default dataset holds: its config, words, speakers, split, and every clip's draw.

A "speaker" is one engine's voice with its own pace, pitch and loudness (for eSpeak NG an
English accent and voice variant with a pitch range; for hibari also a formant shift), with an
8-hex id; each says several words, and train / validation / test are split by speaker, as in
Speech Commands, each engine's speakers spread over all three. Every random choice is drawn
here, in the parent process, from the seed, so the workers only render and the files do not
depend on worker count or scheduling.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from kws_search.data.synth.engines import (
    DEFAULT_ENGINES,
    ENGINES,
    HIBARI_VOICES,
    KOKORO_HELD_OUT,
    KOKORO_TRAIN,
    PICO_VOICES,
    convert,
)
from kws_search.data.synth.espeak import MAX_RATE, ESpeak, voice_variants
from kws_search.data.synth.sentences import SPEECH_WORD, TRAIN_SENTENCES
from kws_search.errors import ConfigError

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
CLIPS_PER_SPEAKER = 20  # fewer clips each, so more speakers (1,200 by default)
REPEAT_RATE = 1.2  # mean clips per (speaker, word) pair: most once, some twice (`_nohash_1`)
# eSpeak intones a clause by its closing mark (falling, rising, exclaimed, continuing), so every
# word is said with each tune, and a tune never tells the keyword apart
INTONATIONS = ("", ".", "?", "!", ",")
# answer-split clips per clip of train, validation and test: 40,000 for the default dataset,
# which tells every finalist from the teacher within +-10% (bench/bench_resolution.py)
ANSWER_CLIPS_PER_CLIP = 5 / 3


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
    # The answer split: speakers of their own, added to the test split, so the answer is
    # judged on clips no decision saw, with enough keyword clips to resolve 10% between a
    # student and the teacher. The keyword share does not move a model's quality relative to
    # another's (both rates scale alike), so it is high: keyword clips carry most errors.
    test_clips: int | None = None  # None: ANSWER_CLIPS_PER_CLIP x n_clips
    test_keyword_fraction: float = 0.3
    # the speech engines, each with its share of the speakers (`engines.ENGINES`); `synthesize`
    # drops those not installed and records what it used
    engines: tuple[str, ...] = DEFAULT_ENGINES
    # share of the other clips that are a second or less cut from running speech (the
    # `speech` word folder). Off by default: at 5% it cut the teacher's false accepts per hour
    # at its stored threshold (58 to 34 on Festival's stream) but not its misses at 0.5 or 1
    # per hour, and it lowered its quality on Festival's clips (docs/data.md)
    speech_fraction: float = 0.0

    @property
    def answer_clips(self) -> int:
        """Clips of the answer split's own speakers (added to the test split)."""
        return (round(ANSWER_CLIPS_PER_CLIP * self.n_clips) if self.test_clips is None
                else self.test_clips)


@dataclass(frozen=True)
class Clip:
    """Everything a worker needs to render one file; all randomness already drawn."""

    path: str  # relative, "word/<speaker>_nohash_<n>.wav"
    text: str  # the word and its closing mark ("sheila?"), which sets the intonation
    engine: str  # a key of `engines.ENGINES`
    voice: str  # "en-us+m3" (espeak), "en-GB" (pico), "heart" (hibari), "a:0.6+b:0.4" (kokoro)
    rate: int  # words per minute (espeak), or percent of the voice's normal pace
    pitch: int  # eSpeak's 0..99 scale (espeak), or percent of the voice's normal pitch
    pitch_range: int  # eSpeak's 0..99 intonation range (espeak only)
    formant: float  # formants scaled by this (hibari, kokoro; 1.0 elsewhere)
    phonemes: str  # the word in the engine's alphabet ("" = the engine reads `text`)
    seed: int  # for the noise generators (breath, klatt, hibari's noise)
    gain: float  # peak amplitude of the word, 0..1
    offset: float  # where the word starts, as a fraction of the free space in the clip


def check_config(cfg: SynthConfig) -> None:
    """ConfigError naming the setting when `cfg` cannot make a usable dataset."""
    if not 0 < cfg.keyword_fraction < 1 or not 0 <= cfg.confusable_fraction <= 1:
        raise ConfigError(
            "keyword_fraction must be in (0, 1) and confusable_fraction in [0, 1]")
    if cfg.val_fraction <= 0 or cfg.test_fraction <= 0 or cfg.val_fraction + cfg.test_fraction >= 1:
        raise ConfigError("val_fraction and test_fraction must be > 0 and sum to less than 1")
    if round(cfg.n_clips * cfg.keyword_fraction) < 3:
        raise ConfigError(
            f"n_clips * keyword_fraction = {cfg.n_clips * cfg.keyword_fraction:.1f}"
            "; at least 3 keyword clips are needed (one per split)")
    if cfg.clip_seconds <= 0 or cfg.sample_rate <= 0 or cfg.workers < 1:
        raise ConfigError("clip_seconds, sample_rate and workers must be positive")
    if not 0 <= cfg.speech_fraction < 1:
        raise ConfigError(f"speech_fraction must be in [0, 1), got {cfg.speech_fraction}")
    if cfg.answer_clips < 0 or not 0 < cfg.test_keyword_fraction < 1:
        raise ConfigError("test_clips must be >= 0 and test_keyword_fraction in (0, 1)")
    if not cfg.engines or len(set(cfg.engines)) != len(cfg.engines) or not set(
            cfg.engines) <= set(ENGINES):
        raise ConfigError(f"engines must be distinct names from {', '.join(ENGINES)}, got "
                          f"{list(cfg.engines)}")


def speaker_ids(seed: int | str, n: int, taken: set[str] = frozenset()) -> list[str]:
    """`n` distinct 8-hex speaker ids, the same for the same seed, none of them in `taken`."""
    ids: list[str] = []
    seen: set[str] = set(taken)
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


def _spread(total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """`total` split into `n` near-equal integer parts, remainders to random parts."""
    parts = np.full(n, total // n, dtype=np.int64)
    parts[rng.permutation(n)[:total % n]] += 1
    return parts


def plan_clips(cfg: SynthConfig) -> tuple[list[str], dict[str, list[int]], list[Clip]]:
    """Speaker ids, speakers per split, and every clip with its parameters drawn: the
    train / validation / test speakers of `n_clips`, then the answer split's own speakers
    (`test_clips`, all in test)."""
    words = [cfg.keyword, *[w for w in COMMAND_WORDS if w != cfg.keyword]]
    n_commands = len(words) - 1
    words += [w for w in CONFUSABLE_WORDS if w not in words]
    if cfg.speech_fraction > 0 and cfg.keyword != SPEECH_WORD:
        words.append(SPEECH_WORD)
    n_spk = max(3, math.ceil(cfg.n_clips / CLIPS_PER_SPEAKER),
                math.ceil(round(cfg.n_clips * cfg.keyword_fraction) / REPEAT_RATE))
    ids = speaker_ids(cfg.seed, n_spk)
    order = np.random.default_rng([cfg.seed, 2]).permutation(n_spk)
    n_val = max(1, round(n_spk * cfg.val_fraction))
    n_test = max(1, round(n_spk * cfg.test_fraction))
    if n_val + n_test >= n_spk:
        raise ConfigError(f"{n_spk} speakers are too few for the split; raise n_clips")
    splits = {"validation": sorted(order[:n_val].tolist()),
              "test": sorted(order[n_val:n_val + n_test].tolist()),
              "train": sorted(order[n_val + n_test:].tolist())}
    spoken = word_phonemes(cfg.engines, [cfg.keyword, *(w for w in words[n_commands + 1:]
                                                         if w != SPEECH_WORD)])
    clips = _plan_speakers(cfg, words, n_commands, ids, splits, cfg.n_clips,
                           cfg.keyword_fraction, cfg.seed, spoken)
    if cfg.answer_clips:
        n_answer = math.ceil(cfg.answer_clips / CLIPS_PER_SPEAKER)
        answer_ids = speaker_ids(f"{cfg.seed}:answer", n_answer, taken=set(ids))
        answer = {"test": list(range(len(ids), len(ids) + n_answer))}
        ids = ids + answer_ids
        clips += _plan_speakers(cfg, words, n_commands, ids, answer, cfg.answer_clips,
                                cfg.test_keyword_fraction, [cfg.seed, 1000], spoken)
        splits["test"] = splits["test"] + answer["test"]
    return ids, splits, clips


def _who_says_what(counts: list[int], splits: dict[str, list[int]],
                   rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(speaker, word index, clips), sorted: how often each speaker says each word of
    `counts`, spread per split by speaker share, so every word with >= 3 clips (the keyword
    included) reaches every split."""
    said: list[tuple[int, int, int]] = []
    names = list(splits)
    sizes = np.array([len(splits[s]) for s in names])
    for w, count in enumerate(counts):
        share = count * sizes / sizes.sum()
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
    return sorted(said)


def _plan_speakers(cfg: SynthConfig, words: list[str], n_commands: int, ids: list[str],
                   splits: dict[str, list[int]], n_clips: int, keyword_fraction: float,
                   seed: int | list[int], spoken: dict[str, dict[str, str]]) -> list[Clip]:
    """`n_clips` clips said by the speakers of `splits` (indices into `ids`), the keyword
    `keyword_fraction` of them, each with its engine, voice and rendering drawn from `seed`;
    `spoken[engine][word]` are the phonemes of the words an engine must not guess."""
    seed = [seed] if isinstance(seed, int) else list(seed)
    n_kw = round(n_clips * keyword_fraction)
    rest = n_clips - n_kw
    n_conf = round(rest * cfg.confusable_fraction)
    n_speech = round(rest * cfg.speech_fraction) if words[-1] == SPEECH_WORD else 0
    n_confusables = len(words) - 1 - n_commands - (n_speech > 0 or words[-1] == SPEECH_WORD)
    rng = np.random.default_rng([*seed, 1])
    counts = [n_kw, *_spread(rest - n_conf - n_speech, n_commands, rng),
              *_spread(n_conf, n_confusables, rng)]
    if words[-1] == SPEECH_WORD:
        counts.append(n_speech)
    speakers = sorted(s for members in splits.values() for s in members)
    said = _who_says_what(counts, splits, np.random.default_rng([*seed, 3]))
    rng = np.random.default_rng([*seed, 4])
    engine_of = _assign_engines(cfg.engines, splits, rng)
    variants = voice_variants()
    held_out = {s for name, members in splits.items() if name != "train" for s in members}
    draws = {s: draw_speaker(engine_of[s], variants, rng, s in held_out) for s in speakers}
    clips: list[Clip] = []
    for s, w, k in said:
        d = draws[s]
        for n in range(k):
            espeak = d.engine == "espeak"
            clips.append(Clip(
                path=f"{words[w]}/{ids[s]}_nohash_{n}.wav",
                text=(_phrase(rng) if words[w] == SPEECH_WORD
                      else words[w] + INTONATIONS[rng.integers(len(INTONATIONS))]),
                engine=d.engine, voice=d.voice,
                rate=int(np.clip(d.rate * np.exp(rng.normal(0, 0.06)),
                                 *((80, MAX_RATE) if espeak else (50, 200)))),
                pitch=int(np.clip(d.pitch + rng.normal(0, 3), 0, 99) if espeak
                          else d.pitch * np.exp(rng.normal(0, 0.03))),
                pitch_range=int(np.clip(d.pitch_range + rng.normal(0, 5), 0, 99)),
                formant=d.formant, phonemes=spoken[d.engine].get(words[w], ""),
                seed=int(rng.integers(2**31)),
                gain=float(10 ** (min(-1.0, d.level + rng.normal(0, 2)) / 20)),
                offset=float(rng.uniform())))
    return clips


def _phrase(rng: np.random.Generator, words: int = 4) -> str:
    """`words` running words of a training sentence, from a random place: enough speech for
    the second a `speech` clip cuts from it, at a third of the cost of the whole sentence."""
    sentence = TRAIN_SENTENCES[rng.integers(len(TRAIN_SENTENCES))].split()
    start = int(rng.integers(max(1, len(sentence) - words + 1)))
    return " ".join(sentence[start:start + words])


class Speaker(NamedTuple):
    engine: str
    voice: str
    rate: float
    pitch: float
    pitch_range: float
    formant: float
    level: float  # loudness, dBFS peak


def _assign_engines(engines: tuple[str, ...], splits: dict[str, list[int]],
                    rng: np.random.Generator) -> dict[int, str]:
    """Each split's speakers shared among `engines` by their weights, so every engine speaks
    in train, validation and test."""
    weights = np.array([ENGINES[e].weight for e in engines])
    bounds = np.cumsum(weights / weights.sum())
    engine_of = {}
    for members in splits.values():
        order = rng.permutation(members)
        for i, s in enumerate(order):
            engine_of[int(s)] = engines[int(np.searchsorted(bounds, (i + 0.5) / len(order)))]
    return engine_of


def draw_speaker(engine: str, variants: list[str], rng: np.random.Generator,
                 held_out: bool = False) -> Speaker:
    """One speaker of `engine`: a voice, pace, pitch and loudness (see `Clip` for the units).
    Kokoro's `held_out` speakers (validation, test, running speech) blend the voices no
    training speaker uses."""
    level = rng.uniform(-26, -3)
    if engine == "kokoro":
        pool = KOKORO_HELD_OUT if held_out else KOKORO_TRAIN
        a, b = rng.choice(len(pool), size=2, replace=False)
        w = rng.uniform(0.2, 0.8)
        return Speaker(engine, f"{pool[a]}:{w:.3f}+{pool[b]}:{1 - w:.3f}",
                       rng.uniform(75, 130), 100.0, 0.0,
                       float(np.exp(rng.uniform(np.log(0.85), np.log(1.2)))), level)
    if engine == "espeak":
        variant = variants[rng.integers(len(variants))]
        return Speaker(engine, ACCENTS[rng.integers(len(ACCENTS))] + (f"+{variant}" if variant
                                                                      else ""),
                       rng.uniform(80, 240),  # words per minute; isolated words are slow
                       rng.uniform(5, 95),  # pitch: eSpeak's 0..99 scale, nearly all of it
                       rng.uniform(5, 99), 1.0, level)
    if engine == "pico":
        return Speaker(engine, PICO_VOICES[rng.integers(len(PICO_VOICES))],
                       rng.uniform(70, 150), rng.uniform(65, 150), 0.0, 1.0, level)
    return Speaker(engine, HIBARI_VOICES[rng.integers(len(HIBARI_VOICES))],
                   rng.uniform(70, 135), rng.uniform(65, 160), 0.0,
                   float(np.exp(rng.uniform(np.log(0.85), np.log(1.2)))), level)


def word_phonemes(engines: tuple[str, ...], words: list[str]) -> dict[str, dict[str, str]]:
    """`words` (the keyword first, then the confusables) as each engine is given them: eSpeak
    NG's US English phonemes in the engine's alphabet ({} for eSpeak itself, which reads the
    text). A confusable the engine has no phoneme for is read as text; the keyword is an error."""
    if engines == ("espeak",):
        return {"espeak": {}}
    with ESpeak() as es:
        ipa = {w: es.phonemes(w, "en-us").strip() for w in words}
    spoken: dict[str, dict[str, str]] = {e: {} for e in engines}
    for e in engines:
        for w, p in ipa.items() if e != "espeak" else ():
            try:
                spoken[e][w] = convert(p, e)
            except ConfigError:
                if w == words[0]:  # the keyword is never left to the engine's guess
                    raise
    return spoken
