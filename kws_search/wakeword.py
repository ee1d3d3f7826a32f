"""The measures a wake-word deployer reads: false accepts per hour of audio without the
keyword, streamed through the model the way `kws-search stream` runs it, and the share of
keyword clips missed at a given false-accept rate (0.5 and 1 per hour), as openWakeWord and
microWakeWord publish them.

The long stream is built from a folder: its other words (the split's non-keyword clips, one
after another with short pauses) and its running speech (`_speech_/*.wav`, which `kws-search
data synth` writes from every engine), in alternating stretches, over its background noise at
10-20 dB SNR; or it is a long wav without the keyword the user gives. A detection is a run of
hop probabilities at or above the threshold, fired again every `REFRACTORY_S` while it lasts;
nothing fires within `REFRACTORY_S` of the last detection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from kws_search.data.datasets import SPEECH_DIR, DataError, read_wav
from kws_search.data.features import add_noise, noise_segment
from kws_search.errors import ConfigError

logger = logging.getLogger(__name__)

HOUR_S = 3600.0
REFRACTORY_S = 1.0
RATES = (0.5, 1.0)  # false accepts per hour at which the miss rate is read
SNR_DB = (10.0, 20.0)
CHUNK_S = 1.0  # audio fed to the stream per call


@dataclass(frozen=True)
class LongStream:
    """Audio without the keyword, and what it is made of."""

    audio: np.ndarray  # [samples] float32 at `sample_rate`
    sample_rate: int
    content: str

    @property
    def hours(self) -> float:
        return self.audio.shape[0] / self.sample_rate / HOUR_S


def detection_hops(probs: np.ndarray, threshold: float, refractory_hops: int) -> list[int]:
    """The hops at which a detector fires: where `probs` first reach the threshold, then again
    every `refractory_hops` while they stay there (a device re-arms after its refractory time);
    never within `refractory_hops` of the previous detection. Without a refractory time, once
    per run."""
    above = np.asarray(probs) >= threshold
    edges = np.diff(np.concatenate([[False], above, [False]]).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if refractory_hops <= 0:
        return starts.tolist()
    fired, last = [], -refractory_hops - 1
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        hop = max(start, last + refractory_hops)
        while hop < end:
            fired.append(hop)
            last = hop
            hop += refractory_hops
    return fired


def false_accepts(probs: np.ndarray, threshold: float, hop_s: float) -> int:
    return len(detection_hops(probs, threshold, round(REFRACTORY_S / hop_s)))


def threshold_for_rate(probs: np.ndarray, hop_s: float, rate: float) -> float:
    """The lowest threshold at which the stream raises at most `rate` false accepts per hour
    (bisection; the count falls as the threshold rises)."""
    hours = probs.shape[0] * hop_s / HOUR_S
    allowed = np.floor(rate * hours + 1e-9)
    lo, hi = 0.0, float(np.nextafter(np.float32(probs.max(initial=0.0)), np.float32(2)))
    if false_accepts(probs, lo, hop_s) <= allowed:
        return lo
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if false_accepts(probs, mid, hop_s) <= allowed else (mid, hi)
    return hi


def build_stream(root: Path, negatives: list[str], noise_files: tuple[str, ...], hours: float,
                 sample_rate: int, seed: int = 0) -> LongStream:
    """`hours` of the folder's non-keyword clips (`negatives`, relative paths) and running speech
    (`_speech_/*.wav`), alternating in stretches of 10-40 s, over background noise."""
    if not negatives:
        raise DataError(f"{root} has no clips without the keyword to build a stream from")
    rng = np.random.default_rng([seed, 7])
    speech = {p.stem: read_wav(p, sample_rate) for p in sorted((root / SPEECH_DIR).glob("*.wav"))}
    noise = [read_wav(root / rel, sample_rate) for rel in noise_files]
    total = int(hours * HOUR_S * sample_rate)
    parts, made, used, speech_s = [], 0, 0, 0.0
    clips: dict[str, np.ndarray] = {}
    while made < total:
        length = int(rng.uniform(10, 40) * sample_rate)
        if speech and rng.random() < 0.5:
            source = list(speech.values())[rng.integers(len(speech))]
            part = noise_segment(source, length, rng.random()).copy()
            speech_s += length / sample_rate
        else:
            pieces, n = [], 0
            while n < length:
                rel = negatives[rng.integers(len(negatives))]
                if rel not in clips:
                    clips[rel] = read_wav(root / rel, sample_rate)
                pause = np.zeros(int(rng.uniform(0.0, 0.6) * sample_rate), np.float32)
                pieces += [clips[rel], pause]
                n += clips[rel].shape[0] + pause.shape[0]
                used += 1
            part = np.concatenate(pieces)[:length]
        if noise:
            bed = noise_segment(noise[rng.integers(len(noise))], part.shape[0], rng.random())
            part = add_noise(part, bed, rng.uniform(*SNR_DB))
        parts.append(part.astype(np.float32))
        made += part.shape[0]
    audio = np.concatenate(parts)[:total]
    words_s = audio.shape[0] / sample_rate - speech_s
    content = (f"{_minutes(audio.shape[0] / sample_rate)}: {_minutes(words_s)} of "
               f"{len(clips)} distinct non-keyword clips ({used} spoken) of {root.name}"
               + (f", {_minutes(speech_s)} of running speech from "
                  f"{', '.join(speech)}" if speech else ", no running speech (no _speech_/)")
               + (f", over its background noise at {SNR_DB[0]:.0f}-{SNR_DB[1]:.0f} dB SNR"
                  if noise else ", no background noise"))
    return LongStream(audio, sample_rate, content)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 600 else f"{seconds / 60:.1f} min"


def stream_file(path: Path, sample_rate: int) -> LongStream:
    """A user's long recording without the keyword."""
    audio = read_wav(path, sample_rate)
    return LongStream(audio, sample_rate, f"{path} ({_minutes(audio.shape[0] / sample_rate)})")


