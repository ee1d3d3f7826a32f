"""`kws-search report`: tables, figures and index of a study; clear errors for bad studies."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from kws_search import cli
from kws_search.commands import report as report_command
from kws_search.report.pages import write_report
from kws_search.report.tables import (
    CI_COLUMN,
    CROSS_MEASURES,
    MEASURES,
)
from kws_search.search.attrs import DIRECTIONS
from kws_search.search.progress import feasible_front
from kws_search.search.storage import StudyError

FILES = ("trials.csv", "trials.md", "front.csv", "front.md", "quality_vs_macs.html",
         "quality_vs_bytes.html", "speedup_vs_compression.html", "hypervolume.html",
         "index.html")


@pytest.fixture
def with_report_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """`report` in the CLI even before cli.py lists it."""
    if report_command not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, report_command))


def test_report_writes_tables_figures_and_index(tiny_study, tiny_report):
    _, study = tiny_study
    for name in FILES:
        assert (tiny_report.folder / name).is_file(), name
    table = pd.read_csv(tiny_report.folder / "trials.csv")
    assert len(table) == len(study.trials)
    assert set(MEASURES) | {"number", "state", "quality", "speedup", "compression", "feasible",
                            "on_front", "fail_reason"} <= set(table.columns)
    assert any(c.startswith("params_") for c in table.columns)
    front = {t.number for t in feasible_front(study)}
    assert set(table.loc[table["on_front"], "number"]) == front
    front_csv = pd.read_csv(tiny_report.folder / "front.csv")
    assert set(front_csv["number"]) == front
    assert {"val_quality", "val 90% CI"} <= set(front_csv.columns)
    assert "| number |" in (tiny_report.folder / "trials.md").read_text()
    assert "front.md" in (tiny_report.folder / "index.html").read_text()


def test_the_bar_is_shown_with_the_margin_the_study_was_run_with(tiny_study, tiny_report,
                                                                 tmp_path):
    settings, study = tiny_study
    assert study.user_attrs["quality_margin"] == 1.1  # `run --margin`, default
    bar = f"bar (1.1x validation) {study.user_attrs['quality_bar']:.4g}"
    assert bar in (tiny_report.folder / "index.html").read_text(encoding="utf-8")
    assert bar in (tiny_report.folder / "front.md").read_text(encoding="utf-8")
    storage = f"sqlite:///{tmp_path / 'loose.db'}"
    optuna.copy_study(from_study_name=settings.study.name, from_storage=settings.study.storage,
                      to_storage=storage)
    optuna.load_study(study_name=settings.study.name, storage=storage).set_user_attr(
        "quality_margin", 2.0)
    report = write_report(settings.study.name, storage, tmp_path / "loose", png=False)
    assert report.info.margin == 2.0
    assert "bar (2x validation)" in (report.folder / "index.html").read_text(encoding="utf-8")


def test_front_shows_the_validation_interval_and_no_cross_columns(tiny_study, tiny_report):
    _, study = tiny_study
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    front = pd.read_csv(tiny_report.folder / "front.csv", keep_default_na=False)
    assert CI_COLUMN in front.columns
    for number, text in zip(front["number"], front[CI_COLUMN], strict=True):
        attrs = trials[number].user_attrs
        assert attrs["val_quality_lo"] <= attrs["val_quality"] <= attrs["val_quality_hi"]
        assert text == f"{attrs['val_quality_lo']:.3g}–{attrs['val_quality_hi']:.3g}"
    teacher = study.user_attrs["teacher"]
    assert teacher["val_quality_lo"] <= teacher["val_quality"] <= teacher["val_quality_hi"]
    page = (tiny_report.folder / "front.md").read_text(encoding="utf-8")
    assert f"({CI_COLUMN} {teacher['val_quality_lo']:.3g}–" in page
    assert f"| {CI_COLUMN} |" in page
    # without --cross-data nothing about it is recorded or shown
    assert "teacher_cross" not in study.user_attrs and "cross_data" not in study.user_attrs
    columns = set(front.columns) | set(pd.read_csv(tiny_report.folder / "trials.csv").columns)
    assert not columns & set(CROSS_MEASURES)
    assert "cross-engine" not in page


def test_failed_and_running_trials_still_report(tiny_study, tmp_path):
    settings, _ = tiny_study
    db = tmp_path / "copy.db"
    shutil.copy(Path(settings.study.storage[len("sqlite:///"):]), db)
    storage = f"sqlite:///{db}"
    study = optuna.load_study(study_name=settings.study.name, storage=storage)
    failed = study.ask()
    failed.set_user_attr("fail_reason", "NonFiniteLoss: loss is nan at step 3")
    study.tell(failed, state=TrialState.FAIL)
    study.ask()  # left running, as a live worker would
    report = write_report(settings.study.name, storage, tmp_path / "out", png=False)
    states = dict(zip(report.trials["number"], report.trials["state"], strict=True))
    assert states[failed.number] == "FAIL" and "RUNNING" in states.values()
    assert report.progress.failed == 1 and report.progress.running == 1
    row = report.trials[report.trials["number"] == failed.number].iloc[0]
    assert row["fail_reason"].startswith("NonFiniteLoss") and not row["feasible"]


def test_cli_report_prints_folder_and_summary(tiny_study, tmp_path, capsys,
                                              with_report_command):
    settings, _ = tiny_study
    out = tmp_path / "rep"
    code = cli.main(["report", "--study", settings.study.name, "--storage", settings.study.storage,
                     "--out", str(out), "--no-png"])
    printed = capsys.readouterr().out
    assert code == 0 and (out / "index.html").is_file()
    assert str(out) in printed and "3 complete, 0 stopped early" in printed and "front" in printed
    assert "the answer (3 search trials)" in printed and "1.5x teacher" in printed
    answer = json.loads((out / "answer.json").read_text())
    assert [level["level"] for level in answer["levels"]] == [1.1, 1.25, 1.5, 2.0, 3.0]
    assert answer["students"] == 3 and answer["basis"] == "search trials"
    assert answer["split"] == "validation" and answer["judged"] == []  # no finalists yet


def test_missing_or_empty_study_is_a_clear_error(tmp_path, capsys, with_report_command):
    missing = tmp_path / "none.db"
    assert cli.main(["report", "--study", "x", "--storage", f"sqlite:///{missing}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no study database at") and "'x'" in err
    assert not missing.exists()  # reporting never creates a database

    storage = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(storage=storage, study_name="empty", directions=list(DIRECTIONS))
    assert cli.main(["report", "--study", "typo", "--storage", storage]) == 1
    assert "no study 'typo'" in capsys.readouterr().err
    assert cli.main(["report", "--study", "empty", "--storage", storage]) == 1
    assert "has no trials yet" in capsys.readouterr().err
    with pytest.raises(StudyError, match="'empty'"):
        write_report("empty", storage, tmp_path / "out")


def test_report_command_registers_with_an_example():
    sub = argparse.ArgumentParser().add_subparsers()
    report_command.register(sub)
    parser = sub.choices["report"]
    assert "kws-search report" in parser.epilog
    args = parser.parse_args(["--study", "s"])
    assert args.out is None and args.func is report_command.run
