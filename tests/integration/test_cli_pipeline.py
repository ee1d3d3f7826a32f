"""The README's pipeline through the command line: teacher, run, resume, export, stream."""

from __future__ import annotations

import pytest
import torch

from kws_search.cli import main


@pytest.mark.slow
def test_teacher_run_export_stream(workdir, tiny_data, capsys):
    data = ["--data", str(tiny_data)]
    assert main(["teacher", *data, "--epochs", "1", "--hidden", "8"]) == 0
    out = capsys.readouterr().out
    assert "validation quality" in out and "distilled from the mean" not in out  # one model
    teacher = workdir / "checkpoints" / f"teacher-{tiny_data.name}.pt"
    assert teacher.is_file()

    # the same data again: the saved teacher is reused, not retrained
    assert main(["teacher", *data]) == 0
    assert "matches this dataset" in capsys.readouterr().out

    assert main(["run", *data, "--trials", "2", "--space", "tiny", "--study", "t"]) == 0
    out = capsys.readouterr().out
    assert "teacher validation quality" in out
    assert "the answer (2 finalists)" in out and "1.1x teacher" in out  # trained as the teacher
    assert "judged on the test split" in out and "quality / teacher" in out
    assert (workdir / "studies" / "t.db").is_file()

    # re-running the same command with a larger total resumes the study
    assert main(["run", *data, "--trials", "3", "--space", "tiny", "--study", "t"]) == 0
    import optuna

    study = optuna.load_study(study_name="t", storage="sqlite:///studies/t.db")
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len([t for t in complete if "final_of" not in t.user_attrs]) == 3
    finals = [t.user_attrs["final_of"] for t in complete if "final_of" in t.user_attrs]
    assert len(finals) >= 2 and len(finals) == len(set(finals))  # none trained twice

    assert main(["export", *data, "--study", "t", "--trial", "0"]) == 0
    exported = workdir / "checkpoints" / "t-trial0-stream.pt"
    assert exported.is_file()
    module = torch.jit.load(str(exported))
    assert module.keyword == "sheila" and module.sample_rate == 16000

    assert main(["export", *data, "--export-teacher"]) == 0
    wav = next((tiny_data / "sheila").glob("*.wav"))
    assert main(["stream", str(exported), str(wav), "--out", str(workdir / "s.html")]) == 0
    assert "detection" in capsys.readouterr().out
    assert (workdir / "s.html").is_file()