def load_stream_model(path: Path | str) -> torch.nn.Module:
    """The streaming module of a checkpoint or a TorchScript export (what `stream` runs)."""
    from kws_search.checkpoint import is_exported, load_model
    from kws_search.deploy.torchscript import build_streaming, load_exported

    path = Path(path)
    if path.suffix == ".onnx":
        raise ConfigError(f"false accepts per hour stream the TorchScript file or the checkpoint; "
                          f"pass the .pt beside {path.name}")
    if is_exported(path):
        return load_exported(path)[0]
    model, state = load_model(path)
    return torch.jit.script(build_streaming(model.eval(), state))


def stream_probabilities(module: torch.nn.Module, audio: np.ndarray,
                         progress: bool = False) -> tuple[np.ndarray, float]:
    """Probability per hop of `audio` streamed from a fresh state, and the hop in seconds.

    On one thread, as a device runs it: a stream's steps are small, and a second thread only
    adds synchronisation (an hour streamed in 14 s on one thread, 4.6 min on two while the
    other core was busy)."""
    sample_rate, hop = int(module.sample_rate), int(module.hop_length)
    chunk = int(CHUNK_S * sample_rate)
    module.reset()
    out = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, audio.shape[0], chunk), unit="s", desc="streaming",
                              disable=not progress, leave=False):
                out.append(module.forward_steps(torch.from_numpy(audio[start:start + chunk])))
    finally:
        torch.set_num_threads(threads)
    probs = torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)
    return probs, hop / sample_rate


def wakeword_measures(module: torch.nn.Module, stream: LongStream, keyword_probs: np.ndarray,
                      threshold: float, progress: bool = False) -> dict[str, Any]:
    """False accepts per hour at `threshold`, and at 0.5 and 1 per hour the threshold and the
    share of keyword clips (`keyword_probs`, one probability each) it misses."""
    if stream.sample_rate != int(module.sample_rate):
        raise ConfigError(f"stream at {stream.sample_rate} Hz, model at {module.sample_rate}")
    probs, hop_s = stream_probabilities(module, stream.audio, progress)
    hours = probs.shape[0] * hop_s / HOUR_S
    fa = false_accepts(probs, threshold, hop_s)
    at_rate = {}
    for rate in RATES:
        t = threshold_for_rate(probs, hop_s, rate)
        at_rate[f"{rate:g}"] = {"threshold": t,
                                "false_reject_rate": float(np.mean(keyword_probs < t))}
    return {"stream": stream.content, "stream_hours": hours,
            "false_accepts": fa, "false_accepts_per_hour": fa / hours,
            "false_reject_rate": float(np.mean(keyword_probs < threshold)),
            "threshold": threshold, "at_rate": at_rate, "keyword_clips": int(keyword_probs.size)}


def describe(result: dict[str, Any]) -> list[str]:
    """The measures as lines for the terminal."""
    lines = [f"  stream: {result['stream']}",
             f"  at threshold {result['threshold']:.3g}: {result['false_accepts']} false accepts "
             f"in {result['stream_hours']:.2f} h = {result['false_accepts_per_hour']:.2f} per "
             f"hour; misses {100 * result['false_reject_rate']:.1f}% of "
             f"{result['keyword_clips']} keyword clips"]
    for rate, r in result["at_rate"].items():
        lines.append(f"  at {rate} false accepts per hour (threshold {r['threshold']:.3g}): "
                     f"misses {100 * r['false_reject_rate']:.1f}%")
    return lines
