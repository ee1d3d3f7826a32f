"""Workers: a re-run resumes the study to the requested total; Ctrl-C is never lost."""

from __future__ import annotations

import pytest
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


def test_a_ctrl_c_lost_in_a_finalizer_is_raised_at_the_next_check():
    """Python drops a KeyboardInterrupt raised inside a garbage-collector callback; the worker
    still stops at its next epoch or trial."""
    import os
    import signal
    import time
    import weakref

    from kws_search.workers import _CtrlC

    class Held:
        pass

    with _CtrlC() as ctrl_c:
        held = Held()
        weakref.finalize(held, lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2)))
        del held  # the finalizer runs here; its KeyboardInterrupt is printed and ignored
        assert ctrl_c.interrupted
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
