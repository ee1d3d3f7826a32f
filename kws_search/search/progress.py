"""Where a study stands: its feasible front and the counts the progress bar and the summary
show."""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from kws_search.search.answer import front_pool, pareto_front
from kws_search.search.attrs import FAIL_REASON
from kws_search.search.budgets import OVER_BUDGET
from kws_search.search.fidelity import finished, is_final


def feasible_front(study: optuna.Study) -> list[FrozenTrial]:
    """Pareto front of the complete, feasible trials (min quality, max speed-up, compression),
    best quality first, of one budget: the finalists once there are any, else the search's.
    Optuna's own front, which leaves out trials whose constraint (the quality bar, set on
    every complete trial) is violated."""
    return pareto_front(front_pool(study.get_trials(deepcopy=False)))


@dataclass
class Progress:
    """What the progress bar shows."""

    finals: int = 0  # finalists trained (to convergence), counted apart from the search
    complete: int = 0
    over_budget: int = 0  # of the complete: over a device budget, so never trained
    pruned: int = 0  # stopped at a rung (multi-fidelity); they count towards --trials
    failed: int = 0
    running: int = 0
    front: int = 0
    best_speedup: float = 0.0
    best_compression: float = 0.0
    fail_reasons: collections.Counter = field(default_factory=collections.Counter)


def complete_text(progress: Progress) -> str:
    """'42 complete' or '42 complete (30 over a budget: ended untrained)'."""
    return f"{progress.complete} complete" + (
        f" ({progress.over_budget} over a budget: ended untrained)" if progress.over_budget
        else "")


def progress_of(study: optuna.Study) -> Progress:
    """Counts for the progress bar; failures grouped by kind (reasons that differ only in
    numbers, like the step a loss turned NaN, count as one, shown by their first example)."""
    trials = study.get_trials(deepcopy=False)
    state = Progress()
    examples: dict[str, str] = {}
    for t in trials:
        if t.state == TrialState.COMPLETE and is_final(t):
            state.finals += 1
        elif t.state == TrialState.COMPLETE:
            state.complete += 1
            state.over_budget += OVER_BUDGET in t.user_attrs
        elif finished(t):
            state.pruned += 1
        elif t.state == TrialState.FAIL:
            state.failed += 1
            reason = t.user_attrs.get(FAIL_REASON, "unknown (worker died?)")
            state.fail_reasons[examples.setdefault(_reason_kind(reason), reason)] += 1
        elif t.state == TrialState.RUNNING:
            state.running += 1
    front = feasible_front(study)
    state.front = len(front)
    state.best_speedup = max((t.values[1] for t in front), default=0.0)
    state.best_compression = max((t.values[2] for t in front), default=0.0)
    return state


def _reason_kind(reason: str) -> str:
    """A failure reason with its numbers blanked, to group reasons of one kind."""
    return re.sub(r"\b\d+(\.\d+)?(e[-+]?\d+)?\b", "#", reason)
