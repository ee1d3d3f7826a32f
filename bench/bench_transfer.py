"""What each augmentation lever buys on voices nobody trained on (the Festival folder).

    python bench/bench_transfer.py --data data/synth --cross data/festival --seeds 3
    python bench/bench_transfer.py --recipe converged --levers "all (default)" --members 1 4
Trains the same teacher-sized CRNN per lever setting (noise and shift only; each lever alone on
top; all of them) and training seed, and prints validation, test and cross-engine quality, the
cross / test ratio of quality divided by p(1-p) (p the keyword share, so folders with other
shares compare), and keywords detected / false alarms on the cross folder at the threshold
suggested on validation: one line per run, then the median over seeds per lever with the
spread of cross quality. The training seed alone moves cross quality about 2x, so a lever is
only worth keeping when its median beats the others by more than their spread. The cross
folder only scores: nothing is chosen on it inside the project; this benchmark is how its
default levers were picked.

`--members 1 4` also trains, per seed s, a model distilled from the mean of the copies of
seeds s .. s+3 (the default teacher's ensemble distillation); copies are trained once and shared,
and the members-1 rows are those copies themselves.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from kws_search.data.features import prepare_features
from kws_search.data.front_end import FeatureConfig
from kws_search.errors import run_script
from kws_search.evaluate import eval_features, load_eval_set, summarize
from kws_search.measure import THRESHOLD_FA_RATE, au_fa_fr, predict, suggest_threshold
from kws_search.models import CRNN, CRNNConfig
from kws_search.teacher import CONVERGED, ensemble_target, fit
from kws_search.train import TrainConfig

OFF = dict(speed=0.0, reverb_prob=0.0, vtlp=0.0, colour_prob=0.0)
DEFAULTS = FeatureConfig()
LEVERS = {
    "noise+shift only": OFF,
    "+ speed": {**OFF, "speed": DEFAULTS.speed},
    "+ reverb": {**OFF, "reverb_prob": DEFAULTS.reverb_prob},
    "+ vtlp": {**OFF, "vtlp": DEFAULTS.vtlp},
    "+ colour": {**OFF, "colour_prob": DEFAULTS.colour_prob},
    "all but colour": {"colour_prob": 0.0},
    "all (default)": {},
}


def norm(quality: float, labels: torch.Tensor) -> float:
    p = float(labels.float().mean())
    return quality / (p * (1 - p))


def trained(features, recipe: TrainConfig, hidden: int,
            members: list[CRNN] | None = None) -> tuple[CRNN, float]:
    """One teacher-sized model trained with `recipe` (distilled from the mean of `members`, as
    the default teacher is, when given) and its training seconds."""
    target = ensemble_target(members, features.train) if members else None
    start = time.perf_counter()
    model, _ = fit(features, CRNNConfig(hidden=hidden), recipe, target, progress=False)
    return model, time.perf_counter() - start


def measure(model: CRNN, features, cross, cross_x: torch.Tensor, label: str, seed: int) -> dict:
    """Validation, test and cross-folder numbers of one trained model."""
    val_x, val_y = features.split("validation")
    val_p = predict(model, val_x)
    threshold = suggest_threshold(val_p, val_y.numpy(), THRESHOLD_FA_RATE)
    test_x, test_y = features.split("test")
    test_q = au_fa_fr(predict(model, test_x), test_y.numpy())
    result = summarize(predict(model, cross_x), cross, threshold)
    return {"lever": label, "seed": seed, "val": au_fa_fr(val_p, val_y.numpy()),
            "test": test_q, "cross": result["quality"],
            "ratio": result["quality_norm"] / norm(test_q, test_y),
            "detected": 1 - result["fr"], "fa": result["fa"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synth"))
    parser.add_argument("--cross", type=Path, default=Path("data/festival"))
    parser.add_argument("--cache", default=".cache")
    parser.add_argument("--recipe", choices=("short", "converged"), default="short",
                        help="short: --epochs at lr 2e-3; converged: the default teacher's recipe")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per lever")
    parser.add_argument("--variants", type=int, default=4, help="train copies per clip")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--levers", nargs="*", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--members", type=int, nargs="+", default=[1],
                        help="1: one model per seed; N > 1: distilled from N copies' mean")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = CONVERGED if args.recipe == "converged" else TrainConfig(epochs=args.epochs, lr=2e-3)
    rows, labels = [], []
    for name in args.levers:
        config = replace(DEFAULTS, train_variants=args.variants, **LEVERS[name])
        start = time.perf_counter()
        features = prepare_features(args.data, "sheila", config, args.cache, progress=False)
        feature_s = time.perf_counter() - start
        cross = load_eval_set(args.cross, "sheila", config)
        cross_x = eval_features(cross, config)
        copies: dict[int, tuple[CRNN, float]] = {}  # seed -> (model, train seconds)
        for members in args.members:
            label = name if members == 1 else f"{name} x{members}"
            for seed in range(args.seeds):
                for s in range(seed, seed + members):
                    if s not in copies:
                        copies[s] = trained(features, replace(recipe, seed=s), args.hidden)
                model, train_s = copies[seed]
                if members > 1:
                    model, train_s = trained(features, replace(recipe, seed=seed), args.hidden,
                                             [copies[s][0] for s in range(seed, seed + members)])
                row = measure(model, features, cross, cross_x, label, seed)
                rows.append(row)
                print(f"{label:18s} seed {seed}  val {row['val']:.3e} test {row['test']:.3e} "
                      f"cross {row['cross']:.3e} cross/test (norm) {row['ratio']:.1f}x  "
                      f"detected {100 * row['detected']:.1f}% FA {100 * row['fa']:.2f}%  "
                      f"({feature_s:.0f} s features, {train_s:.0f} s train)", flush=True)
                feature_s = 0.0
            if label not in labels:
                labels.append(label)
    print(f"\nmedian over {args.seeds} seed(s):")
    medians = []
    for name in labels:
        runs = [r for r in rows if r["lever"] == name]
        med = {k: float(np.median([r[k] for r in runs]))
               for k in ("val", "test", "cross", "ratio", "detected", "fa")}
        medians.append((name, med))
        spread = f"{min(r['cross'] for r in runs):.2e}-{max(r['cross'] for r in runs):.2e}"
        print(f"{name:18s} val {med['val']:.3e} test {med['test']:.3e} cross {med['cross']:.3e} "
              f"(seeds {spread}) cross/test (norm) {med['ratio']:.1f}x  "
              f"detected {100 * med['detected']:.1f}% FA {100 * med['fa']:.2f}%")
    best = min(medians, key=lambda m: m[1]["cross"])
    print(f"best median cross quality: {best[1]['cross']:.3e} ({best[0]})")


if __name__ == "__main__":
    run_script(main)
