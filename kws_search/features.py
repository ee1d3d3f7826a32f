"""Log-mel features, noise mixing, and the on-disk feature cache.

Noise is mixed into the waveform before the log-mel. Validation and test get one fixed, seeded
noisy copy each, so their numbers repeat; train gets `train_variants` augmented copies (speed,
room, time shift, noise, vocal-tract warp, channel colour: kws_search.augment), and each epoch
picks one copy per clip. All of it is computed once, cached on disk under
a key made of the dataset fingerprint and this config, and loaded in about a second afterwards.
Training then only gathers rows of an in-memory tensor, so the data pipeline stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio
import torchaudio.functional as AF
from torch import nn
from tqdm.auto import tqdm

from kws_search import augment
from kws_search.data import DatasetIndex, load_clips, load_noise, scan_dataset
from kws_search.errors import ConfigError

logger = logging.getLogger(__name__)

CACHE_VERSION = 3


@dataclass(frozen=True)
class FeatureConfig:
    """Front end and noise settings; part of the cache key and stored in every checkpoint."""

    sample_rate: int = 16_000
    clip_samples: int = 16_000
    n_fft: int = 400
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 40
    snr_low: float = -5.0
    snr_high: float = 15.0
    noise_prob: float = 0.8
    max_shift: float = 0.1  # seconds of random time shift for train copies
    train_variants: int = 8  # augmented copies of each train clip; an epoch picks one per clip
    # augmentation of train copies (kws_search.augment); 0 turns a lever off
    speed: float = 0.15  # speed perturbation: 1 +- speed
    reverb_prob: float = 0.5  # share of copies in a simulated room
    rt60_low: float = 0.1
    rt60_high: float = 0.8
    vtlp: float = 0.12  # vocal-tract-length warp factor: 1 +- vtlp
    colour_prob: float = 0.5  # share of copies through a random channel response
    seed: int = 0

    @property
    def frames(self) -> int:
        """Feature frames per clip (centered STFT)."""
        return self.clip_samples // self.hop_length + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LogMel(nn.Module):
    """Waveform [batch, samples] -> log-mel [batch, n_mels, frames], clamped before the log."""

    def __init__(self, config: FeatureConfig, center: bool = True) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate, n_fft=config.n_fft, win_length=config.win_length,
            hop_length=config.hop_length, n_mels=config.n_mels, center=center)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(wav).clamp(min=1e-9, max=1e9))


@dataclass
class FeatureSet:
    """Cached features of one dataset: float16 log-mels and int64 labels per split."""

    config: FeatureConfig
    fingerprint: str  # of the dataset
    keyword: str
    train: torch.Tensor  # [variants, clips, n_mels, frames]
    train_labels: torch.Tensor  # [clips]
    validation: torch.Tensor  # [clips, n_mels, frames]
    validation_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor
    train_words: torch.Tensor | None = None  # [clips] word folder index of each train clip

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed features and labels of `validation` or `test`."""
        if name == "validation":
            return self.validation, self.validation_labels
        if name == "test":
            return self.test, self.test_labels
        raise ConfigError(f"unknown split {name!r}; use 'validation' or 'test'")


