"""Reports of a study: the trials and the front as tables, plotly figures, an index page.

`write_report` reads a study (finished or still running) and writes a folder a person can
open: `trials.csv`/`.md` (every trial, every measurement), `front.csv`/`.md` (the feasible
Pareto front with test quality beside validation quality, to spot over-fitting of the
validation split), four figures as HTML (and PNG where kaleido works), and `index.html`.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from kws_search.objective import CONSTRAINTS_KEY, OBJECTIVES, QUALITY_MARGIN, feasible
from kws_search.study import (
    Progress,
    StudyError,
    feasible_front,
    masked_url,
    open_storage,
    summarize,
)

logger = logging.getLogger(__name__)

# (seed, speed-up, compression) the seeds reached by hand, relative to their own teachers.
SEED_RESULTS: tuple[tuple[str, float, float], ...] = (
    ("000", 10.1, 8.8), ("001", 9.65, 10.1), ("002", 10.0, 38.0), ("004", 10.9, 10.3))
TARGET = 10.0  # the task: 10x faster and 10x smaller
MEASURES = ("val_quality", "val_quality_lo", "val_quality_hi", "test_quality",
            "float_val_quality", "best_epoch", "macs", "bytes", "state_dict_bytes", "params",
            "latency_ms", "latency_speedup", "quant", "quantized_modules", "train_seconds",
            "checkpoint_artifact")
# Scores on the `run --cross-data` folder (other voices), recorded only; absent without it.
CROSS_MEASURES = ("cross_quality", "cross_quality_norm", "cross_detected", "cross_fa")
CI_COLUMN = "val 90% CI"  # bootstrap interval of val_quality, as `lo–hi`
FIGURES = {"quality_vs_macs": "Quality vs MACs (Metric-FLOPs)",
           "quality_vs_bytes": "Quality vs size (Metric-Memory)",
           "speedup_vs_compression": "Speed-up vs compression",
           "hypervolume": "Feasible front hypervolume over trials"}
Y_CLIP = 4.0  # quality axis shows up to this many bars; zoom out for the rest


class ReportError(StudyError):
    """A study that cannot be reported (missing, empty, not a kws-search study)."""


@dataclass(frozen=True)
class StudyInfo:
    """What the figures need besides the trials: study name, teacher numbers, the bar."""

    name: str
    teacher: dict[str, Any]
    quality_bar: float | None
    teacher_cross: dict[str, Any] = field(default_factory=dict)  # empty without --cross-data
    cross_data: str | None = None


@dataclass
class Report:
    """What `write_report` wrote, and the numbers the CLI prints."""

    folder: Path
    files: list[Path]
    figures: dict[str, go.Figure]
    trials: pd.DataFrame
    front: pd.DataFrame
    progress: Progress
    png_error: str | None = None
    notes: list[str] = field(default_factory=list)


def load_study(study_name: str, storage: str, require_trials: bool = True) -> optuna.Study:
    """Open an existing kws-search study read-only; a clear error if it is missing or empty."""
    shown = masked_url(storage)  # password masked
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).is_file():
        raise ReportError(f"no study database at {shown} (study {study_name!r}); run "
                          f"`kws-search run --study {study_name}` first or pass --storage")
    rdb = open_storage(storage, heartbeat=False)
    names = optuna.get_all_study_names(storage=rdb)
    if study_name not in names:
        known = f"; studies there: {', '.join(sorted(names))}" if names else ""
        raise ReportError(f"no study {study_name!r} in {shown}{known}")
    study = optuna.load_study(study_name=study_name, storage=rdb)
    if len(study.directions) != len(OBJECTIVES):
        raise ReportError(f"study {study_name!r} in {shown} is not a kws-search study "
                          f"({len(study.directions)} objectives, expected {len(OBJECTIVES)})")
    if require_trials and not study.get_trials(deepcopy=False):
        raise ReportError(f"study {study_name!r} in {shown} has no trials yet; run "
                          f"`kws-search run --study {study_name}` first")
    return study


def study_info(study: optuna.Study) -> StudyInfo:
    attrs = study.user_attrs
    return StudyInfo(study.study_name, dict(attrs.get("teacher") or {}), attrs.get("quality_bar"),
                     dict(attrs.get("teacher_cross") or {}), attrs.get("cross_data"))


def interval_text(lo: float | None, hi: float | None, spec: str = ".3g") -> str:
    """`lo–hi` of a quality interval, or "" where it was not measured (older trials)."""
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return ""
    return f"{lo:{spec}}–{hi:{spec}}"


def cross_text(numbers: dict[str, Any]) -> str:
    """One line of a model's cross-engine numbers (`cross_summary` keys)."""
    return (f"quality {numbers['quality']:.3g} (normalized {numbers['quality_norm']:.3g}), "
            f"detected {numbers['detected']:.1%} of keyword clips, false alarms "
            f"{numbers['fa']:.2%}")


