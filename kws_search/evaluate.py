"""Scoring a model on any Speech Commands style folder: the user's recordings, or the project's
own cross-engine check (a Festival folder, voices nobody trained on).

A folder with split lists is scored on one split (test by default); a folder without lists, or
one made for evaluation only, on every clip. Background noise in `_background_noise_` is mixed
in exactly as the pipeline mixes the test split (fixed seed), so numbers compare with the test
quality the search records; `noise=False` scores the clips as recorded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kws_search.data.datasets import (
    NOISE_DIR,
    DataError,
    DatasetIndex,
    engine_of_speaker,
    evaluation_only,
    load_clips,
    load_noise,
    scan_dataset,
    word_folders,
)
from kws_search.data.features import log_mel, mix_noise
from kws_search.data.front_end import FeatureConfig
from kws_search.errors import ConfigError
from kws_search.measure import au_fa_fr, predict_deployed, suggest_threshold

ALL = "all"
# besides the model's own threshold, the summary gives the one that lets this share of the
# folder's negatives fire: set on the folder itself, so it says what calibrating would buy
OWN_FA_RATE = 0.01
_NOISE_SEED = {"validation": 1000, "test": 1001, "train": 1002, ALL: 1001}


@dataclass(frozen=True)
class EvalSet:
    """Clips of one folder (one split of it), with noise mixed as for the test split."""

    root: Path
    keyword: str
    split: str  # "test", "validation", "train", or "all" for folders without lists
    paths: tuple[str, ...]  # relative, "word/<speaker>_nohash_<n>.wav"
    labels: np.ndarray  # [clips] 1 for the keyword
    audio: np.ndarray  # [clips, samples] float32
    skipped: int  # unreadable files left out
    noise: bool  # whether background noise was mixed in

    @property
    def keyword_share(self) -> float:
        return float(self.labels.mean()) if self.labels.size else 0.0

    def describe(self) -> str:
        what = "every clip" if self.split == ALL else f"the {self.split} split"
        noise = ", noise mixed as for test" if self.noise else ", no added noise"
        return f"{self.root} ({what}{noise})"


def has_split_lists(root: Path) -> bool:
    return (root / "validation_list.txt").is_file() or (root / "testing_list.txt").is_file()


def index_for(root: Path, keyword: str, split: str | None) -> tuple[DatasetIndex, str]:
    """The folder's index and the split to score (ALL for folders without lists)."""
    if not root.is_dir():
        raise DataError(f"evaluation folder {root} does not exist; pass --data PATH to a folder "
                        "of <word>/<file>.wav clips")
    if has_split_lists(root) and not evaluation_only(root):
        index = scan_dataset(root, keyword)
        split = split or "test"
        if split not in index.splits:
            raise DataError(f"unknown split {split!r}; use test, validation or train")
        return index, split
    if split not in (None, ALL):
        raise DataError(f"{root} has no split lists, so every clip is scored; drop --split")
    words = word_folders(root, keyword)
    items = [(f"{w}/{p.name}", int(w == keyword))
             for w in words for p in sorted((root / w).glob("*.wav"))]
    n_kw = sum(label for _, label in items)
    if n_kw == 0 or n_kw == len(items):
        raise DataError(f"{root} needs both {keyword!r} clips and other words to be scored "
                        f"(found {n_kw} {keyword!r} of {len(items)} clips)")
    noise_dir = root / NOISE_DIR
    noise = tuple(sorted(f"{NOISE_DIR}/{p.name}" for p in noise_dir.glob("*.wav")))
    return DatasetIndex(root, keyword, words, {ALL: items}, noise), ALL


def load_eval_set(root: Path | str, keyword: str, config: FeatureConfig,
                  split: str | None = None, noise: bool = True) -> EvalSet:
    """Read (and mix noise into) the clips to score; DataError when the folder cannot serve."""
    index, split = index_for(Path(root), keyword, split)
    audio, labels, skipped = load_clips(index, split, config.sample_rate, config.clip_samples)
    left_out = set(skipped)
    paths = tuple(rel for rel, _ in index.splits[split] if rel not in left_out)
    mixed = bool(noise and index.noise_files)
    if mixed:
        rng = np.random.default_rng([config.seed, _NOISE_SEED[split]])
        audio = mix_noise(audio, load_noise(index, config.sample_rate), rng, config, shift=False)
    return EvalSet(index.root, keyword, split, paths, labels, audio, len(skipped), mixed)


