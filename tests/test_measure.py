"""FA/FR area against the seminar's O(N^2) definition; MACs and latency helpers."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from kws_search.measure import (
    au_fa_fr,
    bootstrap_counts,
    bootstrap_interval,
    count_macs,
    latency_ms,
    paired_ratio,
)
from kws_search.models import CRNN, CRNNConfig


def reference_au_fa_fr(probs: np.ndarray, labels: np.ndarray) -> float:
    """The seminar's loop: every sorted probability (plus 0 and 1) as a threshold."""
    n = len(labels)
    thresholds = np.concatenate(([0.0], np.sort(probs), [1.0]))
    fas, frs = [], []
    for t in thresholds:
        fas.append(np.sum((probs >= t) & (labels == 0)) / n)
        frs.append(np.sum((probs < t) & (labels == 1)) / n)
    return float(-np.trapezoid(frs, x=fas))


@pytest.mark.parametrize("seed", range(5))
def test_matches_reference_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    labels = rng.random(n) < rng.uniform(0.05, 0.6)
    probs = np.clip(rng.normal(labels * 0.4 + 0.3, 0.25), 0, 1)
    assert au_fa_fr(probs, labels) == pytest.approx(reference_au_fa_fr(probs, labels), abs=1e-12)


@pytest.mark.parametrize("case", ["all_positive", "all_negative", "ties", "binary_probs"])
def test_matches_reference_on_edge_cases(case):
    rng = np.random.default_rng(1)
    n = 200
    labels = {"all_positive": np.ones(n, bool), "all_negative": np.zeros(n, bool)}.get(
        case, rng.random(n) < 0.3)
    probs = rng.random(n)
    if case == "ties":
        probs = np.round(probs * 4) / 4  # five distinct values, many ties
    if case == "binary_probs":
        probs = (rng.random(n) < 0.5).astype(float)  # includes exact 0 and 1
    assert au_fa_fr(probs, labels) == pytest.approx(reference_au_fa_fr(probs, labels), abs=1e-12)


def test_perfect_and_inverted_classifiers():
    labels = np.array([0, 0, 0, 1, 1])
    assert au_fa_fr(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), labels) == 0.0
    worse = au_fa_fr(np.array([0.9, 0.8, 0.7, 0.2, 0.1]), labels)
    assert worse > 0.1


def test_accepts_tensors_and_rejects_mismatch():
    probs, labels = torch.rand(50), torch.randint(0, 2, (50,))
    assert au_fa_fr(probs, labels) == pytest.approx(
        reference_au_fa_fr(probs.numpy(), labels.numpy()), abs=1e-12)
    with pytest.raises(ValueError, match="differ in length"):
        au_fa_fr(np.zeros(3), np.zeros(4))


def test_macs_of_the_teacher_and_a_small_student():
    teacher = count_macs(CRNN(CRNNConfig()), 40, 101)
    student = count_macs(CRNN(CRNNConfig(cnn_channels=3, kernel_freq=7, stride_freq=6,
                                         stride_time=10, hidden=12)), 40, 101)
    assert teacher > 10 * student > 0
    # counting works on a copy: the profiled model gets no thop buffers
    model = CRNN(CRNNConfig(hidden=8))
    count_macs(model, 40, 101)
    assert not any("total_ops" in name for name, _ in model.named_buffers())


def test_latency_is_the_median_of_timed_calls_after_a_warm_up():
    class Slow(torch.nn.Module):
        """Sleeps 2 ms on every call but the first (a cold start the warm-up absorbs)."""

        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            time.sleep(0.5 if self.calls == 1 else 0.002)
            return x

    model = Slow()
    ms = latency_ms(model, torch.zeros(1, 40, 101), repeats=5, warmup=1)
    assert model.calls == 6 and not model.training
    assert 2.0 <= ms < 500  # the cold call is not timed, nor does one slow call set the median


