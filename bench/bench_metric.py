"""Time au_fa_fr on 100,000 predictions against the seminar's O(N^2) loop on 5,000.

    python bench/bench_metric.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from kws_search.errors import run_script
from kws_search.measure import au_fa_fr


def reference(probs: np.ndarray, labels: np.ndarray) -> float:
    """The seminar's loop: one pass over all clips per threshold."""
    n = len(labels)
    fas, frs = [], []
    for t in np.concatenate(([0.0], np.sort(probs), [1.0])):
        fas.append(np.sum((probs >= t) & (labels == 0)) / n)
        frs.append(np.sum((probs < t) & (labels == 1)) / n)
    return float(-np.trapezoid(frs, x=fas))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fast-n", type=int, default=100_000)
    parser.add_argument("--slow-n", type=int, default=5_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    def data(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.random(n) < 0.04
        return np.clip(rng.normal(labels * 0.5 + 0.2, 0.2), 0, 1), labels

    probs, labels = data(args.fast_n)
    start = time.perf_counter()
    for _ in range(10):
        au_fa_fr(probs, labels)
    fast = (time.perf_counter() - start) / 10
    probs5, labels5 = data(args.slow_n)
    start = time.perf_counter()
    ref = reference(probs5, labels5)
    slow = time.perf_counter() - start
    assert abs(ref - au_fa_fr(probs5, labels5)) < 1e-12
    print(f"au_fa_fr, O(N log N), N={args.fast_n}: {fast * 1e3:.1f} ms")
    print(f"reference, O(N^2),    N={args.slow_n}: {slow * 1e3:.1f} ms "
          f"(same value to 1e-12)")
    print(f"reference extrapolated to N={args.fast_n}: "
          f"{slow * (args.fast_n / args.slow_n) ** 2:.0f} s")


if __name__ == "__main__":
    run_script(main)
