"""Streaming export: streamed output equals whole-clip output, state handling, file round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kws_search.checkpoint import CheckpointError
from kws_search.data.front_end import FeatureConfig, LogMel
from kws_search.deploy.torchscript import (
    StreamingKWS,
    export_checkpoint,
    load_exported,
)
from kws_search.measure import suggest_threshold
from kws_search.models import CRNNConfig
from kws_search.options import EXPORT_INFO

FEATURES = FeatureConfig()
SR = FEATURES.sample_rate
HOP = FEATURES.hop_length
# (quant mode, rnn cell): all five modes for the GRU, float and int8 for the plain RNN.
VARIANTS = [("none", "gru"), ("float16", "gru"), ("int8", "gru"), ("static_int8", "gru"),
            ("qat", "gru"), ("none", "rnn"), ("int8", "rnn")]
# Streamed and offline run the same ops on the same numbers (dynamic int8 layers see one step
# per call in both), so every mode matches to float rounding.
TOL = 1e-5


def tiny(rnn: str = "gru") -> CRNNConfig:
    """The random students here: 4 channels, one RNN layer of 6 units per direction."""
    return CRNNConfig(cnn_channels=4, hidden=6, rnn=rnn)


def clip(seconds: float = 1.0, seed: int = 1) -> torch.Tensor:
    """A sine sweep plus noise [samples]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    sweep = 0.3 * torch.sin(2 * torch.pi * (200 + 1500 * t) * t)
    return sweep + 0.05 * torch.randn(t.shape[0], generator=g)


def stream(module: torch.jit.ScriptModule, audio: torch.Tensor, chunk: int) -> torch.Tensor:
    """Final probability after streaming audio in chunks from a fresh state."""
    module.reset()
    prob = torch.zeros(())
    for start in range(0, audio.shape[0], chunk):
        prob = module(audio[start:start + chunk])
    return prob


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory,
             student_checkpoint) -> dict[tuple[str, str], Path]:
    root = tmp_path_factory.mktemp("export")
    return {(mode, rnn): export_checkpoint(
                student_checkpoint(root / f"{mode}-{rnn}.pt", tiny(rnn), mode),
                root / f"{mode}-{rnn}.ts")
            for mode, rnn in VARIANTS}


@pytest.fixture(scope="module")
def loaded(exported: dict[tuple[str, str], Path]) -> dict[tuple[str, str], torch.jit.ScriptModule]:
    return {key: load_exported(path)[0] for key, path in exported.items()}


@pytest.mark.parametrize("variant", VARIANTS, ids=["-".join(v) for v in VARIANTS])
@pytest.mark.parametrize("chunk", [160, 1000, 8000, 77])
def test_stream_equals_offline(loaded: dict, variant: tuple[str, str], chunk: int) -> None:
    module = loaded[variant]
    audio = clip()
    reference = module.offline(audio)
    assert 0.0 < float(reference) < 1.0
    assert float((stream(module, audio, chunk) - reference).abs()) <= TOL


@pytest.mark.parametrize("variant", [("none", "gru"), ("int8", "gru")], ids=["float", "int8"])
def test_long_stream_keeps_bounded_window(loaded: dict, variant: tuple[str, str]) -> None:
    module = loaded[variant]
    audio = clip(5.0, seed=3)
    final = stream(module, audio, 1600)
    window = module.max_window_length
    assert window == 10  # kernel 20, stride 8: the 98 frames of a 1 s clip give 10 steps
    assert module.outputs.shape == (window, 6)
    assert module.energies.shape == (window,)
    assert module.hidden.shape == (2, 1, 6)
    assert module.samples.shape[0] < FEATURES.n_fft
    assert module.frames.shape[1] < 20
    assert float((final - module.offline(audio)).abs()) <= TOL  # attention over last 10 steps


