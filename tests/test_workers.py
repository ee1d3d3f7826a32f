"""Workers: a re-run resumes the study to the requested total, keeping what was done."""

from __future__ import annotations

from optuna.trial import TrialState

from kws_search.study import open_study
from kws_search.workers import run_search


def test_rerun_resumes_to_requested_total(tiny_data, tiny_teacher, tiny_settings, tmp_path):
    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, trials=2)
    run_search(settings, progress=False)
    first = [t.number for t in open_study(settings).get_trials()]
    study = run_search(tiny_settings(tiny_data, tiny_teacher, tmp_path, trials=4),
                       progress=False)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    assert [t.number for t in study.get_trials()][:len(first)] == first
