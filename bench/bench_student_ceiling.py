"""How close can students get to the teacher's bar with long training? (one run per student)

    python bench/bench_student_ceiling.py                         # default data and teacher
    python bench/bench_student_ceiling.py --epochs 12 60 --students teacher-shape seed-1

Trains fixed students the way a trial does (`train` with the teacher's cached outputs,
samples_per_epoch 10240, batch 256, lr 5e-3 cosine, KD 0.5 at T 6, no SpecAugment), for each
`--epochs`, and prints their validation and test quality against the study's bar (1.1 x the
teacher's validation quality). When even long training leaves a student above the bar, no
search of that size can reach a feasible student there. The last line is
`best student: <quality> = <x> x the bar (<student>, <epochs> epochs)`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from kws_search.context import build_context
from kws_search.distill import DistillConfig
from kws_search.errors import run_script
from kws_search.models import CRNN, CRNNConfig
from kws_search.objective import QUALITY_MARGIN
from kws_search.options import teacher_path
from kws_search.quantize import prepare_for_training, quantize
from kws_search.study import RunSettings
from kws_search.teacher import measure_model
from kws_search.train import TrainConfig, train

STUDENTS = {  # name -> (architecture, quantization); distilled unless "no KD" in the name
    "teacher-shape (no KD)": (CRNNConfig(), "none"),
    "teacher-shape": (CRNNConfig(), "none"),
    "half (qat)": (CRNNConfig(cnn_channels=6, hidden=31, layers=1), "qat"),
    "seed-1 (int8)": (CRNNConfig(cnn_channels=3, kernel_freq=7, stride_freq=6,
                                 stride_time=10, hidden=12, layers=2), "int8"),
    "small (qat)": (CRNNConfig(cnn_channels=3, kernel_freq=7, stride_freq=6, stride_time=10,
                               hidden=16, layers=1), "qat"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synth"))
    parser.add_argument("--teacher", type=Path, default=None,
                        help="default: the one `run` uses for --data")
    parser.add_argument("--students", nargs="+", default=list(STUDENTS), choices=list(STUDENTS))
    parser.add_argument("--epochs", type=int, nargs="+", default=[12, 48])
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    teacher_file = args.teacher or teacher_path("checkpoints", args.data)
    settings = RunSettings(data=args.data, keyword="sheila", teacher=teacher_file,
                           study="ceiling", storage="sqlite:///:memory:")
    context = build_context(settings, progress=False)
    teacher = context.teacher_metrics
    bar = QUALITY_MARGIN * teacher["val_quality"]
    print(f"teacher validation {teacher['val_quality']:.3e}, test {teacher['test_quality']:.3e};"
          f" bar {bar:.3e}")
    print(f"{'student':>22} {'epochs':>6} {'speed-up':>8} {'compr.':>7} {'val':>10} "
          f"{'x bar':>6} {'test':>10} {'best ep':>7} {'s':>5}")
    best = (float("inf"), "", 0)
    for name in args.students:
        config, quant = STUDENTS[name]
        distill = DistillConfig() if "no KD" in name else DistillConfig(kd_weight=0.5,
                                                                         temperature=6.0)
        for epochs in args.epochs:
            torch.manual_seed(0)
            student = prepare_for_training(CRNN(config), quant)
            start = time.perf_counter()
            result = train(student, context.features,
                           TrainConfig(epochs=epochs, lr=5e-3, batch_size=256,
                                       spec_augment=False, samples_per_epoch=10240),
                           distill, context.teacher_outputs)
            seconds = time.perf_counter() - start
            measures = measure_model(quantize(student, quant, context.calibration), CRNN(config),
                                     context.features)
            q = measures["val_quality"]
            print(f"{name:>22} {epochs:>6} {teacher['macs'] / measures['macs']:>8.1f} "
                  f"{teacher['bytes'] / measures['bytes']:>7.1f} {q:>10.3e} {q / bar:>6.2f} "
                  f"{measures['test_quality']:>10.3e} {result.best_epoch:>7} {seconds:>5.0f}",
                  flush=True)
            best = min(best, (q, name, epochs))
    print(f"best student: {best[0]:.3e} = {best[0] / bar:.2f} x the bar ({best[1]}, "
          f"{best[2]} epochs)")


if __name__ == "__main__":
    run_script(main)