@pytest.mark.parametrize("variant", [("none", "gru"), ("int8", "gru")], ids=["float", "int8"])
def test_forward_steps_one_probability_per_hop(loaded: dict, variant: tuple[str, str]) -> None:
    module = loaded[variant]
    audio = clip()
    module.reset()
    per_hop = [module.forward_steps(audio[s:s + 160]) for s in range(0, audio.shape[0], 160)]
    assert all(p.shape == (1,) for p in per_hop)
    series = torch.cat(per_hop)
    for chunk in (77, 1000, 8000):
        module.reset()
        parts = [module.forward_steps(audio[s:s + chunk])
                 for s in range(0, audio.shape[0], chunk)]
        other = torch.cat(parts)
        assert other.shape == (audio.shape[0] // HOP,)
        assert torch.allclose(other, series, atol=TOL)
    # no step before the conv has kernel_time frames; the last hop is the whole-clip output
    first_step_hop = (19 * HOP + FEATURES.n_fft) // HOP + 1  # frame 19 ends the kernel
    assert torch.all(series[:first_step_hop - 1] == 0)
    assert series[first_step_hop - 1] > 0
    assert abs(float(series[-1] - module.offline(audio))) <= TOL
    assert len(torch.unique(series[series > 0])) == 10  # a 1 s clip: 10 RNN steps streamed


def test_short_chunks_and_empty_chunk(loaded: dict) -> None:
    module = loaded[("none", "gru")]
    module.reset()
    assert float(module(torch.zeros(0))) == 0.0
    assert module.forward_steps(torch.zeros(100)).shape == (0,)
    assert module.forward_steps(torch.zeros(100)).shape == (1,)  # hop 1 ends at sample 160


def test_reset_restores_initial_state(loaded: dict) -> None:
    module = loaded[("int8", "gru")]
    audio = clip(2.0)
    module.reset()
    first = torch.cat([module.forward_steps(audio[s:s + 1000]) for s in range(0, 32000, 1000)])
    module.reset()
    assert module.samples.shape == (0,) and module.outputs.shape[0] == 0
    assert torch.all(module.hidden == 0) and float(module.last_prob) == 0.0
    second = torch.cat([module.forward_steps(audio[s:s + 1000]) for s in range(0, 32000, 1000)])
    assert torch.equal(first, second)


def test_offline_leaves_stream_state_alone(loaded: dict) -> None:
    module = loaded[("none", "gru")]
    audio = clip()
    expected = stream(module, audio, 1000)
    module.reset()
    module(audio[:8000])
    module.offline(clip(3.0, seed=7))
    assert torch.equal(module(audio[8000:]), expected)


def test_offline_matches_training_front_end(calibrated_student) -> None:
    """The stream frames audio as training does (frame k covers samples [k * hop, k * hop +
    n_fft)): every frame equals the training features, so the probabilities agree too."""
    model, config = calibrated_student(tiny()), tiny()
    module = StreamingKWS(model, config, FEATURES, keyword="sheila")
    audio = clip()
    train = LogMel(FEATURES)(audio[None])[0]  # [n_mels, 98]
    streamed = module.features(audio)
    assert streamed.shape == train.shape == (40, FEATURES.frames) == (40, 98)
    assert torch.allclose(streamed, train, atol=1e-5)
    with torch.no_grad():
        on_train = torch.softmax(model.stepwise(train[None]), -1)[0, 1]
    assert abs(float(module.offline(audio) - on_train)) <= TOL


def test_a_centered_model_streams_as_before(calibrated_student) -> None:
    """A checkpoint made with the centered STFT (no `center` key) keeps its framing: the
    stream is primed with n_fft // 2 zeros, and interior frames equal the centered features."""
    centered = FeatureConfig.from_dict({k: v for k, v in FEATURES.to_dict().items()
                                        if k != "center"})
    assert centered.center and centered.frames == 101
    model, config = calibrated_student(tiny()), tiny()
    module = StreamingKWS(model, config, centered, keyword="sheila")
    audio = clip()
    train = LogMel(centered)(audio[None])[0]  # [n_mels, 101]
    streamed = module.features(audio)  # [n_mels, 99]: the last 2 frames need future samples
    assert streamed.shape == (40, 99)
    assert torch.allclose(streamed[:, 2:], train[:, 2:99], atol=1e-5)


def test_attributes_and_info_after_load(exported: dict) -> None:
    module, info = load_exported(exported[("static_int8", "gru")])
    assert module.keyword == "sheila"
    assert module.sample_rate == 16_000 and module.hop_length == 160
    assert module.max_window_length == 10
    assert module.window_seconds == 1.0
    assert module.threshold == pytest.approx(0.42)  # from the checkpoint's metrics
    assert module.quant == "static_int8"
    assert info["model"]["cnn_channels"] == 4 and info["metrics"]["quality"] == 1e-3
    assert info["features"]["hop_length"] == 160 and info["max_window_length"] == 10


def test_export_options_and_errors(tmp_path: Path, student_checkpoint) -> None:
    ckpt = student_checkpoint(tmp_path / "m.pt", tiny(), metrics={"quality": 1.0})
    out = export_checkpoint(ckpt, tmp_path / "sub" / "m.ts", max_window_seconds=2.0)
    module = torch.jit.load(str(out))
    assert module.threshold == 0.5  # no threshold in the metrics
    assert module.max_window_length == 23  # 2 s: 201 frames -> 23 steps
    out = export_checkpoint(ckpt, tmp_path / "t.ts", threshold=0.9)
    assert torch.jit.load(str(out)).threshold == pytest.approx(0.9)
    with pytest.raises(CheckpointError):
        export_checkpoint(tmp_path / "missing.pt", tmp_path / "x.ts")


FRESH = """
import json, sys, torch
torch.set_num_threads(1)
extra = {"kws_search.json": ""}
m = torch.jit.load(sys.argv[1], _extra_files=extra)
audio = torch.load(sys.argv[2])
m.reset()
steps = torch.cat([m.forward_steps(audio[s:s + 1000]) for s in range(0, audio.shape[0], 1000)])
foreign = [k for k in sys.modules if k.startswith(("kws_search", "torchaudio"))]
print(json.dumps({"steps": steps.tolist(), "offline": float(m.offline(audio)),
                  "keyword": m.keyword, "threshold": m.threshold,
                  "info": json.loads(extra["kws_search.json"])["keyword"], "foreign": foreign}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("variant", [("none", "gru"), ("int8", "gru"), ("static_int8", "gru")],
                         ids=["float", "int8", "static_int8"])
def test_fresh_process_gives_identical_numbers(exported: dict, tmp_path: Path,
                                               variant: tuple[str, str]) -> None:
    audio = clip(1.5)
    torch.save(audio, tmp_path / "audio.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        module = torch.jit.load(str(exported[variant]))
        module.reset()
        steps = torch.cat([module.forward_steps(audio[s:s + 1000])
                           for s in range(0, audio.shape[0], 1000)])
        offline = float(module.offline(audio))
    finally:
        torch.set_num_threads(threads)
    result = subprocess.run([sys.executable, "-c", FRESH, str(exported[variant]),
                             str(tmp_path / "audio.pt")],
                            capture_output=True, text=True, check=True, timeout=120)
    fresh = json.loads(result.stdout.strip().splitlines()[-1])
    assert fresh["foreign"] == []  # only torch was imported
    assert fresh["steps"] == steps.tolist()
    assert fresh["offline"] == offline
    assert fresh["keyword"] == fresh["info"] == "sheila"
    assert fresh["threshold"] == pytest.approx(0.42)


def test_extra_file_is_json(exported: dict) -> None:
    extra = {EXPORT_INFO: ""}
    torch.jit.load(str(exported[("none", "rnn")]), _extra_files=extra)
    assert json.loads(extra[EXPORT_INFO])["model"]["rnn"] == "rnn"


def test_suggest_threshold() -> None:
    probs = np.array([0.1, 0.2, 0.3, 0.35, 0.9, 0.4, 0.8, 0.95])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    # no false alarm allowed: above the highest negative (0.9), below the next score (0.95)
    assert suggest_threshold(probs, labels, 0.0) == pytest.approx(0.925)
    # one of five negatives may fire: between 0.35 and 0.4, so every positive is caught
    t = suggest_threshold(probs, labels, 0.2)
    assert t == pytest.approx(0.375)
    assert ((probs >= t) & (labels == 0)).sum() == 1 and (probs[labels == 1] >= t).all()
    assert suggest_threshold(probs, labels, 1.0) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        suggest_threshold(probs, labels[:3], 0.1)
