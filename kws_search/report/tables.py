"""The report's numbers: trial and front tables, Markdown, interval text, hypervolume.

Kept apart from the figures and pages so the CLI (`run` prints the front) and the benchmark
(hypervolume against wall time) can use these numbers without plotly or a report folder.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from kws_search.options import QUALITY_MARGIN
from kws_search.search.answer import curve, front_pool, pareto_front, ratio
from kws_search.search.attrs import (
    BY_ENGINE,
    CHECKPOINT_ARTIFACT,
    CONSTRAINTS_KEY,
    FAIL_REASON,
    MODEL_SPEEDUP,
    OBJECTIVES,
    PRUNED_AT,
    RATIO,
    RATIO_HI,
    RATIO_LO,
    TEACHER,
    TEST_QUALITY,
    TRAIN_SECONDS,
    TRAINED_EPOCHS,
    TRAINED_SAMPLES,
    feasible,
    study_teacher,
)
from kws_search.search.budgets import LIMITS, OVER_BUDGET, show
from kws_search.search.fidelity import is_final

MEASURES = ("stage", "final_of", TRAINED_EPOCHS, TRAINED_SAMPLES,
            "val_quality", "val_quality_lo", "val_quality_hi", TEST_QUALITY, RATIO, RATIO_LO,
            RATIO_HI,
            "float_val_quality", "best_epoch", "macs", "frontend_macs", MODEL_SPEEDUP,
            "bytes", "frontend_bytes", "state_dict_bytes", "peak_ram", "macs_per_second",
            OVER_BUDGET, "params", "latency_ms",
            "latency_speedup", "quant", "quantized_modules", TRAIN_SECONDS,
            CHECKPOINT_ARTIFACT)
# Scores on the `run --cross-data` folder (other voices), recorded only; absent without it.
CROSS_MEASURES = ("cross_quality", "cross_quality_norm", "cross_detected", "cross_fa")
CI_COLUMN = "val 90% CI"  # bootstrap interval of val_quality, as `lo–hi`
VAL_RATIO = "val_ratio"  # validation quality / the teacher's: what the search chose on
RATIO_COLUMN = "ratio 90% CI"  # paired bootstrap interval of teacher_ratio (test), `lo–hi`


@dataclass(frozen=True)
class StudyInfo:
    """What the tables and figures need besides the trials: study name, teacher numbers, bar."""

    name: str
    teacher: dict[str, Any]
    quality_bar: float | None
    teacher_cross: dict[str, Any] = field(default_factory=dict)  # empty without --cross-data
    cross_data: str | None = None
    margin: float = QUALITY_MARGIN  # the bar / the teacher's validation quality
    budgets: dict[str, float] = field(default_factory=dict)  # `Budgets.to_dict()`; {}: none

    def budget_text(self) -> str:
        """'budgets: --max-bytes 27.5 KB (teacher 275.2 KB), ...', or '' without budgets."""
        if not self.budgets:
            return ""
        parts = []
        for name, limit in self.budgets.items():
            stat, option, kind = LIMITS[name]
            teacher = self.teacher.get(stat)
            parts.append(f"{option} {show(limit, kind)}" + (
                f" (teacher {show(teacher, kind)})" if teacher is not None else ""))
        return ("budgets: " + ", ".join(parts) + "; students over one end untrained "
                f"(`{OVER_BUDGET}`)")


def study_info(study: optuna.Study) -> StudyInfo:
    """The teacher, bar and cross-engine numbers `run` recorded as study attributes."""
    attrs = study.user_attrs
    return StudyInfo(study.study_name, dict(attrs.get(TEACHER) or {}), attrs.get("quality_bar"),
                     dict(attrs.get("teacher_cross") or {}), attrs.get("cross_data"),
                     float(attrs.get("quality_margin", QUALITY_MARGIN)),
                     dict(attrs.get("budgets") or {}))


def format_value(value: Any) -> str:
    """A table cell: blank where missing, floats to 4 significant digits."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


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


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: state, flags, objectives, constraint, measurements, params, failure.

    `on_front` is Optuna's own Pareto front of the feasible trials of one budget (the
    finalists once there are any); every complete kws-search trial records its constraint.
    """
    front = {t.number for t in pareto_front(front_pool(study.get_trials(deepcopy=False)))}
    rows = []
    for t in study.get_trials(deepcopy=False):
        done = t.state == TrialState.COMPLETE and t.values is not None
        row: dict[str, Any] = {"number": t.number, "state": t.state.name,
                               "feasible": done and feasible(t), "on_front": t.number in front}
        row.update(zip(OBJECTIVES, t.values if done else [math.nan] * len(OBJECTIVES),
                       strict=True))
        if PRUNED_AT in t.user_attrs:  # stopped at a rung: its size is known
            row.update(speedup=t.user_attrs["speedup"], compression=t.user_attrs["compression"])
        constraints = t.system_attrs.get(CONSTRAINTS_KEY)
        row["constraint"] = constraints[0] if constraints else math.nan
        row.update({k: v for k, v in t.user_attrs.items()
                    if k not in OBJECTIVES and k != FAIL_REASON})
        row.update({f"params_{k}": v for k, v in t.params.items()})
        row[FAIL_REASON] = t.user_attrs.get(FAIL_REASON, "")
        row["datetime_start"] = t.datetime_start
        row["duration_s"] = t.duration.total_seconds() if t.duration else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    measures = list(MEASURES)
    at = measures.index("test_quality") + 1
    measures[at:at] = [c for c in CROSS_MEASURES if c in table.columns]
    head = ["number", "state", "feasible", "on_front", *OBJECTIVES, "constraint", *measures]
    tail = [FAIL_REASON, "datetime_start", "duration_s"]
    rest = sorted(c for c in table.columns if c not in head + tail)
    extra = [c for c in rest if not c.startswith("params_")]
    params = [c for c in rest if c.startswith("params_")]
    return table.reindex(columns=head + extra + params + tail)


def front_table(table: pd.DataFrame, info: StudyInfo) -> pd.DataFrame:
    """The feasible front with the validation interval, each finalist's ratio to the teacher
    on test beside its ratio on validation (over-fitting check: the search chose on
    validation), and cross-engine quality where the study recorded it."""
    front = table[table["on_front"]].sort_values("quality").copy()
    front[CI_COLUMN] = [interval_text(lo, hi) for lo, hi in
                        zip(front["val_quality_lo"], front["val_quality_hi"], strict=True)]
    teacher_val = info.teacher.get("val_quality")
    if teacher_val:
        front[VAL_RATIO] = front["val_quality"].astype(float) / teacher_val
    if RATIO in front.columns:  # finalists: quality / the teacher's on test, paired interval
        front[RATIO_COLUMN] = [interval_text(lo, hi, ".2f") for lo, hi in
                               zip(front[RATIO_LO], front[RATIO_HI], strict=True)]
    params = [c for c in table.columns if c.startswith("params_")]
    cross = [c for c in ("cross_quality", "cross_detected") if c in table.columns]
    columns = ["number", "stage", TRAINED_EPOCHS, "quant", "val_quality", CI_COLUMN,
               VAL_RATIO, RATIO, RATIO_COLUMN, "test_quality", *cross, "speedup",
               MODEL_SPEEDUP, "compression",
               "latency_ms", "latency_speedup", "params", "macs", "frontend_macs", "bytes",
               "macs_per_second", "peak_ram", *params]
    return front[[c for c in columns if c in front.columns]].reset_index(drop=True)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' own needs `tabulate`); numbers right-aligned."""
    def cell(value: Any) -> str:
        return format_value(value).replace("|", "\\|").replace("\n", " ")

    numeric = [pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(
        table[c]) for c in table.columns]
    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def gains(quality: float, speedup: float, compression: float,
          bar: float) -> tuple[float, float, float]:
    """Objectives against the reference point (bar, 1x, 1x), each as a gain >= 0 when better."""
    return 1.0 - quality / bar, speedup - 1.0, compression - 1.0


