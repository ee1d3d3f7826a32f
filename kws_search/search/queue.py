"""What a study queues besides what its sampler draws: the hand-tuned students it starts with
and the finalists it trains again after the search."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import TrialState

from kws_search.search.answer import pick_finalists
from kws_search.search.attrs import study_teacher
from kws_search.search.fidelity import FINAL_OF, finished, is_final
from kws_search.search.space import SearchSpace

# Students the study starts with, so the front starts where people got: the teacher's own
# shape with int8 weights (at equal size int8 costs nothing measurable, so it is the first
# point of an honest front), then the hand-made students of the course reports, with attention
# distillation at 0.5, which took a 10x student from 2.56x to 1.40x the teacher's quality at
# convergence (bench_student_ceiling). They read the seminar's log-mels (400-point FFT, 40 bands).
HAND_TUNED: tuple[dict[str, Any], ...] = (
    {"cnn_channels": 8, "kernel_freq": 5, "kernel_time": 20, "stride_freq": 2,
     "stride_time": 8, "rnn": "gru", "hidden": 64, "layers": 2, "kd_weight": 0.5,
     "temperature": 6.0, "attn_weight": 0.0, "mode": "int8", "n_fft": 400, "n_mels": 40},
    {"cnn_channels": 3, "kernel_freq": 7, "kernel_time": 20, "stride_freq": 6,
     "stride_time": 10, "rnn": "gru", "hidden": 12, "layers": 2, "kd_weight": 0.8,
     "temperature": 10.0, "attn_weight": 0.5, "mode": "int8", "n_fft": 400,
     "n_mels": 40},
    {"cnn_channels": 4, "kernel_freq": 5, "kernel_time": 20, "stride_freq": 2,
     "stride_time": 8, "rnn": "gru", "hidden": 16, "layers": 1, "kd_weight": 0.8,
     "temperature": 10.0, "attn_weight": 0.5, "mode": "int8", "n_fft": 400,
     "n_mels": 40},
    # 10x fewer network MACs spent on the GRU, not the conv: 1.52x the teacher trained as a
    # finalist, where 6 channels and GRU 12 at the same MACs reach 2.11x (bench_student_ceiling
    # --width-lever; docs/benchmarks.md)
    {"cnn_channels": 2, "kernel_freq": 5, "kernel_time": 20, "stride_freq": 3,
     "stride_time": 10, "rnn": "gru", "hidden": 35, "layers": 1, "kd_weight": 0.5,
     "temperature": 6.0, "attn_weight": 0.5, "lr": 5e-3, "mode": "int8", "n_fft": 400,
     "n_mels": 40},
    # The small end, so every run measures it whatever its sampler draws: one channel with a
    # short time stride and a two-layer GRU (9.6x fewer network MACs and 46x fewer bytes,
    # like the student a search found with --seed 1, 0.55x the teacher on test), and an 18x
    # student (63x fewer bytes) of the same form
    {"cnn_channels": 1, "kernel_freq": 5, "kernel_time": 20, "stride_freq": 2,
     "stride_time": 6, "rnn": "gru", "hidden": 19, "layers": 2, "kd_weight": 0.5,
     "temperature": 6.0, "attn_weight": 0.5, "lr": 5e-3, "mode": "int8", "n_fft": 400,
     "n_mels": 40},
    {"cnn_channels": 1, "kernel_freq": 5, "kernel_time": 20, "stride_freq": 3,
     "stride_time": 8, "rnn": "gru", "hidden": 16, "layers": 2, "kd_weight": 0.5,
     "temperature": 6.0, "attn_weight": 0.5, "lr": 5e-3, "mode": "int8", "n_fft": 400,
     "n_mels": 40},
)


def queue_hand_tuned(study: optuna.Study, space: SearchSpace) -> int:
    """Queue the course reports' hand-tuned students (values the space can hold) into a new study.

    Each queued trial is claimed by exactly one worker: PostgreSQL locks the row, and SQLite
    storages from `open_storage` take the write lock for the claim (`_serialize_sqlite`).
    """
    if study.get_trials(deepcopy=False):
        return 0
    dists = space.distributions()
    queued: set[tuple] = set()
    for params in HAND_TUNED:
        fixed = {k: v for k, v in params.items() if k in dists}
        key = tuple(sorted(fixed.items()))
        if key not in queued and all(_holds(dists[k], v) for k, v in fixed.items()):
            # a WAITING trial that holds its parameters (what Optuna's `suggest_*` returns
            # first), so the samplers read them as `params` of a queued trial
            study.add_trial(optuna.create_trial(
                state=TrialState.WAITING, params=fixed,
                distributions={k: dists[k] for k in fixed}))
            queued.add(key)
    return len(queued)


def _holds(dist: BaseDistribution, value: Any) -> bool:
    """Whether a distribution of the space can take `value` (a choice, or on its range/step)."""
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if not dist.low <= value <= dist.high:
        return False
    step = getattr(dist, "step", None)
    return step is None or abs((value - dist.low) / step - round((value - dist.low) / step)) < 1e-9


FINALISTS_AFTER = "finalists_after"  # study attr: search trials finished when they were chosen


def queue_finalists(study: optuna.Study, count: int) -> int:
    """Queue up to `count` students of the finished search to be trained again the way the
    teacher was (`answer.pick_finalists`); returns how many are queued now.

    They are chosen once per size of the search: re-running the same command queues none
    (and finishes the ones an interrupted run left), while a search grown with more --trials
    gets the students its new curve names that no finalist trained yet."""
    trials = study.get_trials(deepcopy=False)
    searched = sum(finished(t) for t in trials if not is_final(t))
    done = {t.user_attrs[FINAL_OF] for t in trials if is_final(t)}
    if done and FINALISTS_AFTER not in study.user_attrs:  # chosen before this attr existed
        study.set_user_attr(FINALISTS_AFTER, searched)
    if count <= 0 or study.user_attrs.get(FINALISTS_AFTER) == searched:
        return 0
    teacher = study_teacher(study).get("val_quality")
    chosen = [t for t in pick_finalists(trials, count, teacher) if t.number not in done]
    for t in chosen:
        study.enqueue_trial(t.params, user_attrs={FINAL_OF: t.number})
    study.set_user_attr(FINALISTS_AFTER, searched)
    return len(chosen)
