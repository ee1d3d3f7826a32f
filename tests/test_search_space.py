"""Search spaces load, validate and build models; bad files give errors naming the key."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch

from kws_search.models import CRNN
from kws_search.search_space import SPACES_DIR, SearchSpaceError, load_space, parse_space

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
])
def test_bad_spaces_name_the_key(text, match):
    with pytest.raises(SearchSpaceError, match=match):
        parse_space(text, "bad.yaml")


def test_missing_space_lists_available():
    with pytest.raises(SearchSpaceError, match="default"):
        load_space("no-such-space")