def noisy_scores(n: int, seed: int = 0, share: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Labels and overlapping probabilities of a mediocre model on n clips."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < share
    return np.clip(rng.normal(labels * 0.4 + 0.3, 0.25), 0, 1), labels


@pytest.mark.parametrize("ties", [False, True])
def test_bootstrap_scores_each_resample_as_au_fa_fr_does(ties):
    probs, labels = noisy_scores(300, seed=3)
    if ties:
        probs = np.round(probs * 4) / 4  # many ties, exact 0 and 1 included
    counts = bootstrap_counts(labels, resamples=40, seed=5)
    assert (counts.sum(axis=1) == labels.size).all()
    assert (counts[:, labels].sum(axis=1) == labels.sum()).all()  # stratified: class counts kept
    slow = [au_fa_fr(np.repeat(probs, c), np.repeat(labels, c)) for c in counts]
    assert bootstrap_interval(probs, labels, resamples=40, seed=5) == pytest.approx(
        tuple(np.percentile(slow, [5, 95])), abs=1e-12)


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_clips():
    widths = []
    for n in (300, 3000):
        probs, labels = noisy_scores(n, seed=1)
        lo, hi = bootstrap_interval(probs, labels)
        assert lo <= au_fa_fr(probs, labels) <= hi
        widths.append(hi - lo)
    assert 0 < widths[1] < widths[0] / 2  # about 1/sqrt(10) as wide


def test_bootstrap_interval_is_seeded_and_paired():
    probs, labels = noisy_scores(500, seed=2)
    first = bootstrap_interval(probs, labels, seed=7)
    assert bootstrap_interval(probs, labels, seed=7) == first
    assert bootstrap_interval(probs, labels, seed=8) != first
    # Same split, another model: the same clips are drawn, so an order-preserving change of the
    # scores (same area on every resample) gives exactly the same interval.
    assert bootstrap_interval(probs ** 3, labels, seed=7) == first
    assert (bootstrap_counts(labels, seed=7) == bootstrap_counts(labels.copy(), seed=7)).all()


def test_paired_ratio_of_a_student_to_the_teacher_on_the_same_clips():
    """The answer's confidence: the ratio's interval is of the pair, so the clips both models
    find hard cancel; it holds the ratio, narrows with clips, and one model against itself
    (or an order-preserving change of it) is exactly 1 with no width."""
    probs, labels = noisy_scores(4000, seed=4)
    assert paired_ratio(probs, probs, labels) == (1.0, 1.0, 1.0)
    perfect = labels.astype(float)  # a teacher with no error: a ratio, not a ZeroDivisionError
    assert paired_ratio(probs, perfect, labels)[0] == math.inf
    assert paired_ratio(perfect, perfect, labels)[0] == 1.0
    assert paired_ratio(probs ** 2, probs, labels) == (1.0, 1.0, 1.0)
    rng = np.random.default_rng(9)
    student = np.clip(probs + rng.normal(0, 0.05, probs.size), 0, 1)  # the same hard clips
    ratio, lo, hi = paired_ratio(student, probs, labels)
    assert ratio == pytest.approx(au_fa_fr(student, labels) / au_fa_fr(probs, labels))
    assert lo < ratio < hi
    # resampled apart, the two areas' noise adds up: the paired interval is far narrower
    a = bootstrap_interval(student, labels, resamples=400, seed=1)
    b = bootstrap_interval(probs, labels, resamples=400, seed=2)
    assert hi - lo < (a[1] / b[0] - a[0] / b[1]) / 2
    few = paired_ratio(student[:400], probs[:400], labels[:400])
    assert few[2] - few[1] > hi - lo  # fewer clips, wider
    assert paired_ratio(student, probs, labels, seed=3) != (ratio, lo, hi)  # seeded


def test_bootstrap_interval_rejects_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap_interval(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(np.zeros(3), np.zeros(3), level=1.5)


def test_quality_by_group_scores_each_engine_on_its_own_clips() -> None:
    from kws_search.measure import au_fa_fr, quality_by_group

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    probs = np.clip(labels * 0.6 + rng.normal(0.2, 0.2, 400), 0, 1)
    groups = np.array(["espeak", "pico"] * 200)
    probs[groups == "pico"] = rng.uniform(size=200)  # pico's clips: a guess
    by = quality_by_group(probs, labels, groups)
    assert set(by) == {"espeak", "pico"}
    assert by["espeak"] == au_fa_fr(probs[::2], labels[::2]) < by["pico"]
    assert quality_by_group(probs, labels, None) == {}
    only_keyword = quality_by_group(probs[:2], np.array([1, 1]), np.array(["x", "x"]))
    assert np.isnan(only_keyword["x"])


def test_a_model_s_cost_in_every_quantization_mode_is_its_own_layout_s():
    """`model_cost` is the one place MACs, bytes, peak RAM and MACs per second are computed:
    bytes are those of the mode's own stored layout (static int8 read off the QAT layout,
    which stores the same int8 weights), MACs are the float network's."""
    from kws_search.data.front_end import FeatureConfig
    from kws_search.measure import frontend_macs, macs_per_second, model_cost
    from kws_search.memory import peak_ram_bytes
    from kws_search.quantize import QUANT_MODES, quantized_structure, stored_bytes

    config, features = CRNNConfig(cnn_channels=3, hidden=12), FeatureConfig()
    macs = count_macs(CRNN(config), features.n_mels, features.frames)
    sizes = {}
    for mode in QUANT_MODES:
        cost = model_cost(config, mode, features)
        assert cost.bytes == stored_bytes(quantized_structure(config, mode)), mode
        assert (cost.macs, cost.frontend_macs) == (macs, frontend_macs(config, features))
        assert cost.peak_ram == peak_ram_bytes(config, features)
        assert cost.macs_per_second == macs_per_second(macs + cost.frontend_macs, features)
        sizes[mode] = cost.bytes
    assert sizes["none"] > sizes["float16"] > sizes["int8"] >= sizes["static_int8"]
