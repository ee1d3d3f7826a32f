"""Dataset reading, errors that name the path, and the feature cache."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from kws_search.data import DataError, read_wav, scan_dataset
from kws_search.features import LogMel, cache_key, mix_noise, prepare_features


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


def test_features_shapes_and_cache_reuse(tiny_data, tmp_path, tiny_feature_config):
    first = prepare_features(tiny_data, "sheila", tiny_feature_config, tmp_path, progress=False)
    assert first.train.shape == (2, 80, 40, 101) and first.train.dtype == torch.float16
    assert first.validation.shape == (20, 40, 101)
    cached = list(tmp_path.glob("features-*.pt"))
    assert len(cached) == 1
    second = prepare_features(tiny_data, "sheila", tiny_feature_config, tmp_path, progress=False)
    assert torch.equal(first.validation, second.validation)  # same seeded noise
    assert cache_key("a", tiny_feature_config) != cache_key("b", tiny_feature_config)


def test_corrupt_cache_is_rebuilt(tiny_data, tmp_path, tiny_feature_config):
    prepare_features(tiny_data, "sheila", tiny_feature_config, tmp_path, progress=False)
    path = next(tmp_path.glob("features-*.pt"))
    path.write_bytes(b"truncated")
    again = prepare_features(tiny_data, "sheila", tiny_feature_config, tmp_path, progress=False)
    assert again.validation.shape == (20, 40, 101)


def test_noise_mixing_hits_the_requested_snr(tiny_feature_config):
    rng = np.random.default_rng(0)
    clean = rng.normal(0, 0.3, (64, 16_000)).astype(np.float32)
    noise = [rng.normal(0, 1.0, 48_000).astype(np.float32)]
    config = tiny_feature_config.__class__(snr_low=10.0, snr_high=10.0, noise_prob=1.0)
    noisy = mix_noise(clean, noise, rng, config, shift=False)
    snr = 10 * np.log10((clean ** 2).mean(1) / ((noisy - clean) ** 2).mean(1))
    assert np.allclose(snr, 10.0, atol=0.01)


def test_log_mel_front_end_shape(tiny_feature_config):
    out = LogMel(tiny_feature_config)(torch.zeros(3, 16_000))
    assert out.shape == (3, 40, 101)
    assert torch.isfinite(out).all()
