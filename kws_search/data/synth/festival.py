"""An evaluation-only folder spoken by Festival: voices the project never trains on.

Festival (Debian packages `festival`, `festvox-kallpc16k`, `festvox-kdlpc16k`,
`festvox-us-slt-hts`) is another synthesizer than eSpeak NG, with other voices (two diphone
males, one HTS female). Its clips stand for "voices nobody trained on": `kws-search evaluate`
and `run --cross-data` score models on them. They are never used for training, validation,
selection or tuning: the folder has no split lists and its `synth.json` marks it
evaluation-only, which `kws_search.data.datasets.scan_dataset` refuses.

A speaker is one (voice, pitch, speaking rate) combination saying words drawn in the training
dataset's proportions (keyword, commands, confusables), so the folder differs from the test split
in its voices, not in how hard its words are. Every clip gets its own small pitch and rate
jitter, gain and position, so repeated words differ. Background noise is made with
numpy and a Festival babble, not with eSpeak; `_speech_/festival.wav` is every voice reading
running sentences without the keyword, for false accepts per hour (`kws_search.wakeword`).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from tqdm import tqdm

from kws_search.data.datasets import NOISE_DIR, SPEECH_DIR, DataError, fit_length
from kws_search.data.synth import (
    BABBLE_SENTENCES,
    COMMAND_WORDS,
    CONFUSABLE_WORDS,
    NOISE_KINDS,
    SynthConfig,
    noise_recording,
    prepare_root,
    speaker_ids,
    trim_word,
    write_noise,
)
from kws_search.data.synth.speech import SENTENCES
from kws_search.errors import ConfigError

logger = logging.getLogger(__name__)

# How a voice takes pitch and rate: diphone voices follow a target mean f0 in Hz
# (`int_lr_params`) and `Duration_Stretch`; HTS voices ignore both and take their engine's
# `-fm` (a shift in semitones) and `-r` (speaking rate) instead.
F0_HZ, SEMITONES = "f0_hz", "semitones"


class Voice(NamedTuple):
    package: str  # Debian package
    pitch: str  # F0_HZ or SEMITONES
    low: float  # range of a speaker's pitch, in the voice's unit
    high: float


VOICES: dict[str, Voice] = {
    "kal_diphone": Voice("festvox-kallpc16k", F0_HZ, 75.0, 200.0),
    "ked_diphone": Voice("festvox-kdlpc16k", F0_HZ, 75.0, 200.0),
    "cmu_us_slt_arctic_hts": Voice("festvox-us-slt-hts", SEMITONES, -4.0, 4.0),
}
INSTALL_HINT = ("install Festival from Debian: `sudo apt-get install festival "
                + " ".join(v.package for v in VOICES.values()) + "`")
CHUNK_CLIPS = 200  # clips spoken by one festival process


@dataclass(frozen=True)
class FestivalConfig:
    """How the evaluation folder is made; stored in its `synth.json`."""

    keyword: str = "sheila"
    speakers_per_voice: int = 40
    clips_per_speaker: int = 55
    # words in the training dataset's proportions, so only the voices differ from its test split
    keyword_fraction: float = SynthConfig.keyword_fraction
    confusable_fraction: float = SynthConfig.confusable_fraction
    seed: int = 0
    sample_rate: int = 16_000
    clip_seconds: float = 1.0
    workers: int = 2


@dataclass(frozen=True)
class _Clip:
    path: str
    text: str
    voice: str
    pitch: float  # a mean f0 in Hz or a shift in semitones, as the voice takes it
    stretch: float  # duration: > 1 is slower
    gain: float
    offset: float


def check_festival() -> str:
    """Path of the `festival` program; DataError saying how to install it when missing."""
    program = shutil.which("festival")
    if program is None:
        raise DataError(f"Festival is not installed; {INSTALL_HINT}")
    missing = [v for v in VOICES if not _voice_works(program, v)]
    if missing:
        raise DataError(f"Festival voice(s) {', '.join(missing)} missing; {INSTALL_HINT}")
    return program


def _voice_works(program: str, voice: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "probe.wav"
        script = Path(tmp) / "probe.scm"
        script.write_text(f"(voice_{voice})\n"
                          f'(utt.save.wave (utt.synth (Utterance Text "yes")) "{out}" \'riff)\n')
        subprocess.run([program, "-b", str(script)], capture_output=True, timeout=60)
        return out.is_file() and out.stat().st_size > 44


def _word_shares(cfg: FestivalConfig) -> tuple[list[str], np.ndarray]:
    """Words and their shares: the keyword, commands and confusables as in the training set."""
    commands = [w for w in COMMAND_WORDS if w != cfg.keyword]
    confusables = [w for w in CONFUSABLE_WORDS if w not in (cfg.keyword, *commands)]
    rest = 1 - cfg.keyword_fraction
    shares = [cfg.keyword_fraction,
              *[rest * (1 - cfg.confusable_fraction) / len(commands)] * len(commands),
              *[rest * cfg.confusable_fraction / len(confusables)] * len(confusables)]
    return [cfg.keyword, *commands, *confusables], np.array(shares)


def plan_clips(cfg: FestivalConfig) -> list[_Clip]:
    words, shares = _word_shares(cfg)
    rng = np.random.default_rng([cfg.seed, 11])
    ids = speaker_ids(cfg.seed + 7919, cfg.speakers_per_voice * len(VOICES))
    clips = []
    for v, (voice, spec) in enumerate(VOICES.items()):
        for k in range(cfg.speakers_per_voice):
            sid = ids[v * cfg.speakers_per_voice + k]
            if spec.pitch == F0_HZ:
                pitch = float(np.exp(rng.uniform(math.log(spec.low), math.log(spec.high))))
            stretch = float(np.exp(rng.uniform(math.log(0.75), math.log(1.4))))
            level = rng.uniform(-26, -3)
            if spec.pitch == SEMITONES:  # drawn after the others, so diphone clips stay as before
                pitch = float(rng.uniform(spec.low, spec.high))
            counts = rng.multinomial(cfg.clips_per_speaker, shares)
            counts[0] = max(1, counts[0])  # every speaker says the keyword at least once
            for word, count in zip(words, counts, strict=True):
                for n in range(count):
                    clips.append(_Clip(
                        path=f"{word}/{sid}_nohash_{n}.wav", text=word, voice=voice,
                        pitch=_jitter(pitch, spec.pitch, rng),
                        stretch=stretch * float(np.exp(rng.normal(0, 0.06))),
                        gain=float(10 ** (min(-1.0, level + rng.normal(0, 2)) / 20)),
                        offset=float(rng.uniform())))
    return clips


def _jitter(pitch: float, unit: str, rng: np.random.Generator) -> float:
    """A clip's own pitch around its speaker's: about 5% either way."""
    if unit == F0_HZ:
        return pitch * float(np.exp(rng.normal(0, 0.05)))
    return pitch + float(rng.normal(0, 0.85))  # 0.85 semitones is 5%


def _scheme(clips: list[_Clip], folder: Path) -> str:
    """A Festival script speaking each clip into folder/<i>.wav."""
    lines = []
    for i, clip in enumerate(clips):
        lines.append(f"(voice_{clip.voice})")
        if VOICES[clip.voice].pitch == F0_HZ:
            lines.append(f"(Parameter.set 'Duration_Stretch {clip.stretch:.4f})")
            f0 = f"{clip.pitch:.1f}"
            lines.append(f"(set! int_lr_params '((target_f0_mean {f0}) (target_f0_std "
                         f"{0.15 * clip.pitch:.1f}) (model_f0_mean 170) (model_f0_std 34)))")
        else:
            lines.append(f"(set! hts_engine_params (append {clip.voice}::hts_engine_params "
                         f"'((\"-r\" {1 / clip.stretch:.4f}) (\"-fm\" {clip.pitch:.3f}))))")
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{clip.text}")) '
                     f'"{folder / f"{i}.wav"}" \'riff)')
    return "\n".join(lines) + "\n"


def _speak(program: str, clips: list[_Clip], sample_rate: int) -> list[np.ndarray]:
    """Speak clips with one festival process; float32 [time] each at `sample_rate`."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "say.scm").write_text(_scheme(clips, folder))
        done = subprocess.run([program, "-b", str(folder / "say.scm")], capture_output=True,
                              text=True, timeout=600)
        out = []
        for i, clip in enumerate(clips):
            path = folder / f"{i}.wav"
            if not path.is_file():
                raise DataError(f"Festival did not speak {clip.text!r} with {clip.voice}: "
                                f"{done.stderr.strip()[-300:]}")
            wav, sr = sf.read(str(path), dtype="float32")
            if sr != sample_rate:
                wav = AF.resample(torch.from_numpy(wav), sr, sample_rate).numpy()
            out.append(wav)
        return out


