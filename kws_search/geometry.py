"""Where a streaming model's frames, RNN steps and audio blocks fall: derived once, here.

The TorchScript stream, the ONNX graph and the MAC count all ask the same questions of one
(model config, feature config) pair: how many frames are computable from so many samples, which
frames the conv reads, how many steps make the attention window, and how blocks of audio line
up with steps. Frame k covers samples [k * hop - pad, k * hop - pad + n_fft) of the stream
(pad is 0, or n_fft // 2 for models made with the centered STFT); step s reads frames
[s * stride, s * stride + kernel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kws_search.data.front_end import FeatureConfig
from kws_search.models import CRNNConfig, conv_steps


@dataclass(frozen=True)
class StreamGeometry:
    n_fft: int
    hop: int
    pad: int  # zeros before the stream (centered STFT models only)
    kernel: int  # frames a step reads
    stride: int  # frames between steps
    sample_rate: int

    @classmethod
    def of(cls, config: CRNNConfig, features: FeatureConfig) -> StreamGeometry:
        return cls(features.n_fft, features.hop_length,
                   features.n_fft // 2 if features.center else 0, config.kernel_time,
                   config.stride_time, features.sample_rate)

    @property
    def block_frames(self) -> int:
        """Frames of each new block of audio the conv reads: min(kernel, stride) (a kernel
        shorter than its stride skips the frames between its windows)."""
        return min(self.kernel, self.stride)

    @property
    def carried_frames(self) -> int:
        """Frames of earlier blocks a step still reads: kept as stream state."""
        return self.kernel - self.block_frames

    @property
    def tail_samples(self) -> int:
        """Samples of a block that the next block's first frame still covers: kept as stream
        state."""
        return self.n_fft - self.hop

    def frames_at(self, samples: int) -> int:
        """Frames computable once `samples` samples of the stream have arrived (the
        TorchScript stream's `_frames_at` is this, scripted)."""
        padded = samples + self.pad
        return 0 if padded < self.n_fft else (padded - self.n_fft) // self.hop + 1

    def clip_frames(self, samples: int) -> int:
        """Frames of a whole clip of `samples` samples, as training framed it (a centered STFT
        pads both ends)."""
        return samples // self.hop + 1 if self.pad else self.frames_at(samples)

    def steps(self, frames: int) -> int:
        """RNN steps computable from `frames` frames."""
        return conv_steps(frames, self.kernel, self.stride)

    def frames_read(self, frames: int) -> int:
        """Frames the conv reads from `frames`: each step reads `kernel` frames, frames shared
        by overlapping steps count once, and frames between the windows of a conv whose kernel
        is shorter than its stride are never read (nor computed, by the ONNX graph)."""
        steps = self.steps(frames)
        if steps == 0:
            return 0
        return steps * self.block_frames + self.carried_frames

    def window_steps(self, seconds: float) -> int:
        """RNN steps a clip of `seconds` yields (at least 1): the attention window."""
        return max(1, self.steps(self.clip_frames(int(round(seconds * self.sample_rate)))))

    def block_layout(self) -> dict[str, int]:
        """Block size, leading zeros and warm-up blocks that align blocks of audio with RNN
        steps: a block ends where the last frame of a step ends; before the first real block
        the stream is zeros."""
        block = self.stride * self.hop
        first = (self.n_fft - self.hop) + (self.kernel - self.stride) * self.hop  # block 0
        warmup = max(0, math.ceil((first - self.pad) / block))
        return {"block_samples": block, "lead_samples": self.pad - (first - warmup * block),
                "warmup_blocks": warmup}
