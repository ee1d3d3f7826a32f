"""What a study records, named in one place: its objectives, the quality constraint, and
the trial attributes beyond the measures.

The objective writes them; storage, workers, the study, the report and `select` read them,
without importing the training stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing this module loads nothing (`kws-search --help` stays light)
    import optuna

OBJECTIVES = ("quality", "speedup", "compression")
DIRECTIONS = ("minimize", "maximize", "maximize")
CONSTRAINTS_KEY = "constraints"  # the list form optuna-dashboard greys out as infeasible

FAIL_REASON = "fail_reason"  # why a trial failed, one line (the report groups by it)
SURPLUS = "surplus"  # a trial that lost the race for the last slot and trained nothing
PRUNED_AT = "pruned_at_epoch"  # the rung a stopped student reached
# how long a student trained (a training length, not a device budget; the keys keep the
# names older studies stored them under)
TRAINED_EPOCHS = "budget_epochs"  # epochs the student trained (to convergence for a finalist)
TRAINED_SAMPLES = "budget_samples"  # training samples it saw
TRAIN_SECONDS = "train_seconds"
MODEL_SPEEDUP = "model_speedup"  # the networks' MACs alone, teacher / student
CHECKPOINT_ARTIFACT = "checkpoint_artifact"  # the artifact id of the trained student
# The answer, on the test split (clips no decision saw), for the teacher and the finalists only:
TEST_QUALITY = "test_quality"
BY_ENGINE = "test_quality_by_engine"  # {engine: test quality} on a synthesized dataset
RATIO = "teacher_ratio"  # test quality / the teacher's, on the same clips
RATIO_LO, RATIO_HI = "teacher_ratio_lo", "teacher_ratio_hi"  # its paired 90% interval
TEACHER = "teacher"  # study attribute: the teacher's measures, as `study_teacher` returns them


def feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Quality within the bar (constraint <= 0); trials without a constraint are not feasible."""
    constraints = trial.system_attrs.get(CONSTRAINTS_KEY)
    return bool(constraints) and all(c <= 0 for c in constraints)


def study_teacher(study: optuna.Study) -> dict[str, float | str | dict]:
    """The teacher's measures a study recorded (its MACs, bytes, validation and test quality,
    threshold, ...); {} for a study that has not recorded them yet."""
    return dict(study.user_attrs.get(TEACHER) or {})
