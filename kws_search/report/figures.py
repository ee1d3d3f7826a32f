"""The report's plotly figures: quality against MACs or bytes, speed-up against compression,
and the feasible front's hypervolume over trials.

Apart from the tables because only these need plotly (and kaleido for PNG copies); each
figure reads the trials table, so the numbers shown are the numbers written to trials.csv.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from kws_search.report.tables import StudyInfo, format_value
from kws_search.search.attrs import MODEL_SPEEDUP, PRUNED_AT
from kws_search.search.budgets import OVER_BUDGET, show

# (report, speed-up, compression) people reached by hand (the course reports), relative to
# their own teachers.
HAND_MADE_RESULTS: tuple[tuple[str, float, float], ...] = (
    ("000", 10.1, 8.8), ("001", 9.65, 10.1), ("002", 10.0, 38.0), ("004", 10.9, 10.3))
TARGET = 10.0  # the task: 10x faster and 10x smaller
FIGURES = {"quality_vs_macs": "Quality vs MACs (Metric-FLOPs)",
           "quality_vs_bytes": "Quality vs size (Metric-Memory)",
           "speedup_vs_compression": "Network speed-up vs compression",
           "hypervolume": "Feasible front hypervolume over trials",
           "answer": "The answer: finalists' quality / teacher on test, 90% paired intervals"}
Y_CLIP = 4.0  # quality axis shows up to this many bars; zoom out for the rest


def _hover(rows: pd.DataFrame) -> list[str]:
    """Trial number, objectives and params, one line each, for plotly hover labels."""
    params = [c for c in rows.columns if c.startswith("params_")]
    texts = []
    for _, r in rows.iterrows():
        lines = [f"<b>trial {r['number']}</b> ({format_value(r['quant'])})",
                 f"quality {r['quality']:.3e} (test {format_value(r['test_quality'])})",
                 f"speed-up {r['speedup']:.2f}x, compression {r['compression']:.2f}x",
                 f"MACs {format_value(r['macs'])}, bytes {format_value(r['bytes'])}"]
        lines += [f"{c[len('params_'):]}={format_value(r[c])}" for c in params
                  if format_value(r[c])]
        texts.append("<br>".join(lines))
    return texts


def _quant_styles(done: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """A fixed colour and symbol per quantization mode, shared by all figures."""
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
    symbols = ("circle", "square", "diamond", "triangle-up", "cross", "x", "pentagon")
    modes = sorted(done["quant"].dropna().astype(str).unique())
    return {m: (palette[i % len(palette)], symbols[i % len(symbols)]) for i, m in enumerate(modes)}


def _complete(table: pd.DataFrame) -> pd.DataFrame:
    """The trained students: complete trials, less those that ended over a budget."""
    done = table[table["state"] == "COMPLETE"]
    if OVER_BUDGET in done.columns:
        done = done[done[OVER_BUDGET].isna() | (done[OVER_BUDGET] == "")]
    return done


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
    label = {"macs": "network MACs per 1 s clip (log; the front end's, counted in speed-up and "
                     "--max-macs, are apart)",
             "bytes": "stored size, bytes (log; the front end's tables apart)"}[x]
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
        _add_size_lines(fig, done, info, x, teacher_x)
    if info.quality_bar is not None:
        fig.add_hline(y=info.quality_bar, line_dash="dash", line_color="firebrick",
                      annotation_text=f"bar: {info.margin:g}x teacher = "
                                      f"{info.quality_bar:.3g}",
                      annotation_position="top left")
        if teacher_x:
            _add_hand_made(fig, x, teacher_x, info.quality_bar)
    title = f"{info.name}: {FIGURES['quality_vs_' + x]}"
    fig.update_layout(title=title, xaxis={"type": "log", "title": label},
                      yaxis={"title": "quality: FA/FR AUC on validation (lower is better)",
                             "rangemode": "tozero"},
                      template="plotly_white", legend={"itemsizing": "constant"})
    _clip_quality_axis(fig, done, info)
    return fig


def _add_size_lines(fig: go.Figure, done: pd.DataFrame, info: StudyInfo, x: str,
                    teacher_x: float) -> None:
    """Dotted lines at 10x the teacher's MACs or bytes and, on the bytes figure, at the
    study's --max-bytes."""
    top = max([*done["quality"].dropna(), info.teacher.get("val_quality") or 0.0,
               info.quality_bar or 0.0])
    if info.quality_bar:
        top = min(top, Y_CLIP * info.quality_bar)
    target = {"macs": f"{TARGET:g}x fewer network MACs", "bytes": f"{TARGET:g}x smaller"}[x]
    fig.add_trace(_reference_line([teacher_x / TARGET] * 2, [0.0, top], target))
    if x == "bytes" and info.budgets.get("bytes"):  # the device's: a line at its limit
        fig.add_trace(_reference_line([info.budgets["bytes"]] * 2, [0.0, top],
                                      f"--max-bytes {show(info.budgets['bytes'], 'bytes')}"))


