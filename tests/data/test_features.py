"""Features: log-mel shapes, noise at the asked SNR, and the on-disk cache (reused or rebuilt)."""

from __future__ import annotations

import numpy as np
import torch

from kws_search.data.features import cache_key, mix_noise, prepare_features
from kws_search.data.front_end import LogMel


def test_features_shapes_and_cache_reuse(tiny_data, tmp_path, tiny_feature_config):
    first = prepare_features(tiny_data, "sheila", tiny_feature_config, tmp_path, progress=False)
    assert first.train.shape == (2, 80, 40, 98) and first.train.dtype == torch.float16
    assert first.validation.shape == (20, 40, 98)
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
    assert again.validation.shape == (20, 40, 98)


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
    assert out.shape == (3, 40, 98)
    assert torch.isfinite(out).all()
