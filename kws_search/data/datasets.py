"""Reading a dataset in the Speech Commands folder layout.

One folder per word holding 16 kHz mono `<speaker>_nohash_<n>.wav` clips, `validation_list.txt`
and `testing_list.txt` naming the held-out clips (everything else is train), and
`_background_noise_/` with long noise recordings. Real Speech Commands (v0.01 or v0.02) and the
synthesized default dataset share this layout, so one reader serves both.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from kws_search.errors import KwsSearchError

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
NOISE_DIR = "_background_noise_"
SPEECH_DIR = "_speech_"  # running speech without the keyword (the default dataset writes it)
MAX_SKIPPED_FRACTION = 0.01


class DataError(KwsSearchError, ValueError):
    """A dataset or audio file that cannot be used; the message names it and says what to do."""


@dataclass(frozen=True)
class DatasetIndex:
    """Clips of one dataset, split and labelled for one keyword (label 1), all else label 0."""

    root: Path
    keyword: str
    words: tuple[str, ...]
    splits: dict[str, list[tuple[str, int]]]  # split -> [(relative path, label)]
    noise_files: tuple[str, ...]
    fingerprint: str = field(default="")

    def counts(self) -> dict[str, dict[str, int]]:
        """Clips per split and class, for logs and errors."""
        return {s: {"keyword": sum(lab for _, lab in items),
                    "other": sum(1 - lab for _, lab in items)}
                for s, items in self.splits.items()}


CLIPPED = 0.999  # a sample this close to full scale counts as clipped


def read_wav(path: Path, sample_rate: int = 16_000) -> np.ndarray:
    """Read a wav as float32 mono at `sample_rate` (stereo is mixed down, other rates resampled)."""
    if not Path(path).is_file():
        raise DataError(f"audio file {path} does not exist; check the path")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise DataError(f"cannot read audio file {path}: {exc}; replace or delete it") from None
    if audio.shape[0] == 0:
        raise DataError(f"audio file {path} is empty (zero samples); replace or delete it")
    if not np.isfinite(audio).all():
        raise DataError(f"audio file {path} holds NaN or infinite samples; replace or delete it")
    audio = audio.mean(axis=1)  # [samples]
    if sr != sample_rate:
        # torch only here: synth workers import this module and stay torch-free (72 MB, not 543)
        import torch
        import torchaudio.functional as AF

        audio = AF.resample(torch.from_numpy(audio), sr, sample_rate).numpy()
    return np.ascontiguousarray(audio, dtype=np.float32)


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad the last axis at its end to exactly `length` samples."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, length - audio.shape[-1])])


def _read_list(root: Path, name: str) -> set[str]:
    path = root / name
    if not path.is_file():
        raise DataError(
            f"{root} is not a Speech Commands folder: {name} is missing "
            "(expected one folder per word plus validation_list.txt and testing_list.txt; "
            "run `kws-search data synth` for the default dataset)")
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def word_folders(root: Path, keyword: str) -> tuple[str, ...]:
    """Word folder names of a Speech Commands style folder; DataError without the keyword's."""
    words = tuple(sorted(p.name for p in root.iterdir()
                         if p.is_dir() and not p.name.startswith(("_", "."))))
    if not words:
        raise DataError(f"{root} has no word folders; it is not a Speech Commands folder")
    if keyword not in words:
        raise DataError(f"no folder for keyword {keyword!r} in {root}; "
                        f"choose --keyword from: {', '.join(words)}")
    return words


def engine_of_speaker(root: Path) -> dict[str, str]:
    """Each speaker's speech engine, from a synthesized folder's `synth.json` ({} otherwise)."""
    try:
        return dict(json.loads((Path(root) / "synth.json").read_text())
                    .get("speaker_engine", {}))
    except (OSError, ValueError):
        return {}


def test_engines(root: Path | str, keyword: str, count: int) -> np.ndarray | None:
    """The speech engine of each test clip of a synthesized folder, in the order the feature
    cache holds them (`scan_dataset`'s: word folders, then files, sorted); None for a folder
    that does not record engines, or when `count` (the cached clips) says some were skipped."""
    root = Path(root)
    engine_of = engine_of_speaker(root)
    if not engine_of or not (root / "testing_list.txt").is_file():
        return None
    words = set(word_folders(root, keyword))
    listed = sorted(tuple(rel.split("/", 1)) for rel in _read_list(root, "testing_list.txt")
                     if rel.split("/", 1)[0] in words and (root / rel).is_file())
    if len(listed) != count:
        return None
    return np.array([engine_of.get(name.split("_nohash_")[0], "?") for _, name in listed])


def evaluation_only(root: Path) -> bool:
    """True for folders made for scoring only (`kws-search data synth --engine festival`)."""
    meta = root / "synth.json"
    if not meta.is_file():
        return False
    try:
        return bool(json.loads(meta.read_text()).get("evaluation_only", False))
    except (ValueError, OSError):
        return False


