"""Defaults the command line shows: where a study and a teacher go by default."""

from __future__ import annotations

from kws_search.options import SAMPLERS, default_storage, teacher_path
from kws_search.search.samplers import make_sampler


def test_default_places(tmp_path):
    assert default_storage("kws", tmp_path / "studies") == f"sqlite:///{tmp_path}/studies/kws.db"
    assert (tmp_path / "studies").is_dir()  # SQLite needs the folder to exist
    data = tmp_path / "speech_commands_v0.02"
    assert teacher_path("ckpt", data).name == "teacher-speech_commands_v0.02.pt"


def test_every_offered_sampler_draws_students_of_the_space_and_repeats_with_its_seed():
    import optuna
    import pytest

    from kws_search.search.samplers import UnknownSampler
    from kws_search.search.space import load_space

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = load_space("tiny")
    dists = space.distributions()

    def draws(name: str, seed: int) -> list[dict]:
        study = optuna.create_study(directions=["minimize", "maximize", "maximize"],
                                    sampler=make_sampler(name, seed))
        study.optimize(lambda t: (space.sample(t) and 0.0, 1.0, 1.0), n_trials=3)
        return [t.params for t in study.trials]

    for name in SAMPLERS:
        first = draws(name, 0)
        assert all(v in d.choices if hasattr(d, "choices") else d.low <= v <= d.high
                   for params in first for k, v in params.items() for d in [dists[k]])
        assert first == draws(name, 0), name  # one seed, one run
        assert len({tuple(sorted(p.items())) for p in first}) == 3, name  # no student twice
    with pytest.raises(UnknownSampler, match="choose one of gp-tpe"):
        make_sampler("bayes", 0)
