"""Report tables: hypervolume numbers and the Markdown form of a table."""

from __future__ import annotations

import warnings

import optuna
import pandas as pd
import pytest

from kws_search.report.tables import (
    hypervolume,
    hypervolume_history,
    to_markdown,
)


def test_hypervolume_is_exact_on_boxes():
    assert hypervolume([(1.0, 2.0, 3.0)]) == pytest.approx(6.0)
    # two boxes overlapping in [0,1]x[0,.5]x[0,.5]: 1 + 2*.5*.5 - 1*.5*.5
    assert hypervolume([(1.0, 1.0, 1.0), (2.0, 0.5, 0.5)]) == pytest.approx(1.25)
    assert hypervolume([(1.0, 1.0, 1.0), (0.5, 0.5, 0.5)]) == pytest.approx(1.0)
    assert hypervolume([(-1.0, 5.0, 5.0)]) == 0.0  # worse than the reference: no volume
    table = pd.DataFrame({"number": [0, 1, 2], "state": ["COMPLETE"] * 3,
                          "feasible": [True, False, True], "quality": [0.5, 0.1, 0.0],
                          "speedup": [3.0, 9.0, 2.0], "compression": [2.0, 9.0, 2.0]})
    history = hypervolume_history(table, bar=1.0)
    assert list(history["hypervolume"]) == pytest.approx([1.0, 1.0, 1.5])  # 1 + 1 - .5
    assert list(history["front_size"]) == [1, 1, 2]


def test_hypervolume_history_agrees_with_optuna(tiny_study, tiny_report):
    """Our copy against Optuna's public (experimental) figure, the only public hypervolume:
    same trials, same numbers once its first axis (quality, reference: the bar) is in bars."""
    _, study = tiny_study
    bar = study.user_attrs["quality_bar"]
    ours = hypervolume_history(tiny_report.trials, bar)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        theirs = optuna.visualization.plot_hypervolume_history(study, [bar, 1.0, 1.0]).data[0]
    assert list(ours["number"]) == list(theirs.x)
    assert list(ours["hypervolume"]) == pytest.approx([v / bar for v in theirs.y], rel=1e-9)
    assert ours["hypervolume"].iloc[-1] > 0  # the tiny study has a feasible student


def test_markdown_escapes_and_blanks_missing():
    text = to_markdown(pd.DataFrame({"a": [1.5, float("nan")], "b": ["x|y", None]}))
    assert text.splitlines()[1] == "| ---: | --- |"
    assert "| 1.5 | x\\|y |" in text and "|  |  |" in text


def test_the_answer_shows_each_engine_against_the_teachers_on_the_same_engine():
    from kws_search.report.tables import engine_lines

    result = {"teacher_test_by_engine": {"espeak": 2e-4, "hibari": 1e-4},
              "judged": [{"trial": 200, "test_by_engine": {"espeak": 3e-4, "hibari": 4e-4}},
                         {"trial": 201, "test_by_engine": {}}]}
    lines = engine_lines(result)
    assert lines[0].startswith("test quality per speech engine")
    assert lines[1].split() == ["model", "espeak", "hibari"]
    assert "1.50x" in lines[3] and "4.00x" in lines[3] and lines[4].split()[2:] == ["-", "-"]
    assert engine_lines({**result, "teacher_test_by_engine": {}}) == []