def scan_dataset(root: Path | str, keyword: str = "sheila") -> DatasetIndex:
    """Index a Speech Commands style folder for `keyword`; raise DataError when it cannot serve."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist; run `kws-search data synth` "
                        "or pass --data PATH to a Speech Commands folder")
    if evaluation_only(root):
        raise DataError(f"{root} is an evaluation-only folder (voices nobody trains on); "
                        "score models on it with `kws-search evaluate` or `run --cross-data`")
    val_list = _read_list(root, "validation_list.txt")
    test_list = _read_list(root, "testing_list.txt")
    words = word_folders(root, keyword)
    splits: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    for word in words:
        label = int(word == keyword)
        for wav in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{wav.name}"
            split = "validation" if rel in val_list else "test" if rel in test_list else "train"
            splits[split].append((rel, label))
    for split, items in splits.items():
        n_kw = sum(lab for _, lab in items)
        if n_kw == 0:
            others = sorted({f.suffix for f in (root / keyword).glob("*.*")} - {".wav"})
            if others and not any((root / keyword).glob("*.wav")):
                raise DataError(f"{root / keyword} holds {', '.join(others)} files and no .wav; "
                                "kws-search reads 16 kHz .wav clips only, so convert them "
                                "(e.g. ffmpeg -i in.flac -ar 16000 out.wav)")
            raise DataError(f"no {keyword!r} clips in the {split} split of {root}; "
                            "the keyword folder is empty or missing from that split's list")
        if n_kw == len(items):
            raise DataError(f"the {split} split of {root} has only {keyword!r} clips; "
                            "other words are needed as negatives")
    present = {rel for items in splits.values() for rel, _ in items}
    for name, listed in (("validation_list.txt", val_list), ("testing_list.txt", test_list)):
        missing = sorted(rel for rel in listed if rel.endswith(".wav") and rel not in present
                         and rel.split("/", 1)[0] in words)
        if missing:
            logger.warning("%s names %d file(s) missing from %s (first: %s)", name,
                           len(missing), root, missing[0])
        if len(missing) > MAX_SKIPPED_FRACTION * max(1, len(listed)):
            raise DataError(f"{name} names {len(missing)} file(s) missing from {root} "
                            f"(first: {missing[0]}); restore them or remove them from the list")
    noise_dir = root / NOISE_DIR
    noise = tuple(sorted(f"{NOISE_DIR}/{p.name}" for p in noise_dir.glob("*.wav"))) \
        if noise_dir.is_dir() else ()
    if not noise:
        logger.warning("no background noise in %s; clips will be used without added noise",
                       noise_dir)
    index = DatasetIndex(root, keyword, words, splits, noise)
    return DatasetIndex(root, keyword, words, splits, noise, fingerprint(index))


def fingerprint(index: DatasetIndex) -> str:
    """Hash of keyword, split membership and the bytes of every file used (clips and noise)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(index.keyword.encode())
    for split in SPLITS:
        for rel, label in index.splits[split]:
            h.update(f"{split}/{rel}/{label}".encode())
            h.update((index.root / rel).read_bytes())
    for rel in index.noise_files:
        h.update(rel.encode())
        h.update((index.root / rel).read_bytes())
    return h.hexdigest()


def folder_fingerprint(root: Path, keyword: str) -> str:
    """Hash of the paths and bytes of every clip and noise file of a folder to score on (its
    word folders and background noise): a re-made folder gets another one."""
    h = hashlib.blake2b(digest_size=16)
    clips = [p for w in word_folders(root, keyword) for p in sorted((root / w).glob("*.wav"))]
    noise = sorted((root / NOISE_DIR).glob("*.wav"))
    for path in [*clips, *noise]:
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def load_clips(index: DatasetIndex, split: str, sample_rate: int, length: int,
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Audio [clips, length], labels [clips] and the skipped files' relative paths of a split.

    Unreadable files are skipped and logged with their count; more than 1% of the split
    unreadable is an error, since the numbers would no longer mean what the user thinks.
    """
    items = index.splits[split]
    audio = np.zeros((len(items), length), dtype=np.float32)
    keep = np.ones(len(items), dtype=bool)
    skipped: list[str] = []
    first_error = ""
    for i, (rel, _) in enumerate(items):
        try:
            audio[i] = fit_length(read_wav(index.root / rel, sample_rate), length)
        except DataError as exc:
            keep[i] = False
            skipped.append(rel)
            first_error = first_error or str(exc)
    if skipped:
        logger.warning("skipped %d unreadable file(s) in the %s split, first: %s",
                       len(skipped), split, first_error)
        if len(skipped) > MAX_SKIPPED_FRACTION * len(items):
            raise DataError(f"{len(skipped)} of {len(items)} files in the {split} split of "
                            f"{index.root} are unreadable (first: {first_error})")
    for what, odd in (("silent", ~audio.any(axis=1)),
                      ("clipped (over 1% of samples at full scale)",
                       (np.abs(audio) >= CLIPPED).mean(axis=1) > 0.01)):
        odd &= keep
        if odd.any():
            first = items[int(np.flatnonzero(odd)[0])][0]
            logger.warning("%d %s clip(s) in the %s split, first: %s", int(odd.sum()), what,
                           split, first)
    labels = np.array([lab for _, lab in items], dtype=np.int64)
    return audio[keep], labels[keep], skipped


def load_noise(index: DatasetIndex, sample_rate: int) -> list[np.ndarray]:
    """Background noise recordings, each float32 mono at `sample_rate`."""
    return [read_wav(index.root / rel, sample_rate) for rel in index.noise_files]
