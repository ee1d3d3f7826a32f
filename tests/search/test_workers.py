"""Workers: a re-run resumes the study to the requested total; Ctrl-C is never lost."""

from __future__ import annotations

import json

import pytest
from optuna.trial import TrialState

from kws_search.search.study import open_study
from kws_search.search.workers import run_search


@pytest.mark.slow
def test_rerun_resumes_to_requested_total(tiny_data, tiny_teacher, tiny_settings, tmp_path):
    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, trials=2)
    run_search(settings, progress=False)
    first = [t.number for t in open_study(settings.study).get_trials()]
    study = run_search(tiny_settings(tiny_data, tiny_teacher, tmp_path, trials=4),
                       progress=False)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    assert [t.number for t in study.get_trials()][:len(first)] == first


def test_a_ctrl_c_lost_in_a_finalizer_is_raised_at_the_next_check():
    """Python drops a KeyboardInterrupt raised inside a garbage-collector callback; the worker
    still stops at its next epoch or trial."""
    import os
    import signal
    import time
    import weakref

    from kws_search.search.interrupts import CtrlC

    class Held:
        pass

    with CtrlC() as ctrl_c:
        held = Held()
        weakref.finalize(held, lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2)))
        del held  # the finalizer runs here; its KeyboardInterrupt is printed and ignored
        assert ctrl_c.interrupted
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_while_optuna_creates_a_trial_leaves_it_failed_not_running(tmp_path,
                                                                          monkeypatch):
    """The signal can land after the trial's row exists and before Optuna hands the trial to
    anyone; that trial must still end FAIL (interrupted), or resuming workers wait on it."""
    import signal

    import optuna

    from kws_search.search import workers
    from kws_search.search.attrs import DIRECTIONS
    from kws_search.search.interrupts import CtrlC
    from kws_search.search.samplers import make_sampler
    from kws_search.search.settings import DataSettings, RunSettings, StudySettings

    class InterruptedWhileCreating(optuna.storages.InMemoryStorage):
        def create_new_trial(self, study_id, template_trial=None):
            trial_id = super().create_new_trial(study_id, template_trial)
            signal.raise_signal(signal.SIGINT)  # the row exists; nobody knows its number yet
            return trial_id

    storage = InterruptedWhileCreating()
    monkeypatch.setattr(workers, "open_storage", lambda url, heartbeat: storage)
    settings = RunSettings(DataSettings(tmp_path, "sheila", tmp_path),
                           StudySettings("s", "memory", trials=1))
    study = optuna.create_study(storage=storage, study_name="s", directions=list(DIRECTIONS),
                                sampler=make_sampler("random", 0))
    trained = []

    def student(trial):
        trained.append(trial.number)
        return 0.1, 2.0, 2.0

    with CtrlC() as ctrl_c, pytest.raises(KeyboardInterrupt):
        objective = workers.with_fail_reason(student, 1, ctrl_c)
        workers.take_trials(settings, study, objective, None, ctrl_c)
    [trial] = study.get_trials()
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == workers.INTERRUPTED
    assert trained == []  # stopped before the student trained


def test_a_resume_waiting_for_a_killed_worker_s_trial_says_so(tmp_path, caplog):
    """A trial a killed worker left RUNNING holds its slot until its heartbeat is older than the
    grace period; the resumed worker says it is waiting, at WARNING, instead of sitting silent."""
    import logging

    import optuna

    from kws_search.search import workers
    from kws_search.search.attrs import DIRECTIONS
    from kws_search.search.interrupts import CtrlC
    from kws_search.search.settings import (
        DataSettings,
        RunSettings,
        StudySettings,
        WorkerSettings,
    )
    from kws_search.search.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=open_storage(url, interval=60, grace=180),
                                study_name="s", directions=list(DIRECTIONS))
    study.ask()  # RUNNING: its worker is gone, its slot is the study's last
    settings = RunSettings(DataSettings(tmp_path, "sheila", tmp_path),
                           StudySettings("s", url, trials=1),
                           WorkerSettings(timeout=1.5, heartbeat_interval=1, grace_period=180))
    trained = []
    with CtrlC() as ctrl_c, caplog.at_level(logging.WARNING, logger="kws_search"):
        workers.take_trials(settings, study, lambda t: trained.append(t), None, ctrl_c)
    waits = [r for r in caplog.records if "waiting for 1 running trial" in r.getMessage()]
    assert len(waits) == 1 and waits[0].levelno == logging.WARNING  # said once, loudly
    assert "retried after 180 s without heartbeat" in waits[0].getMessage()
    assert trained == []  # nothing new started while the study's slots are taken


