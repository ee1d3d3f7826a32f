"""ONNX export with external state: streamed in ONNX Runtime in random chunk sizes, it equals
the TorchScript file and the offline model, for every mode that ONNX holds exactly."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from kws_search.checkpoint import CheckpointError, save_checkpoint
from kws_search.data.front_end import FeatureConfig
from kws_search.deploy.onnx import export_onnx
from kws_search.deploy.onnx_runtime import OnnxStream
from kws_search.deploy.torchscript import export_checkpoint, load_exported
from kws_search.geometry import StreamGeometry
from kws_search.models import CRNN, CRNNConfig

warnings.filterwarnings("ignore")

FEATURES = FeatureConfig()
HOP = FEATURES.hop_length
# a kernel longer than the stride (frames carried between blocks, warm-up blocks) and one
# shorter (frames between windows never computed, leading zeros instead of warm-up)
OVERLAPPING = CRNNConfig(cnn_channels=3, kernel_time=20, stride_time=8, hidden=6, layers=2)
SKIPPING = CRNNConfig(cnn_channels=3, kernel_time=8, stride_time=14, hidden=6, layers=1)
# a student's own front end whose FFT is as long as the hop: frames that do not overlap, no
# tail, time-major frames and conv; with a plain RNN of two layers written out, and 3 classes
OWN = FeatureConfig(n_fft=160, win_length=160, n_mels=16)
OWN_OVERLAPPING = CRNNConfig(n_mels=16, cnn_channels=2, kernel_freq=4, kernel_time=12,
                             stride_freq=3, stride_time=9, rnn="rnn", hidden=5, layers=2,
                             n_classes=3)
OWN_SKIPPING = CRNNConfig(n_mels=16, cnn_channels=2, kernel_freq=7, kernel_time=6, stride_freq=4,
                          stride_time=15, rnn="rnn", hidden=7, layers=1)
EXACT_TOL = 1e-5  # float and float16: the same numbers up to float rounding
FALLBACK_TOL = 5e-3  # weight-only int8 against PyTorch's dynamic int8 (activations quantized)


def audio(seconds: float = 1.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FEATURES.sample_rate)) / FEATURES.sample_rate
    sweep = 0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t)
    return (sweep + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def onnx_steps(path: Path, samples: np.ndarray, seed: int) -> np.ndarray:
    """Probabilities after each RNN step, streaming `samples` in random chunk sizes."""
    rng = np.random.default_rng(seed)
    stream, probs, start = OnnxStream(path), [], 0
    while start < samples.size:
        size = int(rng.integers(1, 2500))
        probs.append(stream(samples[start:start + size]))
        start += size
    return np.concatenate(probs)


def torchscript_steps(path: Path, config: CRNNConfig, samples: np.ndarray,
                      features: FeatureConfig = FEATURES) -> tuple[np.ndarray, float]:
    """The TorchScript file's probability at the hop where each step completes, and its
    offline probability of the whole clip."""
    module, _ = load_exported(path)
    per_hop = module.forward_steps(torch.from_numpy(samples)).numpy()
    frames = features.frames_in(samples.size)
    ends = [(s * config.stride_time + config.kernel_time - 1) * HOP + features.n_fft
            for s in range(config.steps(frames))]  # end of the last frame each step reads
    return per_hop[[-(-end // HOP) - 1 for end in ends]], float(module.offline(
        torch.from_numpy(samples)))


SLOW = pytest.mark.slow  # an ONNX export takes about 3 s: one case stays in the quick loop


@pytest.mark.parametrize("config, mode, features", [
    (OVERLAPPING, "none", FEATURES), pytest.param(SKIPPING, "none", FEATURES, marks=SLOW),
    pytest.param(OVERLAPPING, "float16", FEATURES, marks=SLOW),
    pytest.param(SKIPPING, "int8", FEATURES, marks=SLOW),
    pytest.param(OVERLAPPING, "static_int8", FEATURES, marks=SLOW),
    pytest.param(OWN_OVERLAPPING, "none", OWN, marks=SLOW),
    pytest.param(OWN_SKIPPING, "float16", OWN, marks=SLOW),
    pytest.param(OWN_OVERLAPPING, "int8", OWN, marks=SLOW),
    pytest.param(OWN_SKIPPING, "qat", OWN, marks=SLOW)])
def test_onnx_stream_equals_torchscript_and_offline(tmp_path, config, mode, features,
                                                    student_checkpoint):
    source = student_checkpoint(tmp_path / "student.pt", config, mode, features)
    scripted = export_checkpoint(source, tmp_path / "student-stream.pt")
    path, info = export_onnx(source, tmp_path / "student.onnx")
    samples = audio()
    reference, offline = torchscript_steps(scripted, config, samples, features)
    streamed = onnx_steps(path, samples, seed=0)
    assert streamed.shape == reference.shape and streamed.size >= 5
    # another chunking gives the very same numbers: the state is all in the inputs
    assert np.array_equal(streamed, onnx_steps(path, samples, seed=1))
    tol = EXACT_TOL if mode in ("none", "float16") else FALLBACK_TOL
    gap = float(np.abs(streamed - reference).max())
    print(f"{mode} ({features.n_fft}-point FFT, kernel {config.kernel_time}, stride "
          f"{config.stride_time}, {config.rnn}): streamed ONNX vs "
          f"TorchScript {gap:.2g}, vs offline {abs(streamed[-1] - offline):.2g}")
    assert gap <= tol and abs(streamed[-1] - offline) <= tol
    assert info["quant"] == mode and info["threshold"] == pytest.approx(0.42)
    if mode not in ("none", "float16"):
        assert gap > 0  # the fallback is not PyTorch's int8: the difference is real, and small


@pytest.mark.slow
def test_onnx_file_holds_weights_as_their_mode_stores_them(tmp_path, student_checkpoint):
    stored = {}
    for mode in ("none", "float16", "int8"):
        path, _ = export_onnx(student_checkpoint(tmp_path / f"{mode}.pt", OVERLAPPING, mode),
                              tmp_path / f"{mode}.onnx")
        graph = onnx.load(path).graph
        types = {i.name: i.data_type for i in graph.initializer}
        stored[mode] = types
        # the DFT basis is computed when the session loads, not stored
        assert max(int(np.prod(i.dims)) for i in graph.initializer) < 201 * 402
    f32, f16, i8 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.INT8
    assert stored["none"]["model.rnn.weight_ih_l0"] == f32
    assert stored["float16"]["model.rnn.weight_ih_l0__f16"] == f16
    assert stored["int8"]["model.rnn.weight_ih_l0__q"] == i8
    assert stored["int8"]["model.classifier.weight__q"] == i8


def test_large_attention_energies_stay_finite(tmp_path):
    # the window keeps exp(energy); a model whose energies can pass +-40 gets them clamped
    torch.manual_seed(0)
    model = CRNN(OWN_SKIPPING).eval()
    with torch.no_grad():
        model.attention.energy[-1].weight.mul_(5000)
    path = save_checkpoint(tmp_path / "loud.pt", model, kind="student",
                           model_config=OWN_SKIPPING, feature_config=OWN, keyword="sheila",
                           dataset_fingerprint="f")
    onnx_path, _ = export_onnx(path, tmp_path / "loud.onnx")
    probs = onnx_steps(onnx_path, audio(), seed=0)
    assert probs.size >= 5 and np.isfinite(probs).all()


def test_onnx_stream_takes_any_array_like_chunk(tmp_path, student_checkpoint):
    path, _ = export_onnx(student_checkpoint(tmp_path / "s.pt", OWN_SKIPPING, "none", OWN),
                          tmp_path / "s.onnx")
    samples = audio()
    expected = OnnxStream(path)(samples)
    for convert in (list, lambda part: part.astype(np.float64), lambda part: part[None, :]):
        stream = OnnxStream(path)
        got = np.concatenate([stream(convert(samples[:1000])), stream(convert(samples[1000:]))])
        assert np.allclose(got, expected, atol=1e-6)


def test_layout_aligns_blocks_with_steps():
    # step 0 of the overlapping model ends at sample 19 * 160 + 400 = 3440 of the stream
    layout = StreamGeometry.of(OVERLAPPING, FEATURES).block_layout()
    assert layout["block_samples"] == 8 * HOP
    end = -layout["lead_samples"] + (layout["warmup_blocks"] + 1) * layout["block_samples"]
    assert end == 19 * HOP + FEATURES.n_fft
    skipping = StreamGeometry.of(SKIPPING, FEATURES).block_layout()
    assert skipping["warmup_blocks"] == 0
    assert skipping["block_samples"] - skipping["lead_samples"] == 7 * HOP + FEATURES.n_fft


def test_onnx_export_refuses_what_cannot_stream(tmp_path, student_checkpoint):
    torch.manual_seed(0)
    config = CRNNConfig(hidden=8, layers=1, bidirectional=True)
    path = save_checkpoint(tmp_path / "bi.pt", CRNN(config), kind="teacher",
                           model_config=config, feature_config=FEATURES, keyword="sheila",
                           dataset_fingerprint="f")
    with pytest.raises(CheckpointError, match="bidirectional"):
        export_onnx(path, tmp_path / "bi.onnx")
    with pytest.raises(CheckpointError, match="is a folder"):
        export_onnx(student_checkpoint(tmp_path / "s.pt", SKIPPING, "none"), tmp_path)
    assert not list(tmp_path.glob("*.onnx*"))
