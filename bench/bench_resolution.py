"""What resolves a student's quality against the teacher's: clips, keyword share, pairing.

    python bench/bench_resolution.py --study kws
Scores the study's teacher and finalists once on the test split (the answer split), then draws
subsets of it and prints, per subset, the median half-width of the finalists' 90% interval of
quality / teacher's (as a share of the ratio) and the seconds one int8 student takes to score
it. Subsets: one the size and keyword share of validation (today's test split), more keyword
clips at that many negatives, more negatives at that many keyword clips, and the whole split;
and each with independent (unpaired) resamples of the two models, to show what pairing buys.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from kws_search.checkpoint import load_model
from kws_search.data.features import prepare_features
from kws_search.data.front_end import FeatureConfig
from kws_search.errors import run_script
from kws_search.measure import bootstrap_areas, bootstrap_counts, paired_ratio, predict_deployed
from kws_search.search.fidelity import is_final
from kws_search.search.select import fetch_checkpoint
from kws_search.search.storage import load_study

RESAMPLES = 400


def unpaired_half_width(probs: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> float:
    """Half-width of the ratio's 90% interval when the two models are resampled apart."""
    a = bootstrap_areas(probs, labels, bootstrap_counts(labels, RESAMPLES, seed=1))
    b = bootstrap_areas(reference, labels, bootstrap_counts(labels, RESAMPLES, seed=2))
    lo, hi = np.percentile(a / b, [5, 95])
    return (hi - lo) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="kws")
    parser.add_argument("--storage", default=None, help="default: studies/<study>.db")
    parser.add_argument("--data", type=Path, default=Path("data/synth"))
    parser.add_argument("--cache", default=".cache")
    parser.add_argument("--draws", type=int, default=5, help="random subsets per row")
    args = parser.parse_args()
    storage = args.storage or f"sqlite:///studies/{args.study}.db"
    study = load_study(args.study, storage)
    features = prepare_features(args.data, study.user_attrs["keyword"],
                                FeatureConfig.from_dict(study.user_attrs["features"]), args.cache)
    labels = features.test_labels.numpy()
    teacher, _ = load_model(study.user_attrs["teacher_path"])
    reference = predict_deployed(teacher, features.test)
    finals = [t for t in study.get_trials(deepcopy=False) if is_final(t)
              and t.state.name == "COMPLETE" and "checkpoint_artifact" in t.user_attrs]
    students, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in finals:
            model, _ = load_model(fetch_checkpoint(study, t, Path(tmp) / f"{t.number}.pt"))
            start = time.perf_counter()
            students[t.number] = predict_deployed(model, features.test)
            seconds[t.number] = (time.perf_counter() - start, t.user_attrs.get("quant"))
    per_clip = np.median([s / labels.size for s, q in seconds.values()])
    print(f"test split: {labels.size} clips, {int(labels.sum())} keyword; scoring one finalist "
          f"takes {per_clip * 1e3:.2f} ms a clip (median of {len(seconds)}: "
          + ", ".join(f"trial {n} {q} {s:.1f} s" for n, (s, q) in seconds.items()) + ")")
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    base_pos, base_neg = 336, 4466  # today's validation and test: 4,802 clips, 336 keyword
    rows = [("like validation", base_pos, base_neg)]
    rows += [(f"keyword x{k}", min(pos.size, k * base_pos), base_neg) for k in (4, 16)]
    rows += [(f"negatives x{k}", base_pos, min(neg.size, k * base_neg)) for k in (4,)]
    rows += [("keyword x16, negatives x4", min(pos.size, 16 * base_pos),
              min(neg.size, 4 * base_neg)), ("whole split", pos.size, neg.size)]
    rng = np.random.default_rng(0)
    print(f"{'subset':28s} {'keyword':>8s} {'other':>7s} {'paired +-':>10s} "
          f"{'unpaired +-':>12s} {'score s':>8s}")
    for name, n_pos, n_neg in rows:
        paired, unpaired = [], []
        for _ in range(1 if n_pos == pos.size and n_neg == neg.size else args.draws):
            pick = np.concatenate([rng.choice(pos, n_pos, replace=False),
                                   rng.choice(neg, n_neg, replace=False)])
            for probs in students.values():
                r, lo, hi = paired_ratio(probs[pick], reference[pick], labels[pick], RESAMPLES)
                paired.append((hi - lo) / 2 / r)
                unpaired.append(unpaired_half_width(probs[pick], reference[pick],
                                                    labels[pick]) / r)
        print(f"{name:28s} {n_pos:8d} {n_neg:7d} {np.median(paired):10.1%} "
              f"{np.median(unpaired):12.1%} {per_clip * (n_pos + n_neg):8.1f}")
    print("paired +-: median half-width of the finalists' 90% interval of quality / teacher's, "
          "as a share of the ratio")


if __name__ == "__main__":
    run_script(main)
