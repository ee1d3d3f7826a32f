"""The dataset layout: splits, labels, fingerprint, reading wavs; errors name the folder or file."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from kws_search.data.datasets import DataError, read_wav, scan_dataset


def test_scan_splits_and_labels(tiny_data):
    index = scan_dataset(tiny_data, "sheila")
    counts = index.counts()
    assert counts["validation"]["keyword"] == 4 and counts["test"]["keyword"] == 4
    assert counts["train"]["keyword"] == 16 and counts["train"]["other"] == 64
    assert len(index.noise_files) == 1 and len(index.fingerprint) == 32


def test_fingerprint_follows_content(tiny_data, tmp_path):
    copy = shutil.copytree(tiny_data, tmp_path / "copy")
    assert scan_dataset(copy).fingerprint == scan_dataset(tiny_data).fingerprint
    wav = next((copy / "yes").glob("*.wav"))
    audio, sr = sf.read(wav)
    sf.write(wav, audio * 0.5, sr)
    assert scan_dataset(copy).fingerprint != scan_dataset(tiny_data).fingerprint


def test_read_wav_resamples_and_mixes_down(tmp_path):
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1)
    sf.write(tmp_path / "a.wav", stereo.astype(np.float32), 8000)
    audio = read_wav(tmp_path / "a.wav", 16_000)
    assert audio.ndim == 1 and abs(audio.shape[0] - 16_000) <= 1


@pytest.mark.parametrize("damage, match", [
    (lambda r: shutil.rmtree(r / "sheila"), "no folder for keyword 'sheila'"),
    (lambda r: [p.unlink() for p in (r / "sheila").glob("*.wav")], "no 'sheila' clips"),
    (lambda r: (r / "validation_list.txt").unlink(), "not a Speech Commands folder"),
])
def test_dataset_errors_name_the_folder(tmp_path, damage, match, make_dataset):
    root = make_dataset(tmp_path / "d", speakers=6)
    damage(root)
    with pytest.raises(DataError, match=match):
        scan_dataset(root, "sheila")


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="kws-search data synth"):
        scan_dataset(tmp_path / "nowhere")


def test_unreadable_and_empty_wavs_name_the_file(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="bad.wav"):
        read_wav(tmp_path / "bad.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16_000)
    with pytest.raises(DataError, match="empty.wav"):
        read_wav(tmp_path / "empty.wav")
    with pytest.raises(DataError, match="gone.wav does not exist; check the path"):
        read_wav(tmp_path / "gone.wav")


def test_test_engines_follow_the_feature_order_of_a_synthesized_folder(tmp_path,
                                                                       make_dataset) -> None:
    import json

    from kws_search.data.datasets import test_engines

    root = tmp_path / "data"
    shutil.copytree(make_dataset(tmp_path / "src"), root)
    index = scan_dataset(root, "sheila")
    test = [rel for rel, _ in index.splits["test"]]
    speakers = sorted({rel.split("/")[1].split("_nohash_")[0] for rel in test})
    engine_of = {s: f"engine{i % 3}" for i, s in enumerate(speakers)}
    assert test_engines(root, "sheila", len(test)) is None  # no synth.json: no engines
    (root / "synth.json").write_text(json.dumps({"speaker_engine": engine_of}))
    engines = test_engines(root, "sheila", len(test))
    assert list(engines) == [engine_of[rel.split("/")[1].split("_nohash_")[0]] for rel in test]
    assert test_engines(root, "sheila", len(test) - 1) is None  # a clip was skipped
