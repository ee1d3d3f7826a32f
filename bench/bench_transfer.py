"""What each augmentation lever buys on voices nobody trained on (the Festival folder).

    python bench/bench_transfer.py --data data/synth --cross data/festival
Trains the same teacher-sized CRNN once per lever setting (noise and shift only; each lever
alone on top; all of them) for a short fixed recipe, and prints validation, test and cross-engine
quality, the cross / test ratio of quality divided by p(1-p) (p the keyword share, so folders
with other shares compare), and keywords detected / false alarms on the cross folder at the
threshold suggested on validation. The cross folder only scores: nothing is chosen on it
inside the project; this benchmark is how its default levers were picked.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from kws_search.evaluate import eval_features, load_eval_set, summarize
from kws_search.features import FeatureConfig, prepare_features
from kws_search.measure import au_fa_fr, predict, suggest_threshold
from kws_search.models import CRNN, CRNNConfig
from kws_search.train import TrainConfig, train

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synth"))
    parser.add_argument("--cross", type=Path, default=Path("data/festival"))
    parser.add_argument("--cache", default=".cache")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--variants", type=int, default=4, help="train copies per clip")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--levers", nargs="*", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.levers:
        config = replace(DEFAULTS, train_variants=args.variants, **LEVERS[name])
        start = time.perf_counter()
        features = prepare_features(args.data, "sheila", config, args.cache, progress=False)
        feature_s = time.perf_counter() - start
        torch.manual_seed(0)
        model = CRNN(CRNNConfig(hidden=args.hidden))
        start = time.perf_counter()
        train(model, features, TrainConfig(epochs=args.epochs, lr=2e-3))
        train_s = time.perf_counter() - start
        val_x, val_y = features.split("validation")
        val_p = predict(model, val_x)
        threshold = suggest_threshold(val_p, val_y.numpy(), 0.005)
        test_x, test_y = features.split("test")
        test_q = au_fa_fr(predict(model, test_x), test_y.numpy())
        cross = load_eval_set(args.cross, "sheila", config)
        result = summarize(predict(model, eval_features(cross, config)), cross, threshold)
        row = {"lever": name, "val": au_fa_fr(val_p, val_y.numpy()), "test": test_q,
               "cross": result["quality"],
               "ratio": result["quality_norm"] / norm(test_q, test_y),
               "detected": 1 - result["fr"], "fa": result["fa"],
               "features_s": feature_s, "train_s": train_s}
        rows.append(row)
        print(f"{name:18s} val {row['val']:.3e} test {row['test']:.3e} cross {row['cross']:.3e} "
              f"cross/test (norm) {row['ratio']:.1f}x  detected {100 * row['detected']:.1f}% "
              f"FA {100 * row['fa']:.2f}%  ({feature_s:.0f} s features, {train_s:.0f} s train)",
              flush=True)
    best = min(rows, key=lambda r: r["ratio"])
    print(f"best cross/test ratio: {best['ratio']:.1f}x ({best['lever']})")


if __name__ == "__main__":
    main()
