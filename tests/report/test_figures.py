"""Report figures: the teacher, the bar, the seeds' students and the front are drawn."""

from __future__ import annotations

import pytest


def test_figures_show_teacher_bar_seeds_and_front(tiny_study, tiny_report):
    _, study = tiny_study
    bar = study.user_attrs["quality_bar"]
    for name in ("quality_vs_macs", "quality_vs_bytes"):
        fig = tiny_report.figures[name]
        names = {trace.name for trace in fig.data}
        assert {"teacher", "feasible Pareto front", "seed 000 (by hand)",
                "seed 004 (by hand)"} <= names
        assert fig.layout.xaxis.type == "log"
        assert any(s.y0 == s.y1 == pytest.approx(bar) for s in fig.layout.shapes)
        teacher = next(t for t in fig.data if t.name == "teacher")
        assert teacher.y[0] == study.user_attrs["teacher"]["val_quality"]
    html = (tiny_report.folder / "quality_vs_macs.html").read_text()
    assert "teacher" in html and "seed 002 (by hand)" in html
    history = tiny_report.figures["hypervolume"].data[0]
    assert list(history.y) == sorted(history.y)  # the front only grows


def test_the_quality_axis_hides_diverged_students_but_never_most_of_the_study():
    import pandas as pd

    from kws_search.report.figures import metric_figure
    from kws_search.report.tables import StudyInfo

    info = StudyInfo("s", {"macs": 1e6, "val_quality": 1e-3}, quality_bar=1.1e-3)

    def table(qualities):
        n = len(qualities)
        return pd.DataFrame({"number": range(n), "state": ["COMPLETE"] * n,
                             "feasible": [q <= 1.1e-3 for q in qualities],
                             "on_front": [False] * n, "quality": qualities,
                             "test_quality": [None] * n, "speedup": [2.0] * n,
                             "compression": [3.0] * n, "macs": [5e5] * n, "bytes": [1e4] * n,
                             "quant": ["int8"] * n})

    clipped = metric_figure(table([1e-3, 1.2e-3, 2e-3, 3e-3, 0.5]), info)
    assert "1 trials above 4x the bar not shown" in clipped.layout.title.text
    early = metric_figure(table([1e-3, 0.3, 0.5]), info)  # most of it above: all shown
    assert "not shown" not in early.layout.title.text


def test_the_bytes_figure_draws_the_study_s_byte_budget():
    import pandas as pd

    from kws_search.report.figures import metric_figure
    from kws_search.report.tables import StudyInfo

    table = pd.DataFrame({"number": [0], "state": ["COMPLETE"], "feasible": [True],
                          "on_front": [True], "quality": [1e-3], "test_quality": [None],
                          "speedup": [2.0], "compression": [3.0], "macs": [5e5],
                          "bytes": [1e4], "quant": ["int8"]})
    teacher = {"macs": 1e6, "bytes": 3e4, "val_quality": 1e-3}
    budgeted = StudyInfo("s", teacher, quality_bar=1.1e-3, budgets={"bytes": 16384})
    [line] = [t for t in metric_figure(table, budgeted, "bytes").data
              if t.name == "--max-bytes 16.0 KB"]
    assert list(line.x) == [16384, 16384]
    plain = StudyInfo("s", teacher, quality_bar=1.1e-3)
    assert not [t for t in metric_figure(table, plain, "bytes").data
                if str(t.name).startswith("--max-bytes")]
    assert not [t for t in metric_figure(table, budgeted, "macs").data  # not a per-clip count
                if str(t.name).startswith("--max-bytes")]