def hypervolume(gains: Iterable[Sequence[float]]) -> float:
    """Exact volume of the union of boxes [0, g] for 3-D gain vectors (larger is better).

    Written here because no public Optuna function returns a hypervolume number (only the
    experimental `optuna.visualization.plot_hypervolume_history` figure of a whole study;
    tests/report/test_pages.py checks that its numbers agree with ours).
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


def answer(study: optuna.Study) -> dict[str, Any]:
    """The study's answer as data: per quality level (a multiple of the teacher's quality),
    the best speed-up (front end included), network speed-up and compression with their
    trials; over the finalists once there are any (judged on the test split, by the upper end
    of each one's paired 90% interval), else the search's complete trials (on validation)."""
    trials = study.get_trials(deepcopy=False)
    pool = front_pool(trials)
    teacher = study_teacher(study)
    quality = teacher.get("val_quality")
    rows = curve(pool, quality) if quality else []
    finals = bool(pool) and is_final(pool[0])
    closest = min(pool, key=lambda t: ratio(t, quality)[1], default=None) if quality else None
    return {"study": study.study_name, "teacher_val_quality": quality,
            "teacher_test_quality": teacher.get(TEST_QUALITY),
            "teacher_test_interval": [teacher.get("test_quality_lo"),
                                      teacher.get("test_quality_hi")],
            "test_clips": teacher.get("test_clips"),
            "test_keyword_clips": teacher.get("test_keyword_clips"),
            "teacher_test_by_engine": dict(teacher.get(BY_ENGINE) or {}),
            "split": "test" if finals else "validation",
            "margin": float(study.user_attrs.get("quality_margin", QUALITY_MARGIN)),
            "budgets": dict(study.user_attrs.get("budgets") or {}),
            "basis": "finalists" if finals else "search trials", "students": len(pool),
            TRAINED_EPOCHS: sorted({t.user_attrs.get(TRAINED_EPOCHS) for t in pool
                                     if t.user_attrs.get(TRAINED_EPOCHS) is not None}),
            "closest": None if closest is None else {
                "trial": closest.number, "times_teacher": ratio(closest, quality)[0],
                "times_teacher_upper": ratio(closest, quality)[1],
                "speedup": closest.values[1], "compression": closest.values[2]},
            "judged": [_judged(t, quality) for t in sorted(pool, key=lambda t: t.number)]
            if finals and quality else [],
            "levels": [row.to_dict() for row in rows]}


def _judged(trial: FrozenTrial, teacher_quality: float) -> dict[str, Any]:
    """One finalist as the answer judges it: its ratio to the teacher with the interval."""
    attrs = trial.user_attrs
    return {"trial": trial.number, "final_of": attrs.get("final_of"),
            "ratio": ratio(trial, teacher_quality)[0], "ratio_lo": attrs.get(RATIO_LO),
            "ratio_hi": ratio(trial, teacher_quality)[1], "test_quality": attrs.get(TEST_QUALITY),
            "val_ratio": trial.values[0] / teacher_quality, "speedup": trial.values[1],
            MODEL_SPEEDUP: attrs.get(MODEL_SPEEDUP), "compression": trial.values[2],
            "quant": attrs.get("quant"), "test_by_engine": dict(attrs.get(BY_ENGINE) or {})}


def engine_lines(result: dict[str, Any]) -> list[str]:
    """Test quality per speech engine of the teacher and each finalist, and each one's ratio
    to the teacher's on that engine: which voices are hard (a synthesized dataset only)."""
    teacher = result.get("teacher_test_by_engine") or {}
    if not teacher or not result.get("judged"):
        return []
    engines = sorted(teacher)
    rows = [("model", *engines)]
    rows.append(("teacher", *(f"{teacher[e]:.2e}" for e in engines)))
    for j in result["judged"]:
        mine = j.get("test_by_engine") or {}
        rows.append((f"trial {j['trial']}", *(
            f"{mine[e]:.2e} ({mine[e] / teacher[e]:.2f}x)" if e in mine and teacher[e] > 0
            else "-" for e in engines)))
    return ["test quality per speech engine (and / the teacher's on the same engine)",
            *aligned(rows)]


def half_width(judged: dict[str, Any]) -> float | None:
    """Half the width of a finalist's interval, as a share of its ratio (None: not measured)."""
    lo, hi, ratio = judged.get("ratio_lo"), judged.get("ratio_hi"), judged.get("ratio")
    if lo is None or hi is None or not ratio or not math.isfinite(hi - lo):
        return None
    return (hi - lo) / 2 / ratio


def ratio_text(judged: dict[str, Any]) -> str:
    """'0.85x (0.78-0.93)': a finalist's quality over the teacher's with its interval."""
    lo, hi = judged.get("ratio_lo"), judged.get("ratio_hi")
    if lo is None or hi is None:
        return f"{judged['ratio']:.2f}x"
    return f"{judged['ratio']:.2f}x ({lo:.2f}-{hi:.2f})"


def curve_lines(result: dict[str, Any]) -> list[str]:
    """The answer as small text tables: the finalists judged on test, then one row per
    quality level."""
    lines = []
    if result.get("judged"):
        teacher_ci = interval_text(*result["teacher_test_interval"], ".2e")
        lines.append(f"judged on the test split ({result['test_clips']} clips, "
                     f"{result['test_keyword_clips']} keyword; no decision saw them): teacher "
                     f"{result['teacher_test_quality']:.3e} (90% CI {teacher_ci}); each "
                     "finalist's quality / the teacher's, paired 90% interval")
        rows = [("trial", "of", "quality / teacher", "on validation", "speed-up",
                 "network speed-up", "compression", "quant")]
        rows += [(str(j["trial"]), str(j["final_of"]), ratio_text(j), f"{j['val_ratio']:.2f}x",
                  f"{j['speedup']:.2f}x", f"{j[MODEL_SPEEDUP] or math.nan:.2f}x",
                  f"{j['compression']:.2f}x", str(j["quant"])) for j in result["judged"]]
        lines += aligned(rows)
        widths = [half_width(j) for j in result["judged"] if half_width(j) is not None]
        if widths:
            lines.append(f"  the intervals span +-{statistics.median(widths):.0%} of the ratio "
                         f"(median; widest +-{max(widths):.0%}): this split tells apart "
                         "students that differ by more than that")
        lines += engine_lines(result)
    where = ("with 90% confidence (upper end of the interval)" if result.get("judged")
             else "on validation")
    lines.append(f"the answer ({result['students']} {result['basis']}): the best student within "
                 f"each multiple of the teacher's quality, {where}")
    rows = [("quality within", "students", "speed-up", "network speed-up", "compression",
             "least peak RAM")]
    for level in result["levels"]:
        likely = level.get("likely", 0)
        rows.append((f"{level['level']:g}x teacher",
                     str(level["students"]) + (f" (+{likely} likely)" if likely else ""),
                     _cell(level["speedup"]), _cell(level["model_speedup"]),
                     _cell(level["compression"]), _ram_text(level.get("peak_ram")) or "-"))
    lines += aligned(rows)
    if any(level.get("likely") for level in result["levels"]):
        lines.append("  (+N likely): within the level by the point estimate, not yet by the "
                     "interval's upper end; not counted")
    return lines


def _cell(best: dict[str, Any] | None) -> str:
    return "-" if best is None else f"{best['value']:.2f}x (trial {best['trial']})"


def aligned(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows of cells as text lines, each column padded to its widest cell."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def curve_markdown(result: dict[str, Any]) -> str:
    """The answer as Markdown tables (front.md): the finalists judged on test, the curve."""
    text = ""
    if result.get("judged"):
        lines = curve_lines(result)
        judged = pd.DataFrame([{
            "trial": j["trial"], "of": j["final_of"], "quality / teacher (90% CI)": ratio_text(j),
            "on validation": f"{j['val_ratio']:.2f}x", "speed-up": j["speedup"],
            "network speed-up": j[MODEL_SPEEDUP], "compression": j["compression"],
            "quant": j["quant"]} for j in result["judged"]])
        text += f"{lines[0]}\n\n{to_markdown(judged)}\n"
    head = next(line for line in curve_lines(result) if line.startswith("the answer"))
    table = pd.DataFrame([{
        "quality within": f"{lv['level']:g}x teacher", "students": lv["students"],
        "likely (point estimate only)": lv.get("likely", 0),
        "speed-up": _best_text(lv["speedup"]), "network speed-up": _best_text(lv["model_speedup"]),
        "compression": _best_text(lv["compression"]),
        "least peak RAM": _ram_text(lv.get("peak_ram"))} for lv in result["levels"]])
    return text + f"{head}\n\n" + (to_markdown(table) if not table.empty else "(no students)\n")


def _ram_text(best: dict[str, Any] | None) -> str:
    return "" if best is None else f"{best['value'] / 1024:.1f} KB (trial {best['trial']})"


def _best_text(best: dict[str, Any] | None) -> str:
    return "" if best is None else f"{best['value']:.2f}x (trial {best['trial']})"