@pytest.mark.slow
def test_finalists_train_as_the_teacher_did_and_form_the_front_alone(
        tiny_data, tiny_teacher, tiny_settings, tmp_path):
    from kws_search.search.answer import front_pool
    from kws_search.search.fidelity import FINAL_OF, is_final
    from kws_search.search.progress import feasible_front

    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, trials=3, finalists=2,
                             queue_hand_tuned=False)
    study = run_search(settings, progress=False)
    trials = study.get_trials()
    search = [t for t in trials if not is_final(t)]
    finals = [t for t in trials if is_final(t)]
    assert len(search) == 3 and len(finals) == 2
    assert all(t.state == TrialState.COMPLETE for t in finals)
    by_number = {t.number: t for t in search}
    teacher_epochs = 2  # the tiny teacher's recipe (conftest), not the tiny space's 1 epoch
    for final in finals:
        source = by_number[final.user_attrs[FINAL_OF]]
        assert final.params == source.params
        assert final.user_attrs["stage"] == "final" and source.user_attrs["stage"] == "search"
        assert final.user_attrs["budget_epochs"] == teacher_epochs
        assert source.user_attrs["budget_epochs"] == 1
        assert final.user_attrs["budget_samples"] > source.user_attrs["budget_samples"]
    assert front_pool(trials) == [t for t in finals if t.state == TrialState.COMPLETE]
    assert {t.number for t in feasible_front(study)} <= {t.number for t in finals}
    again = run_search(settings, progress=False)  # resumed: nothing queued or trained twice
    assert len(again.get_trials()) == 5

    # the report streams the teacher and every finalist: false accepts per hour and misses
    from kws_search.report.pages import write_report
    from kws_search.report.wakeword import wakeword_lines

    report = write_report(settings.study.name, settings.study.storage, tmp_path / "report",
                          png=False, hours=0.01)
    wake = report.answer["wakeword"]
    assert set(wake["models"]) == {"teacher", *(f"trial {t.number}" for t in finals)}
    for measures in wake["models"].values():
        assert measures["stream_hours"] == pytest.approx(0.01, rel=0.01)
        assert set(measures["at_rate"]) == {"0.5", "1"} and measures["keyword_clips"] > 0
    assert json.loads((tmp_path / "report" / "answer.json").read_text())["wakeword"] == wake
    assert wakeword_lines(wake)[0].startswith("wake-word measures on 0.6 min: ")
    cached = (tmp_path / "report" / "wakeword.json").stat().st_mtime_ns
    write_report(settings.study.name, settings.study.storage, tmp_path / "report", png=False,
                 hours=0.01)  # nothing changed: nothing streamed again
    assert (tmp_path / "report" / "wakeword.json").stat().st_mtime_ns == cached


def test_the_sampler_never_proposes_a_student_the_study_holds():
    import optuna

    from kws_search.search.samplers import held_students, make_sampler

    space = {"x": optuna.distributions.IntDistribution(0, 1),
             "y": optuna.distributions.IntDistribution(0, 2)}

    class Repeating(optuna.samplers.BaseSampler):  # a model-based sampler stuck on one point
        def infer_relative_search_space(self, study, trial):
            return space

        def sample_relative(self, study, trial, search_space):
            return {"x": 0, "y": 0}

        def sample_independent(self, study, trial, name, dist):
            raise AssertionError("not reached")

    sampler = make_sampler("random", 0)
    sampler.base = Repeating()
    sampler.before_trial = lambda study, trial: None  # keep the stuck sampler
    study = optuna.create_study(sampler=sampler)
    seen = []
    for _ in range(6):
        trial = study.ask(space)
        seen.append((trial.params["x"], trial.params["y"]))
        study.tell(trial, 0.0)
    assert len(set(seen)) == 6  # every student of the 2 x 3 space once
    assert len(held_students(study)) == 6
