"""Defaults the command line shows: where a study and a teacher go by default."""

from __future__ import annotations

from kws_search.options import SAMPLERS, default_storage, teacher_path
from kws_search.search.samplers import make_sampler


def test_default_places(tmp_path):
    assert default_storage("kws", tmp_path / "studies") == f"sqlite:///{tmp_path}/studies/kws.db"
    assert (tmp_path / "studies").is_dir()  # SQLite needs the folder to exist
    data = tmp_path / "speech_commands_v0.02"
    assert teacher_path("ckpt", data).name == "teacher-speech_commands_v0.02.pt"


def test_every_offered_sampler_builds():
    for name in SAMPLERS:
        assert make_sampler(name, 0) is not None
