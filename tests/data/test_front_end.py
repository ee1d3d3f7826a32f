"""The log-mel module's two forms compute the same features."""

from __future__ import annotations

import pytest
import torch

from kws_search.data.front_end import FeatureConfig, LogMel
from kws_search.errors import ConfigError


@pytest.mark.parametrize("n_fft, n_mels", [(400, 40), (160, 16)])
def test_the_dft_form_is_the_log_mel_of_torchaudio(n_fft, n_mels):
    """`LogMel.dft` (what the ONNX graph runs) against `LogMel` (what training and scoring
    run), frames that overlap and frames that do not."""
    config = FeatureConfig().with_front_end(n_fft, n_mels)
    front = LogMel(config, center=False)
    samples = torch.randn(4_000, generator=torch.Generator().manual_seed(0)) * 0.1
    reference = front(samples[None])[0]  # [n_mels, frames]
    time_major = n_fft == config.hop_length
    dft = front.dft(samples[:config.frames_in(samples.numel()) * config.hop_length
                            + n_fft - config.hop_length], time_major)[0, 0]
    if time_major:
        dft = dft.transpose(0, 1)
    assert dft.shape == reference.shape == (n_mels, config.frames_in(samples.numel()))
    assert torch.allclose(dft, reference, atol=2e-4)


def test_the_dft_form_refuses_a_window_shorter_than_the_fft():
    front = LogMel(FeatureConfig(win_length=320), center=False)
    with pytest.raises(ConfigError, match="win_length == n_fft"):
        front.dft(torch.zeros(1_000))
