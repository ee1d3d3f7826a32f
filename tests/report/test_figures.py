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
