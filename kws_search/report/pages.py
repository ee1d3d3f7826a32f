"""Reports of a study: a folder with the trials and the front as tables, figures, an index.

`write_report` reads a study (finished or still running) and writes a folder a person can
open: `trials.csv`/`.md` (every trial, every measurement), `front.csv`/`.md` (the feasible
Pareto front with test quality beside validation quality, to spot over-fitting of the
validation split), four figures as HTML (and PNG where kaleido works), and `index.html`.
The numbers come from `tables`, the figures from `figures` (both in this folder); this
module opens the study and writes the pages around them.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from kws_search.report.figures import (
    FIGURES,
    answer_figure,
    history_figure,
    metric_figure,
    tradeoff_figure,
    write_png,
)
from kws_search.report.tables import (
    CI_COLUMN,
    StudyInfo,
    answer,
    cross_text,
    curve_lines,
    curve_markdown,
    format_value,
    front_table,
    hypervolume_history,
    interval_text,
    study_info,
    to_markdown,
    trials_table,
)
from kws_search.report.wakeword import study_wakeword
from kws_search.search.progress import Progress, complete_text, progress_of
from kws_search.search.storage import load_study


@dataclass
class Report:
    """What `write_report` wrote, and the numbers the CLI prints."""

    folder: Path
    files: list[Path]
    figures: dict[str, go.Figure]
    trials: pd.DataFrame
    front: pd.DataFrame
    progress: Progress
    info: StudyInfo
    png_error: str | None = None
    notes: list[str] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=dict)  # tables.answer: the curve


def write_report(study_name: str, storage: str, out: Path | None = None,
                 png: bool = True, hours: float = 0.0, progress: bool = False) -> Report:
    """Write tables, figures and an index for a study into `out` (default reports/<study>);
    with `hours` > 0, also the teacher's and finalists' false accepts per hour on a stream of
    that length (`report.wakeword`)."""
    study = load_study(study_name, storage)
    folder = Path(out) if out is not None else Path("reports") / study_name
    folder.mkdir(parents=True, exist_ok=True)
    info = study_info(study)
    table = trials_table(study)
    front = front_table(table, info)
    files: list[Path] = []
    result = answer(study)
    if hours > 0:
        result["wakeword"] = study_wakeword(study, folder, hours, progress)
    for name, frame in (("trials", table), ("front", front)):
        frame.to_csv(folder / f"{name}.csv", index=False)
        (folder / f"{name}.md").write_text(_markdown_page(name, frame, info, result),
                                            encoding="utf-8")
        files += [folder / f"{name}.csv", folder / f"{name}.md"]
    (folder / "answer.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    files.append(folder / "answer.json")
    figures = {"quality_vs_macs": metric_figure(table, info, "macs"),
               "quality_vs_bytes": metric_figure(table, info, "bytes"),
               "speedup_vs_compression": tradeoff_figure(table, info),
               "hypervolume": history_figure(hypervolume_history(table, info.quality_bar), info),
               "answer": answer_figure(result, info)}
    for name, fig in figures.items():
        # One page per figure; they share one plotly.min.js in the folder (works offline).
        fig.write_html(folder / f"{name}.html", include_plotlyjs="directory")
        files.append(folder / f"{name}.html")
    png_error = None
    if png:
        written, png_error = write_png(figures, folder)
        files += written
    progress = progress_of(study)
    index = folder / "index.html"
    index.write_text(_index_html(info, progress, front, figures, files[:4], result),
                     encoding="utf-8")
    files.append(index)
    notes = [] if info.teacher else ["study has no teacher attributes: no teacher point"]
    return Report(folder, files, figures, table, front, progress, info, png_error, notes,
                  result)


def _index_html(info: StudyInfo, progress: Progress, front: pd.DataFrame,
                figures: Iterable[str], tables: Iterable[Path], result: dict[str, Any]) -> str:
    teacher = info.teacher
    summary = (f"{complete_text(progress)}, {progress.pruned} stopped early (pruned at a "
               f"rung), {progress.failed} failed, {progress.finals} finalists (trained to "
               f"convergence), {progress.running} "
               f"running; feasible front {progress.front}" + (
                   f"; best feasible speed-up {progress.best_speedup:.2f}x, compression "
                   f"{progress.best_compression:.2f}x" if progress.front else
                   " (no student within the bar yet)"))
    bar = f"{info.quality_bar:.4g}" if info.quality_bar is not None else "unknown"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>kws-search report: "
             f"{html.escape(info.name)}</title><style>body{{font-family:sans-serif;margin:2em}}"
             "table{border-collapse:collapse;font-size:0.9em}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:right}iframe{border:0;width:100%;height:720px}"
             "</style></head><body>",
             f"<h1>Study {html.escape(info.name)}</h1><p>{html.escape(summary)}</p>",
             f"<p>teacher: validation quality {format_value(teacher.get('val_quality'))}"
             f"{html.escape(_teacher_ci(info))}, test "
             f"{format_value(teacher.get('test_quality'))}, "
             f"{format_value(teacher.get('macs'))} MACs + "
             f"{format_value(teacher.get('frontend_macs'))} in its front end, "
             f"{format_value(teacher.get('bytes'))} bytes (+ "
             f"{format_value(teacher.get('frontend_bytes'))} of front-end tables), peak RAM "
             f"{format_value(teacher.get('peak_ram'))} bytes; speed-up "
             "counts the whole pipeline, front end included (model_speedup: the networks "
             f"alone); bar ({info.margin:g}x validation) "
             f"{bar}</p>{f'<p>{html.escape(_cross_note(info))}</p>' if info.teacher_cross else ''}"
             f"{f'<p>{html.escape(info.budget_text())}</p>' if info.budgets else ''}"
             "<p>tables: " + ", ".join(f"<a href='{p.name}'>{p.name}</a>" for p in tables)
             + "</p><h2>Feasible Pareto front (test quality beside validation)</h2>",
             "<div style='overflow-x:auto'>"
             + front.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")
             + "</div>" if not front.empty else "<p>no feasible student yet</p>",
             "<h2>The answer</h2><pre>" + html.escape("\n".join(curve_lines(result)))
             + "</pre><p>(answer.json holds the same numbers)</p>"]
    for name in figures:
        parts.append(f"<h2><a href='{name}.html'>{html.escape(FIGURES[name])}</a></h2>"
                     f"<iframe src='{name}.html' loading='lazy'></iframe>")
    return "\n".join(parts) + "</body></html>\n"


def _teacher_ci(info: StudyInfo) -> str:
    ci = interval_text(info.teacher.get("val_quality_lo"), info.teacher.get("val_quality_hi"))
    return f" ({CI_COLUMN} {ci})" if ci else ""


def _cross_note(info: StudyInfo) -> str:
    return (f"cross-engine set {info.cross_data or '(unknown folder)'} (other voices; recorded "
            f"only, never used to train or select): teacher {cross_text(info.teacher_cross)}")


def _markdown_page(name: str, frame: pd.DataFrame, info: StudyInfo,
                   result: dict[str, Any]) -> str:
    teacher = info.teacher
    head = (f"# {'Trials' if name == 'trials' else 'Feasible Pareto front'} of study "
            f"{info.name}\n\nteacher validation quality "
            f"{format_value(teacher.get('val_quality'))}{_teacher_ci(info)}, test "
            f"{format_value(teacher.get('test_quality'))}; bar ({info.margin:g}x validation) "
            f"{format_value(info.quality_bar)}\n\n")
    if info.teacher_cross:
        head += _cross_note(info) + "\n\n"
    if info.budgets:
        head += info.budget_text() + "\n\n"
    if name == "front":
        head += ("val_ratio and teacher_ratio: quality / the teacher's on validation (where the "
                 "search chose) and on test (clips no decision saw, with the paired 90% "
                 "interval); a teacher_ratio well above val_ratio means the search picked a "
                 "student that fit the validation split by luck. Test quality itself is not "
                 "comparable to validation's: the test split holds more keyword clips.\n\n")
    if name != "front":
        return head + (to_markdown(frame) if not frame.empty else "(none yet)\n")
    if frame.empty:
        closest = result["closest"]
        head += (f"No student is within the bar ({info.margin:g}x the teacher) yet" + (
            f"; the closest is trial {closest['trial']} at {closest['times_teacher']:.2f}x the "
            f"teacher (speed-up {closest['speedup']:.2f}x, compression "
            f"{closest['compression']:.2f}x)" if closest else "") + ".\n\n")
    else:
        head += to_markdown(frame) + "\n"
    return head + "## " + curve_markdown(result)
