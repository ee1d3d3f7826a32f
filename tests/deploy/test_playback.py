"""Streaming an exported model over wav files, detections, plots and the demo track."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from kws_search.data.datasets import DataError, read_wav
from kws_search.deploy.playback import (
    demo_track,
    detections,
    plot_stream,
    stream_audio,
    stream_file,
)
from kws_search.deploy.torchscript import export_checkpoint, load_exported
from kws_search.models import CRNNConfig


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory, student_checkpoint) -> Path:
    """A random 4-channel float CRNN exported for streaming."""
    root = tmp_path_factory.mktemp("stream")
    ckpt = student_checkpoint(root / "m.pt", CRNNConfig(cnn_channels=4, hidden=4))
    return export_checkpoint(ckpt, root / "m.ts")


def test_stream_stereo_44k_file(model_path: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    seconds, rate = 1.5, 44_100
    t = np.arange(int(seconds * rate)) / rate
    left = 0.3 * np.sin(2 * np.pi * 440 * t)
    right = 0.1 * rng.standard_normal(t.shape[0])
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1).astype(np.float32), rate)
    df = stream_file(model_path, path, chunk_seconds=0.1)
    audio = read_wav(path, 16_000)  # resampled, mixed down
    assert list(df.columns) == ["time_s", "probability"]
    assert len(df) == audio.shape[0] // 160
    assert df["time_s"].iloc[0] == pytest.approx(0.01)
    assert np.all(np.diff(df["time_s"]) > 0)
    assert df["probability"].between(0, 1).all()
    module, _ = load_exported(model_path)
    whole = float(module.offline(torch.from_numpy(audio[:len(df) * 160])))
    assert df["probability"].iloc[-1] == pytest.approx(whole, abs=1e-5)
    # the chunk size changes nothing but rounding
    other = stream_file(model_path, path, chunk_seconds=0.0137)
    assert np.allclose(other["probability"], df["probability"], atol=1e-5)


def test_non_audio_file_is_a_data_error(model_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    with pytest.raises(DataError, match="notes.wav"):
        stream_file(model_path, bad)


def test_stream_audio_shorter_than_a_hop(model_path: Path) -> None:
    module, _ = load_exported(model_path)
    df = stream_audio(module, np.zeros(100, dtype=np.float32))
    assert len(df) == 0 and list(df.columns) == ["time_s", "probability"]


def test_detections_fire_at_the_crossing_with_refractory() -> None:
    times = np.arange(1, 501) * 0.01  # 5 s
    probs = np.full(500, 0.05)
    probs[100:120] = np.linspace(0.6, 0.9, 20)  # crosses at 1.01 s, peak 0.9 at 1.20 s
    probs[150:155] = 0.7  # 0.5 s later: same keyword, suppressed
    probs[350:360] = 0.8  # 2.5 s later: a second detection
    df = pd.DataFrame({"time_s": times, "probability": probs})
    found = detections(df, 0.5, refractory_s=1.0)
    assert [round(t, 2) for t, _ in found] == [1.01, 3.51]
    assert found[0][1] == pytest.approx(0.9)
    assert detections(df, 0.95) == []
    assert len(detections(df, 0.5, refractory_s=0.0)) == 3


@pytest.mark.slow
def test_plot_writes_html(tmp_path: Path) -> None:
    df = pd.DataFrame({"time_s": np.arange(1, 101) * 0.01,
                       "probability": np.linspace(0, 1, 100)})
    written = plot_stream(df, 0.5, tmp_path / "plots" / "demo.html", "demo", marks=[(0.3, 0.6)])
    assert written[0] == tmp_path / "plots" / "demo.html"
    html = written[0].read_text()
    assert "demo" in html and "plotly" in html.lower()
    assert all(p.is_file() for p in written)  # the PNG only where kaleido has Chrome


def _write_dataset(root: Path) -> None:
    """A tiny Speech Commands folder: 3 words x 4 clips, lists, and one noise recording."""
    rng = np.random.default_rng(0)
    val, test = [], []
    for w, word in enumerate(("sheila", "yes", "no")):
        (root / word).mkdir(parents=True)
        for i in range(4):
            t = np.arange(16_000) / 16_000
            audio = 0.3 * np.sin(2 * np.pi * (300 + 200 * w + 50 * i) * t)
            sf.write(root / word / f"s{i}_nohash_0.wav", audio.astype(np.float32), 16_000)
        val.append(f"{word}/s1_nohash_0.wav")
        test += [f"{word}/s2_nohash_0.wav", f"{word}/s3_nohash_0.wav"]
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "white.wav",
             (0.1 * rng.standard_normal(3 * 16_000)).astype(np.float32), 16_000)


def test_demo_track(tmp_path: Path) -> None:
    _write_dataset(tmp_path / "data")
    audio, start, end = demo_track(tmp_path / "data", "sheila", seed=3)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 10.0 <= start <= 20.0
    assert end == pytest.approx(start + 1.0)
    assert 21.0 <= audio.shape[0] / 16_000 <= 41.0
    assert np.abs(audio).max() <= 1.0
    again, start2, _ = demo_track(tmp_path / "data", "sheila", seed=3)
    assert start2 == start and np.array_equal(again, audio)
    _, other, _ = demo_track(tmp_path / "data", "sheila", seed=4)
    assert other != start
    with pytest.raises(DataError):
        demo_track(tmp_path / "data", "bob", seed=0)
