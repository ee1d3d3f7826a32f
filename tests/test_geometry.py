"""One derivation of where frames, steps and blocks fall in a stream."""

from __future__ import annotations

from kws_search.data.front_end import FeatureConfig
from kws_search.geometry import StreamGeometry
from kws_search.models import CRNNConfig

CAUSAL = FeatureConfig()
CENTERED = FeatureConfig(center=True)


def test_frames_of_a_stream_and_of_a_clip():
    geometry = StreamGeometry.of(CRNNConfig(), CAUSAL)
    assert [geometry.frames_at(n) for n in (0, 399, 400, 559, 560, 16000)] == [0, 0, 1, 1, 2, 98]
    assert geometry.clip_frames(16000) == CAUSAL.frames == 98  # what training reads
    centered = StreamGeometry.of(CRNNConfig(), CENTERED)
    assert centered.pad == 200 and centered.frames_at(200) == 1  # primed with n_fft // 2 zeros
    assert centered.clip_frames(16000) == CENTERED.frames == 101


def test_frames_read_counts_each_frame_a_step_reads_once():
    for kernel, stride in ((20, 8), (8, 20), (10, 10)):
        geometry = StreamGeometry.of(CRNNConfig(kernel_time=kernel, stride_time=stride), CAUSAL)
        read = {s * stride + k for s in range(geometry.steps(98)) for k in range(kernel)}
        assert geometry.frames_read(98) == len(read)


def test_the_attention_window_is_the_steps_of_a_window_long_clip():
    config = CRNNConfig(kernel_time=20, stride_time=8)
    geometry = StreamGeometry.of(config, CAUSAL)
    assert geometry.window_steps(1.0) == config.steps(98) == 10
    assert geometry.window_steps(0.001) == 1  # never empty