def eval_features(eval_set: EvalSet, config: FeatureConfig) -> torch.Tensor:
    """Log-mel features [clips, n_mels, frames] of the set, as the training cache makes them."""
    return log_mel(eval_set.audio, config)


def speaker_of(path: str) -> str:
    return Path(path).name.split("_nohash_")[0]


def summarize(probs: np.ndarray, eval_set: EvalSet, threshold: float) -> dict[str, Any]:
    """Quality, FA/FR at `threshold`, detections, false alarms per word, misses per speaker.

    `quality_norm` divides the FA/FR area by p(1-p), p the keyword share, so folders with other
    keyword shares compare (the area scales with both class shares).
    """
    labels = eval_set.labels.astype(bool)
    fired = probs >= threshold
    n_kw, n_other = int(labels.sum()), int((~labels).sum())
    quality = au_fa_fr(probs, labels)
    share = eval_set.keyword_share
    words = Counter(p.split("/")[0] for p, f, y in zip(eval_set.paths, fired, labels,
                                                          strict=True) if f and not y)
    misses = Counter(speaker_of(p) for p, f, y in zip(eval_set.paths, fired, labels,
                                                      strict=True) if y and not f)
    said = Counter(speaker_of(p) for p, y in zip(eval_set.paths, labels, strict=True) if y)
    # what a threshold set on these very clips would detect: what calibrating on them buys
    own = suggest_threshold(probs, labels, OWN_FA_RATE)
    return {
        "quality": quality,
        "quality_norm": quality / (share * (1 - share)),
        "threshold": float(threshold),
        "fa": float((fired & ~labels).sum() / max(1, n_other)),
        "fr": float((~fired & labels).sum() / max(1, n_kw)),
        "clips": int(labels.size),
        "keyword_clips": n_kw,
        "detected": int((fired & labels).sum()),
        "false_alarms": int((fired & ~labels).sum()),
        "false_alarms_per_word": dict(words.most_common()),
        "misses_per_speaker": {s: [m, said[s]] for s, m in misses.most_common()},
        "own_fa_rate": OWN_FA_RATE,
        "own_threshold": own,
        "own_detected": int((probs[labels] >= own).sum()),
        "own_false_alarms": int((probs[~labels] >= own).sum()),
        "skipped": eval_set.skipped,
        "data": str(eval_set.root),
        "split": eval_set.split,
        "noise": eval_set.noise,
        "per_engine": per_engine(probs, eval_set, threshold),
    }


def per_engine(probs: np.ndarray, eval_set: EvalSet, threshold: float) -> dict[str, dict]:
    """Per speech engine of a synthesized folder: clips, keyword clips, detected, false alarms
    and quality (with quality / p(1-p)), so a user sees which voices are hard."""
    engine_of = engine_of_speaker(eval_set.root)
    if not engine_of:
        return {}
    engines = np.array([engine_of.get(speaker_of(p), "?") for p in eval_set.paths])
    labels = eval_set.labels.astype(bool)
    out = {}
    for engine in sorted(set(engines.tolist())):
        mine = engines == engine
        y, p = labels[mine], probs[mine]
        share = float(y.mean())
        quality = au_fa_fr(p, y) if 0 < share < 1 else float("nan")
        out[engine] = {"clips": int(mine.sum()), "keyword_clips": int(y.sum()),
                       "detected": int((p[y] >= threshold).sum()),
                       "false_alarms": int((p[~y] >= threshold).sum()),
                       "quality": quality,
                       "quality_norm": quality / (share * (1 - share)) if 0 < share < 1
                       else float("nan")}
    return out


@dataclass
class Scorer:
    """A model file ready to score audio: checkpoint (teacher or student) or exported file."""

    path: Path
    kind: str  # "teacher", "student" or "exported"
    quant: str
    keyword: str
    feature_config: FeatureConfig
    threshold: float
    probabilities: Callable[[np.ndarray], np.ndarray]  # audio [clips, samples] -> [clips]