def _render_chunk(program: str, root: Path, clips: list[_Clip], cfg: FestivalConfig) -> int:
    n = round(cfg.clip_seconds * cfg.sample_rate)
    for clip, wav in zip(clips, _speak(program, clips, cfg.sample_rate), strict=True):
        seg = trim_word(wav, cfg.sample_rate, clip.text)[:int(0.95 * n)]
        audio = np.zeros(n, dtype=np.float32)
        start = int(clip.offset * (n - seg.shape[0]))
        audio[start:start + seg.shape[0]] = seg * clip.gain
        pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
        sf.write(root / clip.path, pcm, cfg.sample_rate, subtype="PCM_16", format="WAV")
    return len(clips)


def _babble(program: str, cfg: FestivalConfig, seconds: float, rng: np.random.Generator
            ) -> np.ndarray:
    """Three Festival talkers reading neutral sentences over each other."""
    sentences = [_Clip("", s, voice, 120.0 if VOICES[voice].pitch == F0_HZ else 0.0, 1.0, 1.0, 0.0)
                 for voice in VOICES for s in BABBLE_SENTENCES]
    spoken = _speak(program, sentences, cfg.sample_rate)
    n = int(seconds * cfg.sample_rate)
    mix = np.zeros(n, dtype=np.float32)
    for talker in range(len(VOICES)):
        pos = int(rng.uniform(0, 2.0) * cfg.sample_rate)
        while pos < n:
            wav = spoken[talker * len(BABBLE_SENTENCES) + rng.integers(len(BABBLE_SENTENCES))]
            seg = trim_word(wav, cfg.sample_rate, "babble")[:n - pos]
            mix[pos:pos + seg.shape[0]] += seg * rng.uniform(0.5, 1.0)
            pos += seg.shape[0] + int(rng.uniform(0.1, 0.8) * cfg.sample_rate)
    return mix