def _add_hand_made(fig: go.Figure, x: str, teacher_x: float, bar: float) -> None:
    """The course reports' hand-made students at the bar (each within its own teacher's), at
    the teacher's MACs or bytes over the ratio they reported."""
    for i, (seed, speedup, compression) in enumerate(HAND_MADE_RESULTS):
        ratio = speedup if x == "macs" else compression
        fig.add_trace(go.Scatter(
            x=[teacher_x / ratio], y=[bar], mode="markers", name=f"seed {seed} (by hand)",
            marker={"symbol": "diamond-wide-open", "size": 14, "line": {"width": 2},
                    "color": ("#444", "#7f7f7f", "#17becf", "#bcbd22")[i]},
            hovertext=[f"seed {seed} by hand: {speedup}x speed-up, {compression}x "
                       "compression vs its own teacher, quality within its bar"],
            hoverinfo="text"))


def _clip_quality_axis(fig: go.Figure, done: pd.DataFrame, info: StudyInfo) -> None:
    """Keep diverged students (quality near 0.5) from squashing the region around the bar;
    never at the cost of most of the study (a small or early study sits above it)."""
    if not info.quality_bar or done.empty:
        return
    top = Y_CLIP * info.quality_bar
    hidden = int((done["quality"] > top).sum())
    if hidden and 2 * hidden <= len(done):
        fig.update_yaxes(range=[0, top])
        fig.update_layout(title=f"{fig.layout.title.text} ({hidden} trials above "
                                f"{Y_CLIP:g}x the bar not shown: autoscale to see them)")


def _stopped_trace(stopped: pd.DataFrame) -> go.Scatter:
    """Students stopped at a rung: their sizes are known, their quality is not final."""
    return go.Scatter(
        x=stopped["model_speedup"], y=stopped["compression"], mode="markers",
        name="stopped early (pruned at a rung)", hoverinfo="text",
        hovertext=[f"trial {n}: stopped at epoch {e:g}" for n, e in
                   zip(stopped["number"], stopped[PRUNED_AT], strict=True)],
        marker={"color": "lightgrey", "size": 5, "symbol": "x-thin",
                "line": {"color": "grey", "width": 1}})