def trials_table(trials: Sequence[FrozenTrial]) -> pd.DataFrame:
    """One row per trial: state, flags, objectives, constraint, measurements, params, failure."""
    front = {t.number for t in feasible_front(list(trials))}
    rows = []
    for t in trials:
        done = t.state == TrialState.COMPLETE and t.values is not None
        row: dict[str, Any] = {"number": t.number, "state": t.state.name,
                               "feasible": done and feasible(t), "on_front": t.number in front}
        row.update(zip(OBJECTIVES, t.values if done else [math.nan] * len(OBJECTIVES),
                       strict=True))
        if "pruned_at_epoch" in t.user_attrs:  # stopped at a rung: its size is known
            row.update(speedup=t.user_attrs["speedup"], compression=t.user_attrs["compression"])
        constraints = t.system_attrs.get(CONSTRAINTS_KEY)
        row["constraint"] = constraints[0] if constraints else math.nan
        row.update({k: v for k, v in t.user_attrs.items()
                    if k not in OBJECTIVES and k != "fail_reason"})
        row.update({f"params_{k}": v for k, v in t.params.items()})
        row["fail_reason"] = t.user_attrs.get("fail_reason", "")
        row["datetime_start"] = t.datetime_start
        row["duration_s"] = t.duration.total_seconds() if t.duration else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    measures = list(MEASURES)
    at = measures.index("test_quality") + 1
    measures[at:at] = [c for c in CROSS_MEASURES if c in table.columns]
    head = ["number", "state", "feasible", "on_front", *OBJECTIVES, "constraint", *measures]
    tail = ["fail_reason", "datetime_start", "duration_s"]
    rest = sorted(c for c in table.columns if c not in head + tail)
    extra = [c for c in rest if not c.startswith("params_")]
    params = [c for c in rest if c.startswith("params_")]
    return table.reindex(columns=head + extra + params + tail)


def front_table(table: pd.DataFrame, info: StudyInfo) -> pd.DataFrame:
    """The feasible front with test quality beside validation quality (over-fitting check),
    the validation interval, and cross-engine quality where the study recorded it."""
    front = table[table["on_front"]].sort_values("quality").copy()
    front[CI_COLUMN] = [interval_text(lo, hi) for lo, hi in
                        zip(front["val_quality_lo"], front["val_quality_hi"], strict=True)]
    val = front["val_quality"].astype(float)
    test = front["test_quality"].astype(float)
    front["test_val_ratio"] = (test / val.where(val > 0)).astype(float)
    teacher_test = info.teacher.get("test_quality")
    front["test_within_bar"] = (test <= QUALITY_MARGIN * teacher_test
                                if teacher_test is not None else pd.NA)
    params = [c for c in table.columns if c.startswith("params_")]
    cross = [c for c in ("cross_quality", "cross_detected") if c in table.columns]
    columns = ["number", "quant", "val_quality", CI_COLUMN, "test_quality", "test_val_ratio",
               "test_within_bar", *cross, "speedup", "compression", "latency_ms",
               "latency_speedup", "params", "macs", "bytes", *params]
    return front[columns].reset_index(drop=True)


