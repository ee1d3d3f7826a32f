"""Wake-word measures: detections with a refractory time, the threshold for a false-accept
rate, the long stream built from a folder, and `evaluate --hours / --long-wav`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws_search.cli import main
from kws_search.data.datasets import SPEECH_DIR, scan_dataset
from kws_search.evaluate import evaluate_file
from kws_search.wakeword import (
    HOUR_S,
    build_stream,
    detection_hops,
    false_accepts,
    threshold_for_rate,
)


def test_detections_respect_the_refractory_time_and_a_stuck_stream_fires_again() -> None:
    probs = np.zeros(1000)
    probs[100:110] = 0.9  # one run
    probs[150:152] = 0.8  # 50 hops later: within a 100-hop refractory time
    probs[400:405] = 0.7
    assert detection_hops(probs, 0.5, 100) == [100, 400]
    assert detection_hops(probs, 0.5, 10) == [100, 150, 400]
    assert detection_hops(probs, 0.85, 100) == [100]
    assert false_accepts(probs, 0.5, hop_s=0.01) == 2  # 1 s refractory = 100 hops
    stuck = np.full(1000, 0.9)  # above the threshold for 10 s: fires once a second
    assert detection_hops(stuck, 0.5, 100) == list(range(0, 1000, 100))


def test_threshold_for_a_rate_allows_that_many_false_accepts_per_hour() -> None:
    hop_s = 0.01
    probs = np.zeros(int(2 * HOUR_S / hop_s))  # two hours
    peaks = [0.3, 0.5, 0.7, 0.9]
    for i, p in enumerate(peaks):
        probs[100_000 * (i + 1):100_000 * (i + 1) + 20] = p
    one = threshold_for_rate(probs, hop_s, 1.0)  # 2 allowed in 2 h
    assert false_accepts(probs, one, hop_s) == 2 and 0.5 < one <= 0.7
    half = threshold_for_rate(probs, hop_s, 0.5)  # 1 allowed
    assert false_accepts(probs, half, hop_s) == 1 and 0.7 < half <= 0.9
    assert false_accepts(probs, threshold_for_rate(probs, hop_s, 0.1), hop_s) == 0


def _with_speech(tiny_data: Path, tmp_path: Path) -> Path:
    import shutil

    folder = tmp_path / "data"
    shutil.copytree(tiny_data, folder)
    (folder / SPEECH_DIR).mkdir()
    rng = np.random.default_rng(0)
    sf.write(folder / SPEECH_DIR / "engine.wav", 0.1 * rng.standard_normal(16_000 * 30),
             16_000, subtype="PCM_16")
    return folder


def test_the_stream_has_the_length_asked_and_says_what_it_holds(tiny_data, tmp_path) -> None:
    folder = _with_speech(tiny_data, tmp_path)
    index = scan_dataset(folder, "sheila")
    negatives = [rel for rel, label in index.splits["test"] if label == 0]
    stream = build_stream(folder, negatives, index.noise_files, 0.05, 16_000, seed=1)
    assert stream.audio.shape == (int(0.05 * HOUR_S * 16_000),)
    assert stream.hours == pytest.approx(0.05)
    assert "running speech from engine" in stream.content and "dB SNR" in stream.content
    again = build_stream(folder, negatives, index.noise_files, 0.05, 16_000, seed=1)
    np.testing.assert_array_equal(stream.audio, again.audio)


def test_evaluate_reports_false_accepts_per_hour_and_misses_at_the_rates(
        tiny_teacher, tiny_data, tmp_path, capsys) -> None:
    result = evaluate_file(tiny_teacher, tiny_data, hours=0.02)
    wake = result["wakeword"]
    assert wake["stream_hours"] == pytest.approx(0.02, rel=0.01)
    assert wake["false_accepts_per_hour"] == pytest.approx(wake["false_accepts"] / 0.02,
                                                           rel=0.01)
    assert set(wake["at_rate"]) == {"0.5", "1"}
    assert wake["keyword_clips"] == result["keyword_clips"]
    assert wake["false_reject_rate"] == pytest.approx(result["fr"])
    wav = tmp_path / "long.wav"
    sf.write(wav, np.zeros(16_000 * 20, np.float32), 16_000, subtype="PCM_16")
    assert main(["evaluate", str(tiny_teacher), "--data", str(tiny_data), "--long-wav",
                 str(wav), "--json"]) == 0
    wake = json.loads(capsys.readouterr().out)["wakeword"]
    assert str(wav) in wake["stream"] and wake["stream_hours"] == pytest.approx(20 / HOUR_S,
                                                                                 rel=0.01)


def test_wrong_wakeword_inputs_are_refused_in_one_line(tiny_teacher, tiny_data, tmp_path,
                                                       capsys) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", str(tiny_teacher), "--data", str(tiny_data), "--hours", "0"])
    assert main(["evaluate", str(tiny_teacher), "--data", str(tiny_data), "--long-wav",
                 str(tmp_path / "none.wav")]) != 0
    assert main(["evaluate", str(tiny_teacher), "--data", str(tiny_data), "--hours", "1",
                 "--long-wav", str(tmp_path / "none.wav")]) != 0
    err = capsys.readouterr().err
    assert "--hours: must be > 0" in err
    assert "none.wav does not exist" in err and "not both" in err