def tradeoff_figure(table: pd.DataFrame, info: StudyInfo) -> go.Figure:
    """Network speed-up (the hand-made searches' measure, so their points sit on the axis)
    against compression, feasible coloured by quality, with the 10x/10x target."""
    done = _complete(table)
    ok = done[done["feasible"].astype(bool)]
    grey = done[~done["feasible"].astype(bool)]
    styles = _quant_styles(done)
    fig = go.Figure()
    stopped = table[table["state"] == "PRUNED"].dropna(subset=["model_speedup"])
    if not stopped.empty:
        fig.add_trace(_stopped_trace(stopped))
    fig.add_trace(go.Scatter(x=grey["model_speedup"], y=grey["compression"], mode="markers",
                             name="infeasible (above the bar)", hovertext=_hover(grey),
                             hoverinfo="text", marker={"color": "lightgrey", "size": 8,
                                                       "line": {"color": "grey", "width": 1}}))
    fig.add_trace(go.Scatter(
        x=ok["model_speedup"], y=ok["compression"], mode="markers", name="feasible (symbol: quant)",
        hovertext=_hover(ok), hoverinfo="text",
        marker={"color": ok["quality"], "colorscale": "Viridis", "size": 11,
                "symbol": [styles[str(q)][1] for q in ok["quant"]],
                "colorbar": {"title": "quality"}, "cmin": 0, "cmax": info.quality_bar}))
    fig.add_trace(_front_rings(done[done["on_front"]], MODEL_SPEEDUP, "compression"))
    fig.add_trace(go.Scatter(
        x=[s for _, s, _ in HAND_MADE_RESULTS], y=[c for _, _, c in HAND_MADE_RESULTS],
        mode="markers+text", name="seeds (by hand)", text=[s for s, _, _ in HAND_MADE_RESULTS],
        textposition="top right", hoverinfo="text",
        hovertext=[f"seed {s} by hand: {x}x, {y}x" for s, x, y in HAND_MADE_RESULTS],
        marker={"symbol": "diamond-wide-open", "size": 14, "color": "#444",
                "line": {"width": 2}}))
    fig.add_trace(go.Scatter(x=[1], y=[1], mode="markers+text", name="teacher",
                             text=["teacher"], textposition="top center",
                             marker={"symbol": "star", "size": 18, "color": "gold",
                                     "line": {"color": "black", "width": 1}}))
    xs = [1.0, TARGET, *done["model_speedup"].dropna(), *(s for _, s, _ in HAND_MADE_RESULTS)]
    ys = [1.0, TARGET, *done["compression"].dropna(), *(c for _, _, c in HAND_MADE_RESULTS)]
    fig.add_trace(_reference_line([TARGET] * 2, [min(ys), max(ys)],
                                  f"{TARGET:g}x network speed-up"))
    fig.add_trace(_reference_line([min(xs), max(xs)], [TARGET] * 2,
                                  f"{TARGET:g}x compression", at_start=True))
    fig.update_layout(title=f"{info.name}: {FIGURES['speedup_vs_compression']}",
                      xaxis={"type": "log", "title": "network speed-up: teacher / student network "
                                                     "MACs (the hand-made searches' measure)"},
                      yaxis={"type": "log", "title": "compression: teacher bytes / student bytes"},
                      template="plotly_white",
                      legend={"orientation": "h", "y": -0.15, "itemsizing": "constant"})
    return fig


def answer_figure(result: dict, info: StudyInfo) -> go.Figure:
    """Each finalist's quality over the teacher's on the test split with its paired 90%
    interval as error bars, against network speed-up and compression, with the levels of the
    curve: a student counts at a level when its whole bar is below the line."""
    judged = result.get("judged") or []
    fig = go.Figure()
    for x, name, symbol in ((MODEL_SPEEDUP, "network speed-up", "circle"),
                            ("compression", "compression", "diamond")):
        rows = [j for j in judged if j.get(x) is not None and j.get("ratio_hi") is not None]
        fig.add_trace(go.Scatter(
            x=[j[x] for j in rows], y=[j["ratio"] for j in rows], mode="markers+text",
            name=f"against {name}", text=[str(j["trial"]) for j in rows],
            textposition="middle right", marker={"symbol": symbol, "size": 10},
            error_y={"type": "data", "symmetric": False,
                     "array": [j["ratio_hi"] - j["ratio"] for j in rows],
                     "arrayminus": [j["ratio"] - j["ratio_lo"] for j in rows]},
            hovertext=[f"trial {j['trial']} (finalist of {j['final_of']}): "
                       f"{j['ratio']:.2f}x the teacher (90% CI {j['ratio_lo']:.2f}-"
                       f"{j['ratio_hi']:.2f}), {name} {j[x]:.2f}x" for j in rows],
            hoverinfo="text"))
    for level in result.get("levels") or []:
        fig.add_hline(y=level["level"], line_dash="dot", line_color="grey",
                      annotation_text=f"{level['level']:g}x", annotation_position="right")
    fig.add_hline(y=1.0, line_color="gold", annotation_text="teacher",
                  annotation_position="left")
    clips = result.get("test_clips")
    fig.update_layout(
        title=f"{info.name}: {FIGURES['answer']}"
              + (f" ({clips} test clips)" if clips else " (no finalists judged on test yet)"),
        xaxis={"type": "log", "title": "network speed-up or compression: teacher / student"},
        yaxis={"title": "quality / teacher's on the test split (lower is better)",
               "rangemode": "tozero"},
        template="plotly_white")
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


def write_png(figures: dict[str, go.Figure], folder: Path) -> tuple[list[Path], str | None]:
    """PNG copies through kaleido (needs Chrome); a failure is returned as one line (the
    caller says it once), not raised."""
    import plotly.io as pio

    paths = [folder / f"{name}.png" for name in figures]
    try:
        pio.write_images(list(figures.values()), paths, width=1200, height=750)
    except Exception as exc:  # kaleido raises many kinds when Chrome is missing or breaks
        return [], " ".join(str(exc).split()) or type(exc).__name__
    return paths, None