def load_scorer(path: Path | str) -> Scorer:
    """A teacher/student checkpoint or a `kws-search export` file; CheckpointError if neither."""
    from kws_search.checkpoint import is_exported, load_model
    from kws_search.deploy.torchscript import load_exported

    path = Path(path)
    if path.suffix == ".onnx" and path.is_file():
        return _onnx_scorer(path)
    if is_exported(path):
        module, info = load_exported(path)

        def stream_offline(audio: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return np.array([float(module.offline(torch.from_numpy(clip)))
                                 for clip in audio])
        return Scorer(path, "exported", str(info.get("quant", "none")), str(module.keyword),
                      FeatureConfig.from_dict(info["features"]), float(module.threshold),
                      stream_offline)
    model, state = load_model(path)
    config = FeatureConfig.from_dict(state["features"])

    def batched(audio: np.ndarray) -> np.ndarray:
        return predict_deployed(model, log_mel(audio, config))
    threshold = float(state.get("metrics", {}).get("threshold", 0.5))
    return Scorer(path, str(state["kind"]), str(state.get("quant", "none")), state["keyword"],
                  config, threshold, batched)


def _onnx_scorer(path: Path) -> Scorer:
    """An ONNX file from `kws-search export --format onnx`, each clip streamed through it from
    a fresh state: its last probability pools every step of the clip, as `offline` does."""
    from kws_search.deploy.onnx_runtime import OnnxStream
    from kws_search.options import missing_onnx

    if missing_onnx():
        raise ConfigError(f"scoring {path} needs {', '.join(missing_onnx())}: "
                          'pip install -e ".[onnx]"')
    stream = OnnxStream(path)
    info = stream.info

    def streamed(audio: np.ndarray) -> np.ndarray:
        probs = []
        for clip in audio:
            stream.reset()
            probs.append(stream(clip)[-1])
        return np.asarray(probs, np.float64)
    return Scorer(path, "exported", str(info.get("quant", "none")), str(info["keyword"]),
                  FeatureConfig.from_dict(info["features"]), float(info["threshold"]), streamed)


def evaluate_file(model_path: Path | str, data: Path | str, split: str | None = None,
                  threshold: float | None = None, noise: bool = True,
                  keyword: str | None = None, hours: float | None = None,
                  long_wav: Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Score one model file on one folder; the dict of `summarize` plus the model's name, and
    with `hours` (a stream built from the folder) or `long_wav` (a recording without the
    keyword) the wake-word measures under "wakeword" (see `kws_search.wakeword`)."""
    from kws_search import wakeword

    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"--threshold must be within 0..1, got {threshold}")
    if hours is not None and hours <= 0:
        raise ConfigError(f"--hours must be > 0, got {hours}")
    if long_wav is not None and not Path(long_wav).is_file():
        raise DataError(f"--long-wav {long_wav} does not exist; give a wav without the keyword")
    scorer = load_scorer(model_path)
    stream_model = (wakeword.load_stream_model(model_path)
                    if hours is not None or long_wav is not None else None)
    keyword = keyword or scorer.keyword
    eval_set = load_eval_set(data, keyword, scorer.feature_config, split, noise)
    probs = scorer.probabilities(eval_set.audio)
    used = scorer.threshold if threshold is None else threshold
    result = summarize(probs, eval_set, used)
    result.update(model=str(scorer.path), kind=scorer.kind, quant=scorer.quant,
                  keyword=keyword, described=eval_set.describe())
    if stream_model is not None:
        rate = scorer.feature_config.sample_rate
        if long_wav is not None:
            stream = wakeword.stream_file(Path(long_wav), rate)
        else:
            index, split_name = index_for(Path(data), keyword, split)
            negatives = [rel for rel, label in index.splits[split_name] if label == 0]
            stream = wakeword.build_stream(index.root, negatives, index.noise_files, hours,
                                           rate)
        result["wakeword"] = wakeword.wakeword_measures(
            stream_model, stream, probs[eval_set.labels == 1], used, progress)
    return result
