"""Samplers: parallel workers sharing a seed draw different students; one worker repeats."""

from __future__ import annotations

import optuna
import pytest

from kws_search.search.attrs import DIRECTIONS
from kws_search.search.samplers import SAMPLERS, make_sampler


def draw(workers: list[optuna.Study], trials: int) -> list[tuple]:
    """Trials taken in turn by `workers` (studies on one storage, each with its own sampler)."""
    space = {"hidden": optuna.distributions.IntDistribution(4, 64),
             "lr": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True),
             "rnn": optuna.distributions.CategoricalDistribution(["gru", "rnn"])}
    drawn = []
    for i in range(trials):
        study = workers[i % len(workers)]
        trial = study.ask(space)
        drawn.append(tuple(sorted(trial.params.items())))
        study.tell(trial, [trial.params["lr"], trial.params["hidden"], 1.0])
    return drawn


def workers_on_one_storage(name: str, count: int, seed: int = 0) -> list[optuna.Study]:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.InMemoryStorage()
    return [optuna.create_study(storage=storage, study_name="s", directions=list(DIRECTIONS),
                                sampler=make_sampler(name, seed), load_if_exists=True)
            for _ in range(count)]


@pytest.mark.parametrize("name", SAMPLERS)
def test_workers_with_one_seed_draw_different_students(name):
    drawn = draw(workers_on_one_storage(name, 2), 8)
    assert len(set(drawn)) == len(drawn), drawn


@pytest.mark.parametrize("name", SAMPLERS)
def test_one_worker_with_a_seed_repeats(name):
    assert draw(workers_on_one_storage(name, 1), 6) == draw(workers_on_one_storage(name, 1), 6)
    assert draw(workers_on_one_storage(name, 1), 6) != draw(workers_on_one_storage(name, 1, 1), 6)
