"""Log-mel features, noise mixing, and the on-disk feature cache.

Noise is mixed into the waveform before the log-mel. Validation and test get one fixed, seeded
noisy copy each, so their numbers repeat; train gets `train_variants` augmented copies (speed,
room, time shift, noise, vocal-tract warp, channel colour: kws_search.data.augment), and each epoch
picks one copy per clip. All of it is computed once, cached on disk under
a key made of the dataset fingerprint and this config, and loaded in about a second afterwards.
Training then only gathers rows of an in-memory tensor, so the data pipeline stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from tqdm.auto import tqdm

from kws_search.data import augment
from kws_search.data.datasets import (
    DatasetIndex,
    load_clips,
    load_noise,
    scan_dataset,
    test_engines,
)
from kws_search.data.front_end import FeatureConfig, LogMel
from kws_search.errors import ConfigError
from kws_search.files import write_atomic

logger = logging.getLogger(__name__)

CACHE_VERSION = 4  # 4: validation and test stored in float32, as the stream computes them


@dataclass
class FeatureSet:
    """Cached features of one dataset: log-mels (float16 train copies; float32 validation and
    test, as the stream computes them) and int64 labels per split."""

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
    # [clips] speech engine of each test clip of a synthesized folder (not cached: read from
    # its synth.json on load); None for other folders
    test_engines: np.ndarray | None = None

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed features and labels of `validation` or `test`."""
        if name == "validation":
            return self.validation, self.validation_labels
        if name == "test":
            return self.test, self.test_labels
        raise ConfigError(f"unknown split {name!r}; use 'validation' or 'test'")


