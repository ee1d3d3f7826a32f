"""What `run` does before the search: the default dataset and teacher are made once, on first
use, and reused after."""

from __future__ import annotations

import shutil

from kws_search.search import launch


def test_the_default_data_and_teacher_are_made_once_then_reused(tiny_data, tmp_path,
                                                                monkeypatch, capsys):
    import kws_search.data.synth as synth
    import kws_search.teacher as teacher_module

    made, trained = [], []

    def fake_synthesize(root):  # the tiny folder stands in for the 64,000 default clips
        made.append(root)
        shutil.copytree(tiny_data, root)

    def fake_train_teacher(features, path):
        trained.append((features.keyword, path))
        path.write_bytes(b"teacher")
        return None, {"val_quality": 1e-3, "test_quality": 2e-3}

    monkeypatch.setattr(synth, "synthesize", fake_synthesize)
    monkeypatch.setattr(teacher_module, "train_teacher", fake_train_teacher)
    default, teacher = tmp_path / "data" / "synth", tmp_path / "teacher-synth.pt"
    for _ in range(2):
        launch.ensure_inputs(default, "sheila", teacher, tmp_path / "cache", default)
    assert made == [default] and trained == [("sheila", teacher)]  # once each
    out = capsys.readouterr().out
    assert f"no dataset at {default}; synthesizing" in out and "no teacher at" in out
    other = tmp_path / "mine"  # a user's own folder is never synthesized over
    launch.ensure_inputs(other, "sheila", teacher, tmp_path / "cache", default)
    assert made == [default] and not other.exists()


def test_workers_are_capped_by_trials_and_memory(monkeypatch, capsys):
    class Memory:
        available = 3.5 * (1 << 30)

    monkeypatch.setattr(launch.psutil, "virtual_memory", lambda: Memory)
    assert launch.worker_jobs(8, 1, trials=100) == 3
    assert "--jobs 8 capped to 3: 3.5 GiB of memory is free" in capsys.readouterr().out
    assert launch.worker_jobs(8, 1, trials=2) == 2
    assert launch.worker_jobs(2, 1, trials=100) == 2
