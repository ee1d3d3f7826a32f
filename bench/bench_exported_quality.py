"""Test quality of exported streaming models, offline and streamed, on the noisy test split.

    python bench/bench_exported_quality.py checkpoints/teacher-synth-stream.pt \
        checkpoints/kws-trial169-stream.pt --data data/synth
The test clips get the same fixed, seeded noise as the feature cache's test split; each clip
goes through `offline(clip)` and through `forward` in 100 ms chunks from a reset state.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from kws_search.data.datasets import load_clips, load_noise, scan_dataset
from kws_search.data.features import mix_noise
from kws_search.data.front_end import FeatureConfig
from kws_search.deploy.torchscript import load_exported
from kws_search.errors import run_script
from kws_search.measure import au_fa_fr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", default="data/synth")
    parser.add_argument("--keyword", default="sheila")
    parser.add_argument("--chunk", type=int, default=1600, help="samples per streamed chunk")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = FeatureConfig()
    index = scan_dataset(args.data, args.keyword)
    audio, labels, _ = load_clips(index, "test", config.sample_rate, config.clip_samples)
    rng = np.random.default_rng([config.seed, 1001])  # the test split's fixed noise
    noisy = torch.from_numpy(mix_noise(audio, load_noise(index, config.sample_rate), rng,
                                       config, shift=False))
    for path in args.models:
        module, _ = load_exported(path)
        start = time.perf_counter()
        offline, streamed = [], []
        with torch.inference_mode():
            for clip in noisy:
                offline.append(float(module.offline(clip)))
                module.reset()
                for s in range(0, clip.shape[0], args.chunk):
                    p = module(clip[s:s + args.chunk])
                streamed.append(float(p))
        gap = np.abs(np.array(offline) - np.array(streamed)).max()
        print(f"{path}: test offline {au_fa_fr(np.array(offline), labels):.3e}  streamed "
              f"{au_fa_fr(np.array(streamed), labels):.3e}  max |diff| {gap:.1e}  "
              f"({len(labels)} clips, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    run_script(main)