def hypervolume(gains: Iterable[Sequence[float]]) -> float:
    """Exact volume of the union of boxes [0, g] for 3-D gain vectors (larger is better).

    Slices along the first axis and sweeps a 2-D staircase in each slab: O(n^2 log n), fine
    for a front of a few hundred points.
    """
    points = [tuple(p) for p in gains if all(x > 0 for x in p)]
    xs = sorted({p[0] for p in points}, reverse=True)
    total = 0.0
    for i, x in enumerate(xs):
        below = xs[i + 1] if i + 1 < len(xs) else 0.0
        total += (x - below) * _staircase_area([(p[1], p[2]) for p in points if p[0] >= x])
    return total


def _staircase_area(points: list[tuple[float, float]]) -> float:
    area, reached = 0.0, 0.0
    for y, z in sorted(points, reverse=True):
        if z > reached:
            area += y * (z - reached)
            reached = z
    return area


def gains(quality: float, speedup: float, compression: float,
          bar: float) -> tuple[float, float, float]:
    """Objectives against the reference point (bar, 1x, 1x), each as a gain >= 0 when better."""
    return 1.0 - quality / bar, speedup - 1.0, compression - 1.0


def hypervolume_history(table: pd.DataFrame, bar: float | None) -> pd.DataFrame:
    """Hypervolume and size of the feasible front after each completed trial (by number)."""
    done = table[table["state"] == "COMPLETE"].sort_values("number")
    front: list[tuple[float, float, float]] = []
    rows, volume = [], 0.0
    for row in done.itertuples(index=False):
        if bar and row.feasible:
            g = gains(row.quality, row.speedup, row.compression, bar)
            if not any(_covers(f, g) for f in front):
                front = [f for f in front if not _covers(g, f)] + [g]
                volume = hypervolume(front)
        rows.append({"number": row.number, "hypervolume": volume, "front_size": len(front)})
    return pd.DataFrame(rows, columns=["number", "hypervolume", "front_size"])


def _covers(a: Sequence[float], b: Sequence[float]) -> bool:
    """`a` is at least as good as `b` in every gain."""
    return all(x >= y for x, y in zip(a, b, strict=True))


