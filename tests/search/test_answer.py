"""The answer's curve, the front of one budget, and the choice of finalists."""

from __future__ import annotations

from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from kws_search.search.answer import curve, front_pool, pareto_front, pick_finalists, ratio
from kws_search.search.fidelity import FINAL_OF

TEACHER = 1.0e-4


def student(n: int, quality: float, speedup: float, compression: float, final_of=None,
            bar: float = 1.1 * TEACHER):
    attrs = {"model_speedup": speedup * 2}
    if final_of is not None:
        attrs[FINAL_OF] = final_of
    trial = create_trial(values=[quality, speedup, compression], params={"x": n},
                         distributions={"x": IntDistribution(0, 99)}, user_attrs=attrs,
                         system_attrs={"constraints": [quality - bar]})
    trial.number = n
    return trial


SEARCH = [student(0, 1.0e-4, 1.0, 4.0), student(1, 1.4e-4, 2.0, 9.0),
          student(2, 2.9e-4, 5.0, 30.0), student(3, 5.0e-4, 9.0, 90.0)]


def test_each_level_names_its_fastest_and_smallest_student():
    rows = {row.level: row for row in curve(SEARCH, TEACHER)}
    assert rows[1.1].students == 1 and rows[1.1].speedup.trial == 0
    assert rows[1.5].speedup.value == 2.0 and rows[1.5].compression.trial == 1
    assert rows[1.5].model_speedup.value == 4.0  # the networks alone, as recorded
    assert rows[3.0].compression.value == 30.0 and rows[3.0].speedup.trial == 2
    assert rows[2.0].students == 2


def test_a_level_without_students_names_none():
    rows = curve(SEARCH[3:], TEACHER)
    assert all(row.students == 0 and row.speedup is None for row in rows)


def test_finalists_span_the_curve_from_the_best_student():
    chosen = [t.number for t in pick_finalists(SEARCH, 6)]
    assert chosen[0] == 0 and set(chosen) == {0, 1, 2}  # trial 3 is 5x the best
    assert [t.number for t in pick_finalists(SEARCH, 2)] == chosen[:2]
    assert pick_finalists(SEARCH, 0) == []
    # measured from a teacher worse than the best student, the curve reaches further
    wider = [t.number for t in pick_finalists(SEARCH, 6, teacher_quality=2.0e-4)]
    assert wider[0] == 0 and 3 in wider  # 5e-4 is within 3x a 2e-4 teacher


def judged(n: int, ratio: float, lo: float, hi: float, speedup: float, compression: float):
    """A finalist judged on test: its quality / the teacher's with the paired interval."""
    trial = student(n, 1.0e-4, speedup, compression, final_of=0)
    trial.user_attrs.update(teacher_ratio=ratio, teacher_ratio_lo=lo, teacher_ratio_hi=hi)
    return trial


def test_a_finalist_counts_at_a_level_only_when_its_whole_interval_is_within_it():
    finals = [judged(10, 0.6, 0.55, 0.66, 1.0, 4.0),   # surely within 1.1x
              judged(11, 1.0, 0.92, 1.15, 8.0, 40.0),  # within 1.1x by its point only
              judged(12, 1.3, 1.2, 1.42, 20.0, 90.0)]  # within 1.5x with confidence
    rows = {row.level: row for row in curve(finals, TEACHER)}
    assert rows[1.1].students == 1 and rows[1.1].likely == 1
    assert rows[1.1].compression.trial == 10  # 11's upper end, 1.15, is over 1.1
    assert rows[1.25].students == 2 and rows[1.25].compression.trial == 11
    assert rows[1.5].students == 3 and rows[1.5].likely == 0
    assert rows[1.5].model_speedup.value == 40.0 and rows[1.5].compression.trial == 12
    # the same students as search trials (no test ratio) are placed by validation
    assert all(ratio(t, TEACHER) == (1.0, 1.0) for t in SEARCH[:1])


def test_finalists_cover_the_sizes_the_small_end_first():
    """Besides the best student, the best of each band of network speed-up (2x apart) within
    the widest level: not only the smallest student each level names."""
    search = [student(0, 1.0e-4, 1.0, 4.0), student(1, 1.5e-4, 5.0, 20.0),
              student(2, 1.2e-4, 5.5, 20.0), student(3, 2.5e-4, 20.0, 60.0),
              student(4, 2.8e-4, 22.0, 70.0)]  # model_speedup is twice these
    chosen = [t.number for t in pick_finalists(search, 3)]
    assert chosen == [0, 3, 2]  # best; band 32-64x: 3 beats 4; band 8-16x: 2 beats 1


def test_once_there_are_finalists_the_front_is_theirs_alone():
    finals = [student(4, 0.9e-4, 1.0, 4.0, final_of=0), student(5, 1.2e-4, 2.0, 9.0, final_of=1)]
    assert front_pool(SEARCH) == SEARCH
    assert front_pool(SEARCH + finals) == finals
    assert [t.number for t in pareto_front(front_pool(SEARCH + finals))] == [4]  # 5 > bar
    assert [t.number for t in pareto_front(finals, feasible_only=False)] == [4, 5]
    pruned = create_trial(state=TrialState.PRUNED, params={"x": 9},
                          distributions={"x": IntDistribution(0, 99)})
    assert front_pool([pruned]) == []


def test_finalists_are_chosen_once_per_size_of_the_search():
    """Re-running the same command queues nothing new; more --trials queue the students the
    grown search's curve names that no finalist trained yet."""
    import optuna

    from kws_search.search.queue import queue_finalists

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["minimize", "maximize", "maximize"])
    study.set_user_attr("teacher", {"val_quality": TEACHER})

    def add(trial):
        study.add_trial(create_trial(values=trial.values, params=trial.params,
                                     distributions=trial.distributions,
                                     user_attrs=trial.user_attrs,
                                     system_attrs=trial.system_attrs))

    def finish_queued():  # what the workers do with them
        for t in study.get_trials(states=(TrialState.WAITING,)):
            study.tell(study.ask(fixed_distributions=t.distributions), [1e-4, 1.0, 1.0])

    for trial in SEARCH[:3]:
        add(trial)
    assert queue_finalists(study, 2) == 2
    finish_queued()
    assert queue_finalists(study, 2) == 0  # the same search: nothing again
    add(student(9, 0.5e-4, 3.0, 50.0))  # the search grew (study trial 5), its best is new
    assert queue_finalists(study, 2) >= 1
    queued = [t.user_attrs[FINAL_OF] for t in study.get_trials(states=(TrialState.WAITING,))]
    assert 5 in queued
    finals = [t.user_attrs[FINAL_OF] for t in study.get_trials() if FINAL_OF in t.user_attrs]
    assert len(finals) == len(set(finals))  # no student trained twice as a finalist