def _running_speech(program: str, cfg: FestivalConfig, rng: np.random.Generator) -> np.ndarray:
    """Every voice reading the running-speech sentences (none holds the keyword), with pauses:
    the audio a wake word must not fire on, in voices nobody trained on."""
    lines = [_Clip("", s, voice, 120.0 if VOICES[voice].pitch == F0_HZ else 0.0, 1.0, 1.0, 0.0)
             for voice in VOICES for s in SENTENCES if cfg.keyword not in s.split()]
    parts = []
    for clip, wav in zip(lines, _speak(program, lines, cfg.sample_rate), strict=True):
        parts += [trim_word(wav, cfg.sample_rate, clip.text) * np.float32(rng.uniform(0.3, 0.9)),
                  np.zeros(int(rng.uniform(0.2, 1.0) * cfg.sample_rate), np.float32)]
    return np.concatenate(parts)


def synthesize_festival(root: Path | str, cfg: FestivalConfig = FestivalConfig(),
                        progress: bool = True, overwrite: bool = False) -> dict:
    """Write the evaluation-only folder under `root`; return a summary (clips, speakers, s).

    DataError (with how to install) when Festival or one of its voices is missing; checked
    before anything is written.
    """
    if cfg.speakers_per_voice < 1 or cfg.clips_per_speaker < 1 or cfg.workers < 1:
        raise ConfigError("speakers_per_voice, clips_per_speaker and workers must be >= 1")
    program = check_festival()
    root = Path(root)
    prepare_root(root, overwrite)
    start = time.perf_counter()
    clips = plan_clips(cfg)
    meta = {"engine": "festival", "evaluation_only": True, "config": asdict(cfg),
            "voices": list(VOICES), "complete": False}
    (root / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    for word in sorted({c.text for c in clips}):
        (root / word).mkdir()
    chunks = [clips[i:i + CHUNK_CLIPS] for i in range(0, len(clips), CHUNK_CLIPS)]
    with ThreadPoolExecutor(cfg.workers) as pool, \
            tqdm(total=len(clips), unit="clip", desc="festival", disable=not progress) as bar:
        for done in pool.map(lambda c: _render_chunk(program, root, c, cfg), chunks):
            bar.update(done)

    rng = np.random.default_rng([cfg.seed, 12])
    (root / NOISE_DIR).mkdir()
    for kind in NOISE_KINDS:
        n = int(rng.integers(30, 61)) * cfg.sample_rate
        x = (fit_length(_babble(program, cfg, n / cfg.sample_rate, rng), n)
             if kind == "babble" else noise_recording(kind, n, cfg.sample_rate, rng))
        write_noise(root / NOISE_DIR / f"{kind}.wav", x, cfg.sample_rate)
    (root / SPEECH_DIR).mkdir()
    speech = _running_speech(program, cfg, rng)
    sf.write(root / SPEECH_DIR / "festival.wav", np.clip(speech, -1, 1), cfg.sample_rate,
             subtype="PCM_16", format="WAV")
    summary = {
        "clips": len(clips),
        "keyword_clips": sum(c.text == cfg.keyword for c in clips),
        "speech_seconds": round(speech.shape[0] / cfg.sample_rate, 1),
        "speakers": cfg.speakers_per_voice * len(VOICES),
        "seconds": round(time.perf_counter() - start, 2),
    }
    meta.update(complete=True, summary=summary)
    (root / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("festival: %d clips in %.1f s into %s", len(clips), summary["seconds"], root)
    return summary
