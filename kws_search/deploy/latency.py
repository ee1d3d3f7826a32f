"""Measured streaming latency of a deployed model, front end included, in TorchScript or ONNX
Runtime: what `run --speed latency` optimizes and `bench/bench_latency.py` reports.

Per hop: one second of audio streamed in 10 ms hops, total time / hops, in steady state: the
stream goes on from one timed second to the next (warm-up blocks are paid once per stream, not
per second). Hops that complete no RNN step cost only their share of the front end, so this is
the mean a device pays per hop. Per clip: the same second in one call from a fresh state.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from kws_search.checkpoint import save_checkpoint
from kws_search.data.front_end import FeatureConfig
from kws_search.deploy.torchscript import export_checkpoint, load_exported
from kws_search.models import CRNN


def probe_audio(features: FeatureConfig, seed: int = 0) -> np.ndarray:
    """One clip of noise-like audio (latency does not depend on what is said)."""
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(features.clip_samples)).astype(np.float32)


def export_for(checkpoint: Path, runtime: str, folder: Path) -> Path:
    """The checkpoint exported for `runtime` into `folder`."""
    if runtime == "onnxruntime":
        from kws_search.deploy.onnx import export_onnx

        return export_onnx(checkpoint, folder / f"{checkpoint.stem}.onnx")[0]
    return export_checkpoint(checkpoint, folder / f"{checkpoint.stem}-stream.pt")


def runners(path: Path, runtime: str, audio: np.ndarray, hop: int,
            ) -> dict[str, Callable[[], None]]:
    """Zero-argument calls that stream the clip hop by hop, going on with the same stream
    ("hop"), and in one call from a fresh state ("clip")."""
    if runtime == "onnxruntime":
        from kws_search.deploy.onnx_runtime import OnnxStream

        stream = OnnxStream(path)

        def hops() -> None:
            for start in range(0, audio.size, hop):
                stream(audio[start:start + hop])

        def clip() -> None:
            stream.reset()
            stream(audio)
        return {"hop": hops, "clip": clip}
    module, _ = load_exported(path)
    samples = torch.from_numpy(audio)

    def hops_ts() -> None:
        for start in range(0, samples.shape[0], hop):
            module(samples[start:start + hop])
    return {"hop": hops_ts, "clip": lambda: module.offline(samples)}


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def hop_latency_us(calibrated: CRNN, quant: str, features: FeatureConfig, runtime: str,
                   repeats: int = 7) -> float:
    """Median per-hop time (microseconds) of a calibrated model exported for `runtime`, one
    thread, front end included (what `run --speed latency` compares)."""
    torch.set_num_threads(1)
    audio = probe_audio(features)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = save_checkpoint(folder / "model.pt", calibrated, kind="student",
                                     model_config=calibrated.config, feature_config=features,
                                     keyword="keyword", dataset_fingerprint="-", quant=quant)
        run = runners(export_for(checkpoint, runtime, folder), runtime, audio,
                      features.hop_length)["hop"]
        run()  # warm up: TorchScript optimizes on its first calls, the stream fills
        run()
        hops = audio.size // features.hop_length
        return float(np.median([timed(run) for _ in range(repeats)]) / hops * 1e6)
