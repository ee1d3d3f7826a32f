"""What the search optimizes and reports: FA/FR area, MACs (model and front end), latency.

Stored size (bytes) depends on how layers are quantized, so it lives in `quantize.py`.

The log-mel front end is counted apart from the model: per frame a window, a real FFT, the
power, the mel matrix and the log. A model reads only the frames its conv covers (a conv
whose time kernel is shorter than its stride skips frames, and the ONNX export never computes
those), so the front end costs `StreamGeometry.frames_read` frames per clip, not every frame.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from kws_search.data.features import FeatureSet
from kws_search.data.front_end import FeatureConfig
from kws_search.geometry import StreamGeometry
from kws_search.memory import peak_ram_bytes
from kws_search.models import CRNN, CRNNConfig, count_parameters
from kws_search.quantize import batch_dependent, quantized_structure, stored_bytes

THRESHOLD_FA_RATE = 0.005  # suggested detection threshold: at most 0.5% of negatives fire


def au_fa_fr(probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """Area under the FR(FA) curve, both rates over all N clips; lower is better.

    Thresholds are 0, every keyword probability, and 1; FA(t) counts negatives with p >= t and
    FR(t) positives with p < t. Same number as the seminar's O(N^2) loop, in O(N log N): sort
    once, then cumulative class counts give both rates at every threshold.
    """
    p = np.asarray(probs, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if p.shape != y.shape:
        raise ValueError(f"probs and labels differ in length: {p.shape[0]} vs {y.shape[0]}")
    n = p.shape[0]
    if n == 0:
        raise ValueError("au_fa_fr needs at least one prediction")
    order = np.argsort(p, kind="stable")
    sorted_p = p[order]
    pos_before = np.concatenate(([0], np.cumsum(y[order])))  # positives among the k lowest
    neg_before = np.arange(n + 1) - pos_before
    thresholds = np.concatenate(([0.0], sorted_p, [1.0]))
    below = np.searchsorted(sorted_p, thresholds, side="left")  # clips with p < t
    fa = (neg_before[-1] - neg_before[below]) / n
    fr = pos_before[below] / n
    return float(np.sum((fa[:-1] - fa[1:]) * (fr[:-1] + fr[1:]) / 2))


def bootstrap_counts(labels: np.ndarray | torch.Tensor, resamples: int = 200,
                     seed: int = 0) -> np.ndarray:
    """How often each clip is drawn in each resample, [resamples, clips].

    Stratified: positives are drawn from positives and negatives from negatives, so every
    resample keeps the class counts. The draws depend only on the class counts and `seed`, so
    models scored on one split are resampled alike (paired intervals).
    """
    y = np.asarray(labels).ravel().astype(bool)
    n = y.shape[0]
    rng = np.random.default_rng(seed)
    offsets = (np.arange(resamples) * n)[:, None]  # flat index of clip 0 in each resample
    draws = []
    for members in (np.flatnonzero(y), np.flatnonzero(~y)):
        if members.size:
            picks = rng.integers(0, members.size, size=(resamples, members.size))
            draws.append((members[picks] + offsets).ravel())
    flat = np.concatenate(draws) if draws else np.zeros(0, dtype=np.int64)
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n)


def bootstrap_areas(probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                    counts: np.ndarray) -> np.ndarray:
    """`au_fa_fr` of every resample, [resamples], for `counts` from `bootstrap_counts`.

    All resamples are scored at once: sort once, sum the counts of tied probabilities, and the
    area is the sum over distinct values v < 1 of neg(v) x (pos(< v) + pos(v) / 2) / N^2, the
    trapezoids of `au_fa_fr` (probabilities within 0..1).
    """
    p = np.asarray(probs, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if p.shape != y.shape:
        raise ValueError(f"probs and labels differ in length: {p.shape[0]} vs {y.shape[0]}")
    if p.shape[0] == 0:
        raise ValueError("bootstrap needs at least one prediction")
    n = p.shape[0]
    order = np.argsort(p, kind="stable")
    sorted_p, sorted_y = p[order], y[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_p[1:] != sorted_p[:-1])))
    crossed = sorted_p[starts] < 1.0  # clips at p = 1 fire at every threshold
    areas = []
    for block in np.array_split(np.arange(counts.shape[0]), max(1, counts.size // 4_000_000)):
        sorted_counts = counts[block][:, order]  # [resamples, clips], sorted
        pos = np.add.reduceat(sorted_counts * sorted_y, starts, axis=1)  # [resamples, values]
        neg = np.add.reduceat(sorted_counts * ~sorted_y, starts, axis=1)
        pos_below = np.cumsum(pos, axis=1) - pos
        areas.append(((neg * (pos_below + pos / 2)) * crossed).sum(axis=1) / n**2)
    return np.concatenate(areas)


def bootstrap_interval(probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                       resamples: int = 200, level: float = 0.9,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of `au_fa_fr` over clips: (5th, 95th) percentile at 0.9."""
    _check_level(level)
    areas = bootstrap_areas(probs, labels, bootstrap_counts(labels, resamples, seed))
    return _percentiles(areas, level)


