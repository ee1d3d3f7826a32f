"""Search spaces load, validate and build models; bad files give errors naming the key."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch

from kws_search.data.front_end import FeatureConfig
from kws_search.models import CRNN
from kws_search.search.space import SPACES_DIR, SearchSpaceError, load_space, parse_space

SPACE_FILES = sorted(SPACES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", SPACE_FILES, ids=lambda p: p.stem)
def test_every_space_file_loads_samples_and_builds(path: Path):
    space = load_space(path)
    study = optuna.create_study(directions=["minimize"] * 3,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        config = space.sample(trial)
        model = CRNN(config.model)
        assert model(torch.zeros(2, 40, 101)).shape == (2, 2)
        study.tell(trial, [0.0, 1.0, 1.0])


def test_load_by_name():
    assert load_space("tiny").name.endswith("tiny.yaml")


@pytest.mark.parametrize("text, match", [
    ("model: {hiddn: 4}", "model.hiddn is not a known key"),
    ("modle: {hidden: 4}", "unknown section 'modle'"),
    ("model: {hidden: {type: int, low: 8, high: 4}}", "model.hidden"),
    ("model: {hidden: {type: integer, low: 4, high: 8}}", "model.hidden: 'type'"),
    ("model: {rnn: {type: categorical, choices: [gru, lstm2]}}", "model.rnn"),
    ("quant: {mode: int4}", "quant.mode"),
    ("model: {hidden: [1, 2", "not valid YAML"),
    ("", "empty"),
    ("model: 3", "must be a mapping"),
    ("front_end: {n_fft: {type: int, low: 160, high: 400}}", "front_end.n_fft: each value is "
                                                              "a feature cache, so list them"),
    ("front_end: {n_fft: 160, n_mels: 40}", "n_fft 160, n_mels 40: 1 of 40 mel bands get no "
                                            "bin of a 160-point FFT"),
    ("front_end: {n_fft: 128}", "n_fft 128 is shorter than the 160-sample hop"),
    ("model: {n_mels: 20}\nfront_end: {n_mels: 16}", "a key appears in two sections"),
    # every value a range can draw has the key's type, checked at load time
    ("model: {hidden: {type: float, low: 4, high: 8}}", "model.hidden: a float range for a "
                                                        "whole-number key; write `type: int`"),
    ("model: {layers: {type: categorical, choices: [1, 1.5]}}", "model.layers: expected int"),
])
def test_bad_spaces_name_the_key(text, match):
    with pytest.raises(SearchSpaceError, match=match):
        parse_space(text, "bad.yaml")


def test_missing_space_lists_available():
    with pytest.raises(SearchSpaceError, match="default"):
        load_space("no-such-space")


def test_front_ends_are_the_teachers_first_then_every_combination():
    space = parse_space("front_end: {n_fft: {type: categorical, choices: [200, 400]}, "
                        "n_mels: {type: categorical, choices: [16, 40]}}")
    teacher = FeatureConfig()
    fronts = space.front_ends(teacher)
    assert fronts[0] == teacher and len(fronts) == 4
    assert {(c.n_fft, c.win_length, c.n_mels) for c in fronts} == {
        (400, 400, 40), (400, 400, 16), (200, 200, 40), (200, 200, 16)}
    # everything but the FFT and mel bands stays the teacher's (augmentation, hop, seed)
    assert {c.with_front_end(400, 40) for c in fronts} == {teacher}
    assert load_space("tiny").front_ends(teacher) == [teacher]  # no section: the teacher's
