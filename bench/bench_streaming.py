"""Per-hop latency of the scripted streaming model versus re-running the whole 1 s window.

Usage: python bench/bench_streaming.py [--hops 1000] [--repeats 200] [--threads 1]

For the teacher config (CRNNConfig defaults) and a small student, in float, dynamic int8 and
static int8 (random weights: latency does not depend on them), batch 1. "stream" feeds one
10 ms hop (160 samples) per call; "window" runs the scripted whole-clip model (log-mel front
end + the model's batched forward) on the last 1 s each hop, which is what a non-streaming
model must do to answer every 10 ms. RTF = processing time / audio time.
"rnn hop" is the mean over the hops that completed an RNN step (every stride_time hops); the
other hops only compute one log-mel frame.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from kws_search.data.front_end import FeatureConfig, LogMel
from kws_search.deploy.torchscript import StreamingKWS
from kws_search.errors import run_script
from kws_search.models import CRNN, CRNNConfig, count_parameters
from kws_search.quantize import quantize, stored_bytes

MODELS = {
    "teacher": CRNNConfig(),
    "student": CRNNConfig(cnn_channels=3, kernel_freq=7, kernel_time=20, stride_freq=6,
                          stride_time=10, hidden=12),
}
MODES = ("none", "int8", "static_int8")


def build(config: CRNNConfig, mode: str, features: FeatureConfig,
          ) -> tuple[torch.jit.ScriptModule, torch.jit.ScriptModule, int]:
    """Scripted streaming module, scripted whole-clip model [1, samples] -> logits, and stored
    weight bytes, for a random model in `mode`."""
    torch.manual_seed(0)
    calibration = torch.randn(16, config.n_mels, features.frames) * 3 - 5  # log-mel-like
    model = quantize(CRNN(config).eval(), mode, calibration)
    module = StreamingKWS(model, config, features, keyword="sheila", quant=mode)
    whole = torch.nn.Sequential(LogMel(features), model).eval()
    return torch.jit.script(module), torch.jit.script(whole), stored_bytes(model)


def time_stream(module: torch.jit.ScriptModule, audio: torch.Tensor, hop: int,
                warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """Seconds per forward(one hop) after `warmup` hops [hops], and which hops ran the RNN."""
    module.reset()
    times, stepped = [], []
    with torch.inference_mode():
        for k, start in enumerate(range(0, audio.shape[0] - hop + 1, hop)):
            chunk = audio[start:start + hop]
            steps = module.steps_done
            t0 = time.perf_counter()
            module(chunk)
            if k >= warmup:
                times.append(time.perf_counter() - t0)
                stepped.append(module.steps_done > steps)
    return np.array(times), np.array(stepped)


def time_window(whole: torch.jit.ScriptModule, window: torch.Tensor, repeats: int) -> np.ndarray:
    """Seconds per whole-clip run on a window [samples] -> [repeats]."""
    times = []
    batch = window.unsqueeze(0)  # [1, samples]
    with torch.inference_mode():
        for k in range(repeats + 10):
            t0 = time.perf_counter()
            whole(batch)
            if k >= 10:
                times.append(time.perf_counter() - t0)
    return np.array(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hops", type=int, default=1000, help="timed streaming hops")
    parser.add_argument("--repeats", type=int, default=200, help="timed whole-window runs")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    features = FeatureConfig()
    hop, sr = features.hop_length, features.sample_rate
    hop_s = hop / sr
    warmup = 100
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn((args.hops + warmup) * hop, generator=generator)
    window = audio[:sr]  # 1 s
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch 1, hop {hop} samples "
          f"({hop_s * 1e3:.0f} ms); times in ms per hop; RTF = time / {hop_s * 1e3:.0f} ms")
    header = (f"{'model':8} {'quant':12} {'params':>7} {'bytes':>7} {'stream mean':>11} "
              f"{'p50':>6} {'p99':>6} {'rnn hop':>7} {'stream RTF':>10} {'window':>7} "
              f"{'window RTF':>10} {'speed-up':>8}")
    print(header)
    print("-" * len(header))
    for name, config in MODELS.items():
        for mode in MODES:
            module, whole_model, size = build(config, mode, features)
            stream, stepped = time_stream(module, audio, hop, warmup)
            stream = stream * 1e3  # ms
            whole = time_window(whole_model, window, args.repeats) * 1e3
            print(f"{name:8} {mode:12} {count_parameters(CRNN(config)):>7} {size:>7} "
                  f"{stream.mean():>11.3f} {np.median(stream):>6.3f} "
                  f"{np.percentile(stream, 99):>6.3f} {stream[stepped].mean():>7.3f} "
                  f"{stream.mean() / (hop_s * 1e3):>10.4f} "
                  f"{whole.mean():>7.3f} {whole.mean() / (hop_s * 1e3):>10.4f} "
                  f"{whole.mean() / stream.mean():>8.1f}")
    return 0


if __name__ == "__main__":
    run_script(main)
