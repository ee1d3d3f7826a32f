"""A study's summary as lines of text: what `run` prints when it ends and `report` prints after
writing its folder. One renderer, so both say the same thing about the same study."""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd

from kws_search.report.tables import (
    CI_COLUMN,
    RATIO_COLUMN,
    VAL_RATIO,
    StudyInfo,
    answer,
    cross_text,
    curve_lines,
    front_table,
    interval_text,
    study_info,
    trials_table,
)
from kws_search.report.wakeword import wakeword_lines
from kws_search.search.answer import within_for
from kws_search.search.attrs import TRAINED_EPOCHS
from kws_search.search.progress import Progress, complete_text, progress_of

# the front as `run` and `report` print it (front.md and front.csv hold every column)
PRINTED = ("number", TRAINED_EPOCHS, "quant", "val_quality", CI_COLUMN, VAL_RATIO, RATIO_COLUMN,
           "cross_quality", "cross_detected", "speedup", "compression", "params", "latency_ms")


def study_summary(study: optuna.Study) -> list[str]:
    """`summary_lines` of a study, its tables computed here."""
    info = study_info(study)
    return summary_lines(info, front_table(trials_table(study), info), answer(study),
                         progress_of(study))


def summary_lines(info: StudyInfo, front: pd.DataFrame, result: dict[str, Any],
                  progress: Progress) -> list[str]:
    """The teacher and the bar, the budgets, the front (or the student closest to the bar),
    the answer's curve, false accepts per hour where measured, and the trials' counts."""
    lines = [_teacher_line(info)]
    if info.budgets:
        lines.append(info.budget_text())
    if info.teacher_cross:
        lines.append(f"teacher on {info.cross_data or 'the cross-engine set'}: "
                     f"{cross_text(info.teacher_cross)}")
    lines += _front_lines(front) if not front.empty else _closest_lines(
        info, result)
    lines += curve_lines(result) + wakeword_lines(result.get("wakeword", {}))
    lines.append(f"trials: {complete_text(progress)}, {progress.pruned} stopped early (pruned at "
                 f"a rung), {progress.failed} failed, {progress.running} running; "
                 f"{progress.finals} finalists trained to convergence")
    lines += [f"failed x{count}: {reason}" for reason, count in
              progress.fail_reasons.most_common()]
    return lines


def _teacher_line(info: StudyInfo) -> str:
    teacher = info.teacher
    ci = interval_text(teacher.get("val_quality_lo"), teacher.get("val_quality_hi"), ".2e")
    bar = info.quality_bar if info.quality_bar is not None else float("nan")
    return (f"teacher validation quality {teacher.get('val_quality', float('nan')):.3e}"
            f"{f' (90% CI {ci})' if ci else ''}; bar ({info.margin:g}x) {bar:.3e}")


def _front_lines(front: pd.DataFrame) -> list[str]:
    shown = front[[c for c in PRINTED if c in front.columns]].copy()
    for column in ("val_quality", "cross_quality"):
        if column in shown.columns:
            shown[column] = [f"{v:.3e}" for v in shown[column]]
    for column in ("speedup", "compression", VAL_RATIO):
        if column in shown.columns:
            shown[column] = shown[column].astype(float).round(2)
    return [f"feasible Pareto front ({len(front)} students):",
            *shown.fillna("").to_string(index=False).splitlines()]


def _closest_lines(info: StudyInfo, result: dict[str, Any]) -> list[str]:
    """No student within the bar: the closest, how far it is from the teacher, and the
    `--within` that exports it."""
    lines = [f"no feasible student yet (quality within {info.margin:g}x of the teacher)"]
    closest = result["closest"]
    if closest is None:
        return lines
    lines.append(f"  closest: trial {closest['trial']} at {closest['times_teacher']:.2f}x the "
                 f"teacher, speed-up {closest['speedup']:.2f}x, compression "
                 f"{closest['compression']:.2f}x")
    within = next((level["level"] for level in result["levels"] if level["students"]),
                  within_for(closest["times_teacher_upper"]))
    lines.append(f"  next: `kws-search export --study {result['study']} --within {within:g}` "
                 f"exports the balanced student within {within:g}x the teacher")
    return lines