def paired_ratio(probs: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor,
                 labels: np.ndarray | torch.Tensor, resamples: int = 400, level: float = 0.9,
                 seed: int = 0) -> tuple[float, float, float]:
    """Quality of `probs` over the quality of `reference` on the same clips, with its paired
    percentile bootstrap interval: (ratio, lo, hi).

    Both are scored on the very same resamples of the clips, so the clips both find hard move
    both areas together and cancel in the ratio: the interval is of the ratio, not of two
    independent qualities.
    """
    _check_level(level)
    counts = bootstrap_counts(labels, resamples, seed)
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample the teacher gets right
        ratios = bootstrap_areas(probs, labels, counts) / bootstrap_areas(reference, labels,
                                                                          counts)
    lo, hi = _percentiles(ratios[np.isfinite(ratios)], level)
    quality, reference_quality = au_fa_fr(probs, labels), au_fa_fr(reference, labels)
    if reference_quality == 0.0:  # a reference without an error on these clips
        return (1.0 if quality == 0.0 else math.inf), lo, hi
    return quality / reference_quality, lo, hi


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be within (0, 1), got {level}")


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    if values.size == 0:
        return math.nan, math.nan
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def suggest_threshold(probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                      max_fa_rate: float) -> float:
    """Lowest threshold whose false-alarm rate (share of negatives with p >= t) <= max_fa_rate.

    The lowest such threshold misses the fewest keywords. It is placed halfway between the
    highest negative allowed to stay below it and the next probability above, so it does not
    sit on a score.
    """
    probs = np.asarray(probs, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if probs.shape != labels.shape:
        raise ValueError(f"{probs.size} probabilities but {labels.size} labels")
    if not 0.0 <= max_fa_rate <= 1.0:
        raise ValueError(f"max_fa_rate must be in [0, 1], got {max_fa_rate}")
    negatives = np.sort(probs[labels == 0])[::-1]  # highest first
    allowed = int(np.floor(max_fa_rate * negatives.size + 1e-9))
    if allowed >= negatives.size:
        return float(probs.min()) if probs.size else 0.0
    below = negatives[allowed]  # highest negative that must not fire
    above = probs[probs > below]
    if above.size == 0:  # nothing scores above that negative: fire on nothing seen
        return float(np.nextafter(below, np.inf))
    return (float(below) + float(above.min())) / 2


@dataclass(frozen=True)
class Cost:
    """What a model costs on a device, from its architecture alone (weights do not matter):
    the one place these are computed, for students, the budgets' reach check and the teacher.
    """

    macs: int  # the network's multiply-adds per clip
    frontend_macs: int  # the front end's, for the frames this network reads
    bytes: int  # stored weights, in the quantization mode's layout
    frontend_bytes: int  # the front end's tables (the same for every model of a front end)
    peak_ram: int  # of one streaming step (`memory.peak_ram_bytes`)
    macs_per_second: float  # network and front end, per second of audio

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@lru_cache(maxsize=4096)
def model_cost(config: CRNNConfig, quant: str, features: FeatureConfig) -> Cost:
    """The `Cost` of a CRNN with `config` stored in mode `quant`, on `features`."""
    # static int8 and qat store the same int8 layout; qat's is the quicker one to make
    layout = "qat" if quant == "static_int8" else quant
    macs = count_macs(CRNN(config), features.n_mels, features.frames)
    front = frontend_macs(config, features)
    return Cost(macs, front, stored_bytes(quantized_structure(config, layout)),
                frontend_bytes(features), peak_ram_bytes(config, features),
                macs_per_second(macs + front, features))


def count_macs(model: nn.Module, n_mels: int, frames: int) -> int:
    """MACs for one clip, counted by thop on a deep copy of the float model.

    thop counts dynamically quantized layers as zero and leaves buffers behind in what it
    profiles, so it always gets a float copy; quantization does not change MACs.
    """
    from thop import profile

    probe = copy.deepcopy(model).float().eval()
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        macs, _ = profile(probe, inputs=(torch.zeros(1, n_mels, frames),), verbose=False)
    return int(macs)


def frontend_frame_macs(features: FeatureConfig) -> int:
    """Multiply-adds of one log-mel frame: the window, a real FFT (n log2 n for n = n_fft),
    the power of each bin, the dense mel matrix (bins x n_mels) and the log of each band."""
    bins = features.n_fft // 2 + 1
    fft = round(features.n_fft * math.log2(features.n_fft))
    return features.win_length + fft + 2 * bins + bins * features.n_mels + features.n_mels


def frontend_macs(config: CRNNConfig, features: FeatureConfig) -> int:
    """Front-end multiply-adds per clip for a model: the frames it reads x one frame's cost."""
    read = StreamGeometry.of(config, features).frames_read(features.frames)
    return read * frontend_frame_macs(features)


def macs_per_second(macs: float, features: FeatureConfig) -> float:
    """Multiply-adds per second of audio, of `macs` per clip."""
    return macs * features.sample_rate / features.clip_samples


def frontend_bytes(features: FeatureConfig) -> int:
    """Bytes the front end stores: its window and dense mel matrix, float32 (the FFT needs no
    table; the ONNX export computes its DFT basis when the session loads)."""
    return 4 * (features.win_length + (features.n_fft // 2 + 1) * features.n_mels)


def latency_ms(model: nn.Module, example: torch.Tensor, repeats: int = 50,
               warmup: int = 5) -> float:
    """Median wall time (ms) of one forward pass on `example`, batch as given, on this CPU."""
    model.eval()
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(example)
        for _ in range(repeats):
            start = time.perf_counter()
            model(example)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


@torch.inference_mode()
def predict(model: nn.Module, features: torch.Tensor, batch: int = 1024) -> np.ndarray:
    """Keyword probabilities for features [clips, n_mels, frames] (float16 or float32)."""
    model.eval()
    out = []
    for start in range(0, features.shape[0], batch):
        logits = model(features[start:start + batch].float())
        out.append(torch.softmax(logits, dim=-1)[:, 1])
    return torch.cat(out).numpy()


@torch.inference_mode()
def predict_deployed(model: nn.Module, features: torch.Tensor) -> np.ndarray:
    """Keyword probabilities for features [clips, n_mels, frames] as the exported stream
    computes them (`CRNN.stepwise`: one clip and one RNN step per call).

    That is the deployed model's number; a batched call differs for dynamic int8 layers
    (`quantize.batch_dependent`). Models without such layers give the same numbers batched, to
    float rounding, so they run batched; the others run scripted, as the export does.
    """
    model.eval()
    if not batch_dependent(model):
        return predict(model, features)
    scripted = torch.jit.script(model)
    logits = scripted.stepwise(features.float())
    return torch.softmax(logits, dim=-1)[:, 1].numpy()


def score_probs(probs: np.ndarray, labels: np.ndarray | torch.Tensor,
                max_fa_rate: float = THRESHOLD_FA_RATE) -> tuple[float, float]:
    """FA/FR area and the suggested detection threshold of predicted probabilities."""
    labels = np.asarray(labels)
    return au_fa_fr(probs, labels), suggest_threshold(probs, labels, max_fa_rate)


def split_quality(model: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """FA/FR area of `model` on one split."""
    return au_fa_fr(predict(model, features), labels.numpy())


def measure_model(model: nn.Module, float_model: nn.Module, features: FeatureSet) -> dict[str, Any]:
    """Quality on validation (with its bootstrap 90% interval), the detection threshold,
    parameters and latency of one model; quality as the exported stream computes it. Its cost
    is `model_cost`'s. The test split is left alone: it judges the answer (`answer_measures`).
    """
    example = features.validation[:1].float()
    probs = predict_deployed(model, features.validation)
    labels = features.validation_labels.numpy()
    quality, threshold = score_probs(probs, labels)
    quality_lo, quality_hi = bootstrap_interval(probs, labels)
    return {
        "val_quality": quality,
        "val_quality_lo": quality_lo,
        "val_quality_hi": quality_hi,
        "threshold": threshold,
        "params": count_parameters(float_model),
        "latency_ms": latency_ms(model, example),
    }


def quality_by_group(probs: np.ndarray, labels: np.ndarray,
                     groups: np.ndarray | None) -> dict[str, float]:
    """FA/FR area per group of clips (a synthesized split's speech engines); {} without
    groups, NaN for a group without both classes."""
    if groups is None:
        return {}
    labels = np.asarray(labels)
    out = {}
    for group in sorted(set(groups.tolist())):
        mine = groups == group
        y = labels[mine]
        out[str(group)] = (au_fa_fr(probs[mine], y) if 0 < y.sum() < y.size
                           else float("nan"))
    return out


def answer_measures(model: nn.Module, features: FeatureSet,
                    teacher_probs: np.ndarray) -> dict[str, Any]:
    """The answer for one model: its quality on the test split (clips no decision saw) and
    its ratio to the teacher's there, with the paired 90% interval of that ratio
    (`paired_ratio`; `teacher_probs` are the teacher's on the same clips); and its quality
    per speech engine of the split when the features know them (`test_engines`)."""
    labels = features.test_labels.numpy()
    probs = predict_deployed(model, features.test)
    ratio, lo, hi = paired_ratio(probs, teacher_probs, labels)
    return {"test_quality": au_fa_fr(probs, labels), "teacher_ratio": ratio,
            "teacher_ratio_lo": lo, "teacher_ratio_hi": hi,
            "test_quality_by_engine": quality_by_group(probs, labels, features.test_engines)}


def teacher_answer(teacher_probs: np.ndarray, labels: np.ndarray,
                   engines: np.ndarray | None = None) -> dict[str, Any]:
    """The teacher's quality on the test split with its bootstrap 90% interval, the split's
    size (what the answer's resolution rests on), and its quality per speech engine."""
    lo, hi = bootstrap_interval(teacher_probs, labels, resamples=400)
    return {"test_quality": au_fa_fr(teacher_probs, labels), "test_quality_lo": lo,
            "test_quality_hi": hi, "test_clips": int(labels.size),
            "test_keyword_clips": int(np.asarray(labels).sum()),
            "test_quality_by_engine": quality_by_group(teacher_probs, labels, engines)}


def measure_teacher(model: nn.Module, features: FeatureSet) -> dict[str, Any]:
    """`measure_model` of a teacher, its cost (`model_cost`), and its answer on the test split
    (`teacher_answer`)."""
    metrics = measure_model(model, model, features)
    metrics.update(model_cost(model.config, "none", features.config).to_dict())
    probs = predict_deployed(model, features.test)
    metrics.update(teacher_answer(probs, features.test_labels.numpy(),
                                  features.test_engines))
    return metrics