def mix_noise(clips: np.ndarray, noise: list[np.ndarray], rng: np.random.Generator,
              config: FeatureConfig, shift: bool) -> np.ndarray:
    """Add a random noise segment at a random SNR to a share of the clips, optionally shifting."""
    out = clips.copy()
    n, length = clips.shape
    if shift and config.max_shift > 0:
        max_shift = int(config.max_shift * config.sample_rate)
        for i, s in enumerate(rng.integers(-max_shift, max_shift + 1, size=n)):
            if s > 0:
                out[i, s:], out[i, :s] = clips[i, :-s], 0.0
            elif s < 0:
                out[i, :s], out[i, s:] = clips[i, -s:], 0.0
    if not noise:
        return out
    noisy = rng.random(n) < config.noise_prob
    snr_db = rng.uniform(config.snr_low, config.snr_high, size=n)
    which = rng.integers(0, len(noise), size=n)
    starts = rng.random(n)
    segments = np.zeros_like(out)
    for i in np.flatnonzero(noisy):
        source = noise[which[i]]
        if source.shape[0] < length:
            source = np.tile(source, length // source.shape[0] + 1)
        start = int(starts[i] * (source.shape[0] - length))
        segments[i] = source[start:start + length]
    return add_noise(out, segments, np.where(noisy, snr_db, np.inf))


def add_noise(signal: np.ndarray, noise: np.ndarray, snr_db: np.ndarray | float,
              batch: int = 1024) -> np.ndarray:
    """signal + noise scaled to `snr_db` below it, per row of [..., samples]; float32.

    torchaudio's `add_noise` on `batch` rows at a time; rows with an infinite SNR, a silent
    signal or silent noise stay clean.
    """
    length = signal.shape[-1]
    flat_signal = signal.reshape(-1, length)  # [rows, samples]
    flat_noise = noise.reshape(-1, length)
    snr = np.broadcast_to(np.asarray(snr_db, dtype=np.float32), signal.shape[:-1]).reshape(-1)
    rows = np.flatnonzero(np.isfinite(snr) & flat_signal.any(axis=1) & flat_noise.any(axis=1))
    out = flat_signal.astype(np.float32)  # a copy
    for start in range(0, rows.size, batch):
        i = rows[start:start + batch]
        out[i] = AF.add_noise(torch.from_numpy(out[i]), torch.from_numpy(flat_noise[i]),
                              torch.from_numpy(snr[i])).numpy()
    return out.reshape(signal.shape)


def log_mel(audio: np.ndarray, config: FeatureConfig, batch: int = 1024) -> torch.Tensor:
    """float16 log-mel features [clips, n_mels, frames] of waveforms [clips, samples]."""
    front = LogMel(config)
    parts = []
    with torch.inference_mode():
        for start in range(0, audio.shape[0], batch):
            parts.append(front(torch.from_numpy(audio[start:start + batch])).half())
    if not parts:
        return torch.zeros(0, config.n_mels, config.frames, dtype=torch.float16)
    return torch.cat(parts)


def augmented_log_mel(audio: np.ndarray, noise: list[np.ndarray], config: FeatureConfig,
                      rng: np.random.Generator, batch: int = 1024) -> torch.Tensor:
    """One augmented train copy: float16 log-mel [clips, n_mels, frames] of waveforms
    [clips, samples]: speed, reverberation, time shift and noise, then vocal-tract warp and
    channel colouring of the power spectrum (see kws_search.augment)."""
    front = LogMel(config).mel
    parts = []
    with torch.inference_mode():
        for start in range(0, audio.shape[0], batch):
            x = torch.from_numpy(audio[start:start + batch])
            x = augment.speed_perturb(x, config.speed, rng, config.sample_rate)
            x = augment.reverberate(x, config.reverb_prob, (config.rt60_low, config.rt60_high),
                                    rng, config.sample_rate)
            x = torch.from_numpy(mix_noise(x.numpy(), noise, rng, config, shift=True))
            power = front.spectrogram(x)  # [clips, bins, frames]
            power = augment.warp_frequencies(power, config.vtlp, rng)
            power = augment.colour(power, config.colour_prob, rng, config.sample_rate)
            parts.append(torch.log(front.mel_scale(power).clamp(min=1e-9, max=1e9)).half())
    if not parts:
        return torch.zeros(0, config.n_mels, config.frames, dtype=torch.float16)
    return torch.cat(parts)


def compute_features(index: DatasetIndex, config: FeatureConfig,
                     progress: bool = True) -> FeatureSet:
    """Read, mix and transform every clip of `index` (the slow path behind the cache)."""
    noise = load_noise(index, config.sample_rate)
    steps = config.train_variants + 2
    with tqdm(total=steps + 3, desc="features", disable=not progress, unit="step") as bar:
        return _compute(index, config, noise, bar)


def _compute(index: DatasetIndex, config: FeatureConfig, noise: list[np.ndarray],
             bar: tqdm) -> FeatureSet:
    loaded = {}
    skipped: dict[str, list[str]] = {}
    for split in ("train", "validation", "test"):
        bar.set_postfix_str(f"reading {split}")
        audio, labels, skipped[split] = load_clips(index, split, config.sample_rate,
                                                   config.clip_samples)
        loaded[split] = (audio, torch.from_numpy(labels))
        bar.update()
    left_out = set(skipped["train"])
    train_words = torch.tensor([index.words.index(rel.split("/")[0])
                                for rel, _ in index.splits["train"] if rel not in left_out],
                               dtype=torch.int64)
    out: dict[str, torch.Tensor] = {}
    for k, split in enumerate(("validation", "test")):
        rng = np.random.default_rng([config.seed, 1000 + k])
        bar.set_postfix_str(f"log-mel {split}")
        out[split] = log_mel(mix_noise(loaded[split][0], noise, rng, config, shift=False), config)
        bar.update()
    variants = []
    for v in range(config.train_variants):
        rng = np.random.default_rng([config.seed, v])
        bar.set_postfix_str(f"log-mel train copy {v + 1}")
        variants.append(augmented_log_mel(loaded["train"][0], noise, config, rng))
        bar.update()
    return FeatureSet(config, index.fingerprint, index.keyword, torch.stack(variants),
                      loaded["train"][1], out["validation"], loaded["validation"][1],
                      out["test"], loaded["test"][1], train_words)


def cache_key(fingerprint: str, config: FeatureConfig) -> str:
    """Cache file key: dataset fingerprint + feature settings + cache format version."""
    text = json.dumps({"v": CACHE_VERSION, "data": fingerprint, "features": config.to_dict()},
                      sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def save_features(features: FeatureSet, path: Path) -> None:
    """Write atomically (temp file + rename) so a killed run never leaves a broken cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    state = {k: getattr(features, k) for k in (
        "fingerprint", "keyword", "train", "train_labels", "validation", "validation_labels",
        "test", "test_labels", "train_words")}
    state["config"] = features.config.to_dict()
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_features_file(path: Path) -> FeatureSet:
    """Memory-mapped: worker processes on one machine share one copy in the page cache."""
    state = torch.load(path, weights_only=True, mmap=True)
    config = FeatureConfig(**state.pop("config"))
    return FeatureSet(config=config, **state)


def prepare_features(root: Path | str, keyword: str, config: FeatureConfig,
                     cache_dir: Path | str, progress: bool = True) -> FeatureSet:
    """Features for a dataset folder, from the cache when the fingerprint and settings match."""
    index = scan_dataset(root, keyword)
    path = Path(cache_dir) / f"features-{cache_key(index.fingerprint, config)}.pt"
    if path.is_file():
        try:
            logger.info("loading cached features %s", path)
            return load_features_file(path)
        except Exception as exc:  # a truncated or foreign file: rebuild it
            logger.warning("feature cache %s unreadable (%s); recomputing", path, exc)
    logger.info("computing features for %s (keyword %r)", index.root, keyword)
    features = compute_features(index, config, progress)
    save_features(features, path)
    return features