def noise_segment(source: np.ndarray, length: int, where: float) -> np.ndarray:
    """`length` samples of a background recording from `where` (0..1 of the way in), tiled
    when the recording is shorter."""
    if source.shape[0] < length:
        source = np.tile(source, length // source.shape[0] + 1)
    start = int(where * (source.shape[0] - length))
    return source[start:start + length]


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
        segments[i] = noise_segment(noise[which[i]], length, starts[i])
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


def log_mel(audio: np.ndarray, config: FeatureConfig, batch: int = 1024,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Log-mel features [clips, n_mels, frames] of waveforms [clips, samples]; float32 by
    default, as the exported stream computes them, so a scored number is the file's."""
    front = LogMel(config)
    parts = []
    with torch.inference_mode():
        for start in range(0, audio.shape[0], batch):
            parts.append(front(torch.from_numpy(audio[start:start + batch])).to(dtype))
    if not parts:
        return torch.zeros(0, config.n_mels, config.frames, dtype=dtype)
    return torch.cat(parts)


def augmented_log_mel(audio: np.ndarray, noise: list[np.ndarray],
                      configs: list[FeatureConfig], rng: np.random.Generator,
                      batch: int = 1024) -> list[torch.Tensor]:
    """One augmented train copy, one float16 log-mel [clips, n_mels, frames] per front end in
    `configs`, of waveforms [clips, samples]: speed, reverberation, time shift and noise, then
    vocal-tract warp and channel colouring of the power spectrum (see kws_search.data.augment).

    Every front end sees the same augmented audio and the same warp and colour draws (they
    are drawn per clip, not per bin), so a front end computed alone equals the one computed
    beside others, row for row."""
    config = configs[0]  # the augmentation settings (every config shares them)
    fronts = [LogMel(c).mel for c in configs]
    parts: list[list[torch.Tensor]] = [[] for _ in configs]
    with torch.inference_mode():
        for start in range(0, audio.shape[0], batch):
            x = torch.from_numpy(audio[start:start + batch])
            x = augment.speed_perturb(x, config.speed, rng, config.sample_rate)
            x = augment.reverberate(x, config.reverb_prob, (config.rt60_low, config.rt60_high),
                                    rng, config.sample_rate)
            x = torch.from_numpy(mix_noise(x.numpy(), noise, rng, config, shift=True))
            draws = rng.bit_generator.state
            for front, out in zip(fronts, parts, strict=True):
                rng.bit_generator.state = draws
                power = front.spectrogram(x)  # [clips, bins, frames]
                power = augment.warp_frequencies(power, config.vtlp, rng)
                power = augment.colour(power, config.colour_prob, rng, config.sample_rate)
                out.append(torch.log(front.mel_scale(power).clamp(min=1e-9, max=1e9)).half())
    return [torch.cat(out) if out else torch.zeros(0, c.n_mels, c.frames, dtype=torch.float16)
            for c, out in zip(configs, parts, strict=True)]


def compute_features(index: DatasetIndex, configs: list[FeatureConfig],
                     progress: bool = True) -> list[FeatureSet]:
    """Read, mix and transform every clip of `index` once, into one feature set per front end
    of `configs` (the slow path behind the cache)."""
    noise = load_noise(index, configs[0].sample_rate)
    steps = configs[0].train_variants + 2
    with tqdm(total=steps + 3, desc="features", disable=not progress, unit="step") as bar:
        return _compute(index, configs, noise, bar)


def _compute(index: DatasetIndex, configs: list[FeatureConfig], noise: list[np.ndarray],
             bar: tqdm) -> list[FeatureSet]:
    config = configs[0]  # reading, mixing and augmenting: the same for every front end
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
    fixed: dict[str, list[torch.Tensor]] = {}
    for k, split in enumerate(("validation", "test")):
        rng = np.random.default_rng([config.seed, 1000 + k])
        bar.set_postfix_str(f"log-mel {split}")
        noisy = mix_noise(loaded[split][0], noise, rng, config, shift=False)
        fixed[split] = [log_mel(noisy, c) for c in configs]
        bar.update()
    variants = []
    for v in range(config.train_variants):
        rng = np.random.default_rng([config.seed, v])
        bar.set_postfix_str(f"log-mel train copy {v + 1}")
        variants.append(augmented_log_mel(loaded["train"][0], noise, configs, rng))
        bar.update()
    return [FeatureSet(c, index.fingerprint, index.keyword,
                       torch.stack([copy[i] for copy in variants]), loaded["train"][1],
                       fixed["validation"][i], loaded["validation"][1], fixed["test"][i],
                       loaded["test"][1], train_words)
            for i, c in enumerate(configs)]


def cache_key(fingerprint: str, config: FeatureConfig) -> str:
    """Cache file key: dataset fingerprint + feature settings + cache format version."""
    text = json.dumps({"v": CACHE_VERSION, "data": fingerprint, "features": config.to_dict()},
                      sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def save_features(features: FeatureSet, path: Path) -> None:
    """Write atomically (temp file + rename) so a killed run never leaves a broken cache."""
    state = {k: getattr(features, k) for k in (
        "fingerprint", "keyword", "train", "train_labels", "validation", "validation_labels",
        "test", "test_labels", "train_words")}
    state["config"] = features.config.to_dict()
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_features_file(path: Path) -> FeatureSet:
    """Memory-mapped: worker processes on one machine share one copy in the page cache."""
    state = torch.load(path, weights_only=True, mmap=True)
    config = FeatureConfig.from_dict(state.pop("config"))
    return FeatureSet(config=config, **state)


def prepare_features(root: Path | str, keyword: str, config: FeatureConfig,
                     cache_dir: Path | str, progress: bool = True) -> FeatureSet:
    """Features for a dataset folder, from the cache when the fingerprint and settings match."""
    return prepare_feature_sets(root, keyword, [config], cache_dir, progress)[0]


def prepare_feature_sets(root: Path | str, keyword: str, configs: list[FeatureConfig],
                         cache_dir: Path | str, progress: bool = True) -> list[FeatureSet]:
    """One feature set per config (front ends over the same augmented audio), each from its
    cache when there is one; the missing ones are computed together, in one pass."""
    index = scan_dataset(root, keyword)
    paths = [Path(cache_dir) / f"features-{cache_key(index.fingerprint, c)}.pt"
             for c in configs]
    sets: list[FeatureSet | None] = [None] * len(configs)
    for i, path in enumerate(paths):
        if path.is_file():
            try:
                logger.info("loading cached features %s", path)
                sets[i] = load_features_file(path)
            except Exception as exc:  # a truncated or foreign file: rebuild it
                logger.warning("feature cache %s unreadable (%s); recomputing", path, exc)
    missing = [i for i, found in enumerate(sets) if found is None]
    if missing:
        logger.info("computing features for %s (keyword %r, %d front ends)", index.root,
                    keyword, len(missing))
        computed = compute_features(index, [configs[i] for i in missing], progress)
        for i, features in zip(missing, computed, strict=True):
            save_features(features, paths[i])
            sets[i] = features
    engines = test_engines(index.root, keyword, sets[0].test.shape[0])
    for features in sets:
        features.test_engines = engines
    return sets  # type: ignore[return-value]
