"""Training throughput: the full data pipeline against the model alone on in-memory tensors.

    python bench/bench_train.py --data data/synth          # teacher, default features
Prints samples/s for (a) train() on the cached features (class-balanced draw, one noisy copy
per clip, SpecAugment) and (b) the same forward/backward/step on one fixed in-memory batch, and
the share of throughput the pipeline costs; then the seconds one search trial spends training
(a hand-tuned student for the default space's 12 epochs, one thread, as a worker runs it).
"""

from __future__ import annotations

import argparse
import time

import torch

from kws_search.data.features import prepare_features
from kws_search.data.front_end import FeatureConfig
from kws_search.errors import run_script
from kws_search.models import CRNN, CRNNConfig
from kws_search.train import TrainConfig, balanced_indices, spec_augment, train

# the second hand-tuned student of the course reports (kws_search.search.queue.HAND_TUNED)
STUDENT = CRNNConfig(cnn_channels=4, kernel_freq=5, kernel_time=20, stride_freq=2,
                     stride_time=8, hidden=16, layers=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="data/synth")
    parser.add_argument("--keyword", default="sheila")
    parser.add_argument("--cache", default=".cache")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8192, help="samples per measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trial-epochs", type=int, default=12,
                        help="epochs of the timed student trial (default space: 12)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    features = prepare_features(args.data, args.keyword, FeatureConfig(), args.cache)
    print(f"features ready in {time.perf_counter() - start:.1f} s "
          f"(train copies {tuple(features.train.shape)})")
    config = TrainConfig(epochs=1, samples_per_epoch=args.samples)
    model = CRNN(CRNNConfig(hidden=args.hidden))
    n_val = features.validation.shape[0]

    # warm-up: the first optimizer step imports torch._dynamo (about a second)
    train(CRNN(CRNNConfig(hidden=args.hidden)), features,
          TrainConfig(epochs=1, samples_per_epoch=config.batch_size))

    # (a) the real loop: gather + augment + step, then one validation pass (timed apart)
    start = time.perf_counter()
    train(model, features, config)
    loop = time.perf_counter() - start
    start = time.perf_counter()
    with torch.inference_mode():
        model(features.validation.float())
    val = time.perf_counter() - start
    pipeline_rate = args.samples / (loop - val)

    # (b) model alone: one fixed float32 batch, no gather, no augmentation
    x = features.train[0, :config.batch_size].float()
    y = features.train_labels[:config.batch_size]
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps = args.samples // config.batch_size
    start = time.perf_counter()
    for _ in range(steps):  # the same step as train(): loss, clip, Adam
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        loss.item()
    alone_rate = steps * config.batch_size / (time.perf_counter() - start)

    # data work alone: what the pipeline adds per batch
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        idx = balanced_indices(features.train_labels, config.batch_size, g)
        var = torch.randint(0, features.train.shape[0], idx.shape, generator=g)
        spec_augment(features.train[var, idx].float(), 15, 35, g)
    data_rate = steps * config.batch_size / (time.perf_counter() - start)
    print(f"model hidden {args.hidden}, batch {config.batch_size}, {args.threads} threads")
    print(f"full pipeline:  {pipeline_rate:8.0f} samples/s  (validation of {n_val} clips, "
          f"{val:.2f} s, excluded)")
    print(f"model alone:    {alone_rate:8.0f} samples/s")
    print(f"data work only: {data_rate:8.0f} samples/s")
    print(f"pipeline cost:  {100 * (1 - pipeline_rate / alone_rate):.1f}% of throughput")

    # one trial's training: the seeds' hand-tuned student on one thread, as a worker runs it
    torch.set_num_threads(1)
    student = CRNN(STUDENT)
    start = time.perf_counter()
    train(student, features, TrainConfig(epochs=args.trial_epochs, lr=3e-3, batch_size=256,
                                         spec_augment=False))
    print(f"seconds per trial: {time.perf_counter() - start:.1f} (hand-tuned student, "
          f"{args.trial_epochs} epochs, 1 thread, {features.train.shape[1]} train clips, "
          f"{n_val} validation clips)")


if __name__ == "__main__":
    run_script(main)
