"""Does the quality axis separate models? The teacher against a small student.

    python bench/bench_quality_gap.py --data data/synth
Trains the seeds' small student (channels 3, kernel (7, 20), stride (6, 10), hidden 12) with
plain cross-entropy, and with dark-knowledge distillation from the saved teacher, and prints
validation and test quality of each next to the teacher's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from kws_search.data.features import prepare_features
from kws_search.data.front_end import FeatureConfig
from kws_search.distill import DistillConfig, teacher_outputs
from kws_search.errors import run_script
from kws_search.measure import split_quality
from kws_search.models import CRNN, CRNNConfig
from kws_search.options import teacher_path
from kws_search.teacher import load_teacher
from kws_search.train import TrainConfig, train

STUDENT = CRNNConfig(cnn_channels=3, kernel_freq=7, kernel_time=20, stride_freq=6,
                     stride_time=10, hidden=12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data/synth"))
    parser.add_argument("--cache", default=".cache")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    features = prepare_features(args.data, "sheila", FeatureConfig(), args.cache)
    teacher, metrics = load_teacher(teacher_path("checkpoints", args.data), features)
    print(f"teacher: val {metrics['val_quality']:.3e}  test {metrics['test_quality']:.3e}")
    outputs = teacher_outputs(teacher, features.train)
    runs = {"cross-entropy": (DistillConfig(), TrainConfig(epochs=args.epochs)),
            "dark KD (0.8, T=4)": (DistillConfig(kd_weight=0.8, temperature=4.0),
                                   TrainConfig(epochs=args.epochs))}
    for name, (distill, config) in runs.items():
        torch.manual_seed(0)
        student = CRNN(STUDENT)
        start = time.perf_counter()
        train(student, features, config, distill, outputs)
        val = split_quality(student, *features.split("validation"))
        test = split_quality(student, *features.split("test"))
        print(f"student, {name:18s}: val {val:.3e} ({val / metrics['val_quality']:.1f}x)  "
              f"test {test:.3e} ({test / metrics['test_quality']:.1f}x)  "
              f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    run_script(main)
