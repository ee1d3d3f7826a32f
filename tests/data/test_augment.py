"""Train-copy augmentation: each lever changes what it should and keeps what it should."""

from __future__ import annotations

import numpy as np
import torch

from kws_search.data import augment
from kws_search.data.features import augmented_log_mel, log_mel
from kws_search.data.front_end import FeatureConfig

SR = 16_000


def _word(start: float = 0.3, seconds: float = 0.4, f0: float = 500.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    clip = torch.zeros(SR)
    clip[int(start * SR):int(start * SR) + t.numel()] = torch.sin(2 * torch.pi * f0 * t)
    return clip


def test_speed_perturbation_changes_pitch_and_keeps_length_and_the_word():
    rng = np.random.default_rng(0)
    clips = torch.stack([_word()] * 64)
    fast = augment.speed_perturb(clips, 0.15, rng, SR)
    assert fast.shape == clips.shape
    peak = fast.abs().amax(1)
    assert (peak > 0.8).all()  # the word is still in the clip
    spectrum = torch.fft.rfft(fast).abs().argmax(1).float()  # bin = Hz for 1 s clips
    assert spectrum.min() >= 500 * 0.85 - 2 and spectrum.max() <= 500 * 1.15 + 2
    assert spectrum.std() > 10  # factors differ between clips


def test_slowed_word_is_cropped_around_its_energy():
    rng = np.random.default_rng(1)
    late = torch.stack([_word(start=0.55)] * 32)
    slow = augment.speed_perturb(late, 0.15, rng, SR)
    energy = slow.square().sum(1) / late.square().sum(1)
    assert (energy > 0.8).all()  # energy is rescaled by the factor, never cut away


def test_reverb_keeps_rms_and_spreads_energy_in_time():
    rng = np.random.default_rng(2)
    clips = torch.stack([_word(seconds=0.1)] * 16)
    wet = augment.reverberate(clips, 1.0, (0.5, 0.8), rng, SR)
    rms = lambda x: x.square().mean(1).sqrt()  # noqa: E731
    assert torch.allclose(rms(wet), rms(clips), rtol=1e-3)
    tail = slice(int(0.45 * SR), int(0.6 * SR))  # after the 0.3-0.4 s burst
    assert (wet[:, tail].abs().amax(1) > 1e-3).all()
    assert augment.reverberate(clips, 0.0, (0.5, 0.8), rng, SR) is clips


def test_vtlp_moves_a_formant_by_its_factor_and_keeps_the_band():
    power = torch.zeros(3, 201, 5)
    power[:, 50] = 1.0
    rng = np.random.default_rng(3)
    warped = augment.warp_frequencies(power, 0.1, rng)
    alphas = np.random.default_rng(3).uniform(0.9, 1.1, 3)
    peaks = warped[:, :, 0].argmax(1).numpy()
    assert np.all(np.abs(peaks - 50 * alphas) <= 1.0)
    assert torch.all(warped >= 0)


def test_colour_changes_only_the_chosen_share():
    power = torch.ones(200, 201, 2)
    coloured = augment.colour(power, 0.5, np.random.default_rng(4), SR)
    changed = (coloured != power).flatten(1).any(1).float().mean()
    assert 0.35 < changed < 0.65


def test_augmented_copies_differ_from_plain_features_but_repeat_for_a_seed():
    rng_audio = np.random.default_rng(5)
    audio = (rng_audio.standard_normal((8, SR)) * 0.1).astype(np.float32)
    config = FeatureConfig()
    [a] = augmented_log_mel(audio, [], [config], np.random.default_rng(6))
    [b] = augmented_log_mel(audio, [], [config], np.random.default_rng(6))
    plain = log_mel(audio, config)
    assert a.shape == plain.shape and torch.equal(a, b)
    assert not torch.equal(a, plain)
    off = FeatureConfig(speed=0.0, reverb_prob=0.0, vtlp=0.0, colour_prob=0.0, max_shift=0.0)
    [quiet] = augmented_log_mel(audio, [], [off], np.random.default_rng(6))
    assert torch.allclose(quiet.float(), plain.float(), atol=1e-2)


def test_a_student_front_end_alone_equals_it_beside_the_teachers():
    """Students distil from teacher outputs cached per train copy, so a student's own front
    end must see the very same augmented copies, whether computed alone or in one pass."""
    audio = (np.random.default_rng(7).standard_normal((6, SR)) * 0.1).astype(np.float32)
    teacher = FeatureConfig()
    student = teacher.with_front_end(160, 16)
    both = augmented_log_mel(audio, [], [teacher, student], np.random.default_rng(8))
    [alone] = augmented_log_mel(audio, [], [student], np.random.default_rng(8))
    assert both[1].shape == (6, 16, student.frames) and torch.equal(both[1], alone)
    [teacher_alone] = augmented_log_mel(audio, [], [teacher], np.random.default_rng(8))
    assert torch.equal(both[0], teacher_alone)