def _fmt(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _hover(rows: pd.DataFrame) -> list[str]:
    """Trial number, objectives and params, one line each, for plotly hover labels."""
    params = [c for c in rows.columns if c.startswith("params_")]
    texts = []
    for _, r in rows.iterrows():
        lines = [f"<b>trial {r['number']}</b> ({_fmt(r['quant'])})",
                 f"quality {r['quality']:.3e} (test {_fmt(r['test_quality'])})",
                 f"speed-up {r['speedup']:.2f}x, compression {r['compression']:.2f}x",
                 f"MACs {_fmt(r['macs'])}, bytes {_fmt(r['bytes'])}"]
        lines += [f"{c[len('params_'):]}={_fmt(r[c])}" for c in params if _fmt(r[c])]
        texts.append("<br>".join(lines))
    return texts


def _quant_styles(done: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """A fixed colour and symbol per quantization mode, shared by all figures."""
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
    symbols = ("circle", "square", "diamond", "triangle-up", "cross", "x", "pentagon")
    modes = sorted(done["quant"].dropna().astype(str).unique())
    return {m: (palette[i % len(palette)], symbols[i % len(symbols)]) for i, m in enumerate(modes)}


def _complete(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["state"] == "COMPLETE"]


def _front_rings(front: pd.DataFrame, x: str, y: str) -> go.Scatter:
    return go.Scatter(x=front[x], y=front[y], mode="markers", name="feasible Pareto front",
                      marker={"symbol": "circle-open", "size": 17, "color": "black",
                              "line": {"width": 2}},
                      hovertext=_hover(front), hoverinfo="text")


def _reference_line(x: list[float], y: list[float], label: str,
                    at_start: bool = False) -> go.Scatter:
    """A dotted target line with a label at one end; a trace, so log axes place it right."""
    text, where = ([label, ""], "top right") if at_start else (["", label], "top left")
    return go.Scatter(x=x, y=y, mode="lines+text", text=text, textposition=where,
                      line={"dash": "dot", "color": "green", "width": 1.5}, showlegend=False,
                      hoverinfo="skip", name=label)


def metric_figure(table: pd.DataFrame, info: StudyInfo, x: str = "macs") -> go.Figure:
    """Validation quality against MACs or stored bytes, log x: teacher, bar, seeds, front."""
    label = {"macs": "MACs per 1 s clip (log)", "bytes": "stored size, bytes (log)"}[x]
    target = {"macs": f"{TARGET:g}x fewer MACs", "bytes": f"{TARGET:g}x smaller"}[x]
    done = _complete(table)
    fig = go.Figure()
    grey = done[~done["feasible"].astype(bool)]
    fig.add_trace(go.Scatter(x=grey[x], y=grey["quality"], mode="markers",
                             name="infeasible (above the bar)", hovertext=_hover(grey),
                             hoverinfo="text", marker={"color": "lightgrey", "size": 8,
                                                       "line": {"color": "grey", "width": 1}}))
    for mode, (colour, symbol) in _quant_styles(done).items():
        part = done[done["feasible"].astype(bool) & (done["quant"].astype(str) == mode)]
        fig.add_trace(go.Scatter(x=part[x], y=part["quality"], mode="markers",
                                 name=f"feasible, quant {mode}", hovertext=_hover(part),
                                 hoverinfo="text",
                                 marker={"color": colour, "symbol": symbol, "size": 9}))
    fig.add_trace(_front_rings(done[done["on_front"]], x, "quality"))
    teacher_x = info.teacher.get(x)
    if teacher_x:
        fig.add_trace(go.Scatter(
            x=[teacher_x], y=[info.teacher.get("val_quality")], mode="markers+text",
            name="teacher", text=["teacher"], textposition="top center",
            marker={"symbol": "star", "size": 18, "color": "gold",
                    "line": {"color": "black", "width": 1}},
            hovertext=[f"teacher: {x} {teacher_x}, quality {info.teacher.get('val_quality')}"],
            hoverinfo="text"))
        top = max([*done["quality"].dropna(), info.teacher.get("val_quality") or 0.0,
                   info.quality_bar or 0.0])
        if info.quality_bar:
            top = min(top, Y_CLIP * info.quality_bar)
        fig.add_trace(_reference_line([teacher_x / TARGET] * 2, [0.0, top], target))
    if info.quality_bar is not None:
        fig.add_hline(y=info.quality_bar, line_dash="dash", line_color="firebrick",
                      annotation_text=f"bar: {QUALITY_MARGIN:g}x teacher = "
                                      f"{info.quality_bar:.3g}",
                      annotation_position="top left")
        if teacher_x:
            for i, (seed, speedup, compression) in enumerate(SEED_RESULTS):
                ratio = speedup if x == "macs" else compression
                fig.add_trace(go.Scatter(
                    x=[teacher_x / ratio], y=[info.quality_bar], mode="markers",
                    name=f"seed {seed} (by hand)",
                    marker={"symbol": "diamond-wide-open", "size": 14, "line": {"width": 2},
                            "color": ("#444", "#7f7f7f", "#17becf", "#bcbd22")[i]},
                    hovertext=[f"seed {seed} by hand: {speedup}x speed-up, {compression}x "
                               "compression vs its own teacher, quality within its bar"],
                    hoverinfo="text"))
    title = f"{info.name}: {FIGURES['quality_vs_' + x]}"
    fig.update_layout(title=title, xaxis={"type": "log", "title": label},
                      yaxis={"title": "quality: FA/FR AUC on validation (lower is better)",
                             "rangemode": "tozero"},
                      template="plotly_white", legend={"itemsizing": "constant"})
    _clip_quality_axis(fig, done, info)
    return fig


def _clip_quality_axis(fig: go.Figure, done: pd.DataFrame, info: StudyInfo) -> None:
    """Keep diverged students (quality near 0.5) from squashing the region around the bar."""
    if not info.quality_bar or done.empty:
        return
    top = Y_CLIP * info.quality_bar
    hidden = int((done["quality"] > top).sum())
    if hidden:
        fig.update_yaxes(range=[0, top])
        fig.update_layout(title=f"{fig.layout.title.text} ({hidden} trials above "
                                f"{Y_CLIP:g}x the bar not shown: autoscale to see them)")


def tradeoff_figure(table: pd.DataFrame, info: StudyInfo) -> go.Figure:
    """Speed-up against compression, feasible coloured by quality, with the 10x/10x target."""
    done = _complete(table)
    ok = done[done["feasible"].astype(bool)]
    grey = done[~done["feasible"].astype(bool)]
    styles = _quant_styles(done)
    fig = go.Figure()
    stopped = table[table["state"] == "PRUNED"].dropna(subset=["speedup"])
    if not stopped.empty:
        fig.add_trace(go.Scatter(
            x=stopped["speedup"], y=stopped["compression"], mode="markers",
            name="stopped early (pruned at a rung)", hoverinfo="text",
            hovertext=[f"trial {n}: stopped at epoch {e:g}" for n, e in
                       zip(stopped["number"], stopped["pruned_at_epoch"], strict=True)],
            marker={"color": "lightgrey", "size": 5, "symbol": "x-thin",
                    "line": {"color": "grey", "width": 1}}))
    fig.add_trace(go.Scatter(x=grey["speedup"], y=grey["compression"], mode="markers",
                             name="infeasible (above the bar)", hovertext=_hover(grey),
                             hoverinfo="text", marker={"color": "lightgrey", "size": 8,
                                                       "line": {"color": "grey", "width": 1}}))
    fig.add_trace(go.Scatter(
        x=ok["speedup"], y=ok["compression"], mode="markers", name="feasible (symbol: quant)",
        hovertext=_hover(ok), hoverinfo="text",
        marker={"color": ok["quality"], "colorscale": "Viridis", "size": 11,
                "symbol": [styles[str(q)][1] for q in ok["quant"]],
                "colorbar": {"title": "quality"}, "cmin": 0, "cmax": info.quality_bar}))
    fig.add_trace(_front_rings(done[done["on_front"]], "speedup", "compression"))
    fig.add_trace(go.Scatter(
        x=[s for _, s, _ in SEED_RESULTS], y=[c for _, _, c in SEED_RESULTS],
        mode="markers+text", name="seeds (by hand)", text=[s for s, _, _ in SEED_RESULTS],
        textposition="top right", hoverinfo="text",
        hovertext=[f"seed {s} by hand: {x}x, {y}x" for s, x, y in SEED_RESULTS],
        marker={"symbol": "diamond-wide-open", "size": 14, "color": "#444",
                "line": {"width": 2}}))
    fig.add_trace(go.Scatter(x=[1], y=[1], mode="markers+text", name="teacher",
                             text=["teacher"], textposition="top center",
                             marker={"symbol": "star", "size": 18, "color": "gold",
                                     "line": {"color": "black", "width": 1}}))
    xs = [1.0, TARGET, *done["speedup"].dropna(), *(s for _, s, _ in SEED_RESULTS)]
    ys = [1.0, TARGET, *done["compression"].dropna(), *(c for _, _, c in SEED_RESULTS)]
    fig.add_trace(_reference_line([TARGET] * 2, [min(ys), max(ys)], f"{TARGET:g}x speed-up"))
    fig.add_trace(_reference_line([min(xs), max(xs)], [TARGET] * 2,
                                  f"{TARGET:g}x compression", at_start=True))
    fig.update_layout(title=f"{info.name}: {FIGURES['speedup_vs_compression']}",
                      xaxis={"type": "log", "title": "speed-up: teacher MACs / student MACs"},
                      yaxis={"type": "log", "title": "compression: teacher bytes / student bytes"},
                      template="plotly_white",
                      legend={"orientation": "h", "y": -0.15, "itemsizing": "constant"})
    return fig


def history_figure(history: pd.DataFrame, info: StudyInfo) -> go.Figure:
    """Hypervolume of the feasible front (reference: bar, 1x, 1x) after each completed trial."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=history["number"], y=history["hypervolume"], mode="lines+markers",
                             line_shape="hv", name="hypervolume"))
    fig.add_trace(go.Scatter(x=history["number"], y=history["front_size"], mode="lines",
                             line={"shape": "hv", "dash": "dot"}, name="front size",
                             yaxis="y2"))
    fig.update_layout(
        title=f"{info.name}: {FIGURES['hypervolume']}", template="plotly_white",
        xaxis={"title": "trial number (completed trials)"},
        yaxis={"title": "hypervolume of (1 - quality/bar) x (speed-up - 1) x (compression - 1)",
               "rangemode": "tozero"},
        yaxis2={"title": "feasible front size", "overlaying": "y", "side": "right",
                "rangemode": "tozero", "tickmode": "linear", "tick0": 0,
                "dtick": max(1, math.ceil(max(history["front_size"], default=0) / 8)),
                "showgrid": False},
        legend={"x": 0.01, "y": 0.99})
    return fig


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' own needs `tabulate`); numbers right-aligned."""
    def cell(value: Any) -> str:
        return _fmt(value).replace("|", "\\|").replace("\n", " ")

    numeric = [pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(
        table[c]) for c in table.columns]
    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _write_png(figures: dict[str, go.Figure], folder: Path) -> tuple[list[Path], str | None]:
    """PNG copies through kaleido (needs Chrome); a failure is logged, not raised."""
    import plotly.io as pio

    paths = [folder / f"{name}.png" for name in figures]
    try:
        pio.write_images(list(figures.values()), paths, width=1200, height=750)
    except Exception as exc:  # kaleido raises many kinds when Chrome is missing or breaks
        message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        logger.warning("PNG export skipped (%s); the HTML figures are complete", message)
        return [], message
    return paths, None


def _index_html(info: StudyInfo, progress: Progress, front: pd.DataFrame,
                figures: Iterable[str], tables: Iterable[Path]) -> str:
    teacher = info.teacher
    summary = (f"{progress.complete} complete, {progress.pruned} stopped early (pruned at a "
               f"rung), {progress.failed} failed, {progress.running} "
               f"running; feasible front {progress.front}; best feasible speed-up "
               f"{progress.best_speedup:.2f}x, compression {progress.best_compression:.2f}x")
    bar = f"{info.quality_bar:.4g}" if info.quality_bar is not None else "unknown"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>kws-search report: "
             f"{html.escape(info.name)}</title><style>body{{font-family:sans-serif;margin:2em}}"
             "table{border-collapse:collapse;font-size:0.9em}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:right}iframe{border:0;width:100%;height:720px}"
             "</style></head><body>",
             f"<h1>Study {html.escape(info.name)}</h1><p>{html.escape(summary)}</p>",
             f"<p>teacher: validation quality {_fmt(teacher.get('val_quality'))}"
             f"{html.escape(_teacher_ci(info))}, test "
             f"{_fmt(teacher.get('test_quality'))}, {_fmt(teacher.get('macs'))} MACs, "
             f"{_fmt(teacher.get('bytes'))} bytes; bar ({QUALITY_MARGIN:g}x validation) {bar}"
             f"</p>{f'<p>{html.escape(_cross_note(info))}</p>' if info.teacher_cross else ''}"
             "<p>tables: " + ", ".join(f"<a href='{p.name}'>{p.name}</a>" for p in tables)
             + "</p><h2>Feasible Pareto front (test quality beside validation)</h2>",
             "<div style='overflow-x:auto'>"
             + front.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")
             + "</div>" if not front.empty else "<p>no feasible student yet</p>"]
    for name in figures:
        parts.append(f"<h2><a href='{name}.html'>{html.escape(FIGURES[name])}</a></h2>"
                     f"<iframe src='{name}.html' loading='lazy'></iframe>")
    return "\n".join(parts) + "</body></html>\n"


def write_report(study_name: str, storage: str, out: Path | None = None,
                 png: bool = True) -> Report:
    """Write tables, figures and an index for a study into `out` (default reports/<study>)."""
    study = load_study(study_name, storage)
    folder = Path(out) if out is not None else Path("reports") / study_name
    folder.mkdir(parents=True, exist_ok=True)
    info = study_info(study)
    trials = study.get_trials(deepcopy=False)
    table = trials_table(trials)
    front = front_table(table, info)
    files: list[Path] = []
    for name, frame in (("trials", table), ("front", front)):
        frame.to_csv(folder / f"{name}.csv", index=False)
        (folder / f"{name}.md").write_text(_markdown_page(name, frame, info),
                                            encoding="utf-8")
        files += [folder / f"{name}.csv", folder / f"{name}.md"]
    figures = {"quality_vs_macs": metric_figure(table, info, "macs"),
               "quality_vs_bytes": metric_figure(table, info, "bytes"),
               "speedup_vs_compression": tradeoff_figure(table, info),
               "hypervolume": history_figure(hypervolume_history(table, info.quality_bar), info)}
    for name, fig in figures.items():
        # One page per figure; they share one plotly.min.js in the folder (works offline).
        fig.write_html(folder / f"{name}.html", include_plotlyjs="directory")
        files.append(folder / f"{name}.html")
    png_error = None
    if png:
        written, png_error = _write_png(figures, folder)
        files += written
    progress = summarize(study)
    index = folder / "index.html"
    index.write_text(_index_html(info, progress, front, figures, files[:4]),
                     encoding="utf-8")
    files.append(index)
    notes = [] if info.teacher else ["study has no teacher attributes: no teacher point"]
    return Report(folder, files, figures, table, front, progress, png_error, notes)


def _teacher_ci(info: StudyInfo) -> str:
    ci = interval_text(info.teacher.get("val_quality_lo"), info.teacher.get("val_quality_hi"))
    return f" ({CI_COLUMN} {ci})" if ci else ""


def _cross_note(info: StudyInfo) -> str:
    return (f"cross-engine set {info.cross_data or '(unknown folder)'} (other voices; recorded "
            f"only, never used to train or select): teacher {cross_text(info.teacher_cross)}")


def _markdown_page(name: str, frame: pd.DataFrame, info: StudyInfo) -> str:
    teacher = info.teacher
    head = (f"# {'Trials' if name == 'trials' else 'Feasible Pareto front'} of study "
            f"{info.name}\n\nteacher validation quality {_fmt(teacher.get('val_quality'))}"
            f"{_teacher_ci(info)}, test {_fmt(teacher.get('test_quality'))}; bar "
            f"({QUALITY_MARGIN:g}x validation) {_fmt(info.quality_bar)}\n\n")
    if info.teacher_cross:
        head += _cross_note(info) + "\n\n"
    if name == "front":
        head += ("test_val_ratio = test_quality / val_quality: well above 1 means the search "
                 "picked students that fit the validation split by luck.\n\n")
    return head + (to_markdown(frame) if not frame.empty else "(none yet)\n")
