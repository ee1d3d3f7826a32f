"""Faults during a search, tried for real on `kws-search run` subprocesses.

A worker killed mid-trial (SIGKILL), Ctrl-C (SIGINT) with one and with two workers, and trials
that raise or diverge: completed work is kept, the interrupted trial is marked failed and
retried (whether its worker died or was interrupted), failures are summarised once per kind,
and re-running the same command resumes to the requested total. Heartbeats every second
(`--heartbeat 1`, 3 s grace) keep the kill test short.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from kws_search.cli import main
from kws_search.search.storage import open_storage

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
RESUME_HINT = "interrupted; completed work is kept, re-run the same command to resume"


def tiny_space(folder: Path, name: str, **replace: str) -> Path:
    """The tiny space with some lines replaced, e.g. lr="lr: 1.0e+6"."""
    text = (SPACES / "tiny.yaml").read_text()
    for key, line in replace.items():
        text, n = re.subn(rf"^(\s*){key}:.*$", rf"\g<1>{line}", text, flags=re.M)
        assert n == 1, key
    if "slow" in name:  # trials of a few seconds: 500 steps of batch 32 (a tiny model each)
        text = text.replace("  epochs: 1\n", "  epochs: 5\n  samples_per_epoch: 3200\n")
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def run_args(inputs, db: Path, space: Path, trials: int, *extra: str) -> list[str]:
    data, teacher, cache = inputs
    return ["run", "--data", str(data), "--teacher", str(teacher), "--cache", str(cache),
            "--storage", f"sqlite:///{db}", "--study", "faults", "--space", str(space),
            "--trials", str(trials), "--no-hand-tuned", "--sampler", "random",
            "--heartbeat", "1", "--threads", "1", "--jobs", "1", "--finalists", "0", *extra]


@pytest.fixture
def start(tmp_path: Path):
    """start(args): `kws-search ARGS` in its own process (output to files in tmp_path);
    whatever is still running when the test ends is killed."""
    procs: list[subprocess.Popen] = []

    def launch(args: list[str]) -> subprocess.Popen:
        with open(tmp_path / "stdout.txt", "w") as out, open(tmp_path / "stderr.txt", "w") as err:
            procs.append(subprocess.Popen([sys.executable, "-m", "kws_search.cli", *args],
                                          cwd=tmp_path, stdout=out, stderr=err))
        return procs[-1]

    yield launch
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def trials_of(db: Path) -> list[FrozenTrial]:
    if not db.exists():
        return []
    storage = open_storage(f"sqlite:///{db}", heartbeat=False)
    if "faults" not in optuna.get_all_study_names(storage):
        return []
    return optuna.load_study(study_name="faults", storage=storage).get_trials()


def wait_until_training(proc: subprocess.Popen, db: Path, running: int = 1,
                        complete: int = 0, timeout: float = 150) -> list[FrozenTrial]:
    """Poll until `running` trials are well into training and `complete` are done."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, (db.parent / "stderr.txt").read_text()[-2000:]
        trials = trials_of(db)
        busy = [t for t in trials if t.state == TrialState.RUNNING and t.params
                and (datetime.now() - t.datetime_start).total_seconds() > 0.7]
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        if len(busy) >= running and done >= complete:
            return busy
        time.sleep(0.2)
    pytest.fail(f"no trial reached training in {timeout} s")


@pytest.mark.slow
def test_killed_worker_trial_is_failed_retried_and_resumed(cli_inputs, tmp_path, start, capsys):
    space = tiny_space(tmp_path, "slow")
    db = tmp_path / "faults.db"
    args = run_args(cli_inputs, db, space, 2)
    proc = start(args)
    [killed] = wait_until_training(proc, db, running=1, complete=1)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    before = trials_of(db)
    [kept] = [t for t in before if t.state == TrialState.COMPLETE]
    assert trials_of(db)[killed.number].state == TrialState.RUNNING  # until its heartbeat ages

    assert main(args) == 0  # the same command again (in this process: no start-up cost)
    after = trials_of(db)
    assert after[kept.number].state == TrialState.COMPLETE
    assert after[kept.number].values == kept.values
    assert after[killed.number].state == TrialState.FAIL
    [retry] = [t for t in after if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert retry.system_attrs["retry_history"] == [killed.number]
    assert sum(t.state == TrialState.COMPLETE for t in after) == 2
    assert not [t for t in after if t.state == TrialState.RUNNING]


@pytest.mark.slow
def test_ctrl_c_marks_the_trial_failed_and_a_rerun_resumes(cli_inputs, tmp_path, start, capsys):
    space = tiny_space(tmp_path, "slow")
    db = tmp_path / "faults.db"
    args = run_args(cli_inputs, db, space, 1)
    proc = start(args)
    [interrupted] = wait_until_training(proc, db)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    err = (tmp_path / "stderr.txt").read_text()
    assert RESUME_HINT in err and "Traceback" not in err
    trial = trials_of(db)[interrupted.number]
    assert trial.state == TrialState.FAIL
    assert "interrupted" in trial.user_attrs["fail_reason"]

    assert main(args) == 0  # the interrupted student is retried, like one whose worker died
    after = trials_of(db)
    states = [t.state for t in after]
    assert states.count(TrialState.COMPLETE) == 1 and TrialState.RUNNING not in states
    [retry] = [t for t in after if t.system_attrs.get("failed_trial") == interrupted.number]
    assert retry.state == TrialState.COMPLETE and retry.params == interrupted.params
    assert "fail_reason" not in retry.user_attrs
    assert "failed x1: interrupted" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stopping_the_parent_of_two_workers_stops_both(cli_inputs, tmp_path, start, signum):
    """SIGINT or SIGTERM to the parent alone (not the terminal's process group) still stops
    the workers: none is left training on its own."""
    space = tiny_space(tmp_path, "slow")
    db = tmp_path / "faults.db"
    proc = start(run_args(cli_inputs, db, space, 6, "--jobs", "2"))
    wait_until_training(proc, db, running=2)
    proc.send_signal(signum)
    assert proc.wait(timeout=90) == 130
    assert RESUME_HINT in (tmp_path / "stderr.txt").read_text()
    trials = trials_of(db)  # both workers have exited: the parent joins them before exiting
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert stopped  # a worker whose trial had just completed stops between trials
    assert all("interrupted" in t.user_attrs["fail_reason"] for t in stopped)


@pytest.mark.slow
def test_failing_trials_are_recorded_and_summarised_once_per_kind(cli_inputs, tmp_path, capfd):
    # A plain RNN at an infinite lr diverges (NonFiniteLoss); a
    # 200-frame kernel does not fit 98 frames (RuntimeError). Seed 7 of the random sampler
    # gives nan, raise, nan, ok, ok.
    space = tiny_space(tmp_path, "faulty", rnn="rnn: rnn",
                       lr="lr: {type: categorical, choices: [5.0e-3, .inf]}",
                       kernel_time="kernel_time: {type: categorical, choices: [10, 200]}")
    db = tmp_path / "faults.db"
    optuna.logging.set_verbosity(optuna.logging.INFO)  # the run command must quiet it
    assert main(run_args(cli_inputs, db, space, 2, "--seed", "7")) == 0
    out, err = capfd.readouterr()
    trials = trials_of(db)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    reasons = [t.user_attrs["fail_reason"] for t in failed]
    nan = [r for r in reasons if "loss became" in r]
    raised = [r for r in reasons if r.startswith("RuntimeError")]
    assert len(nan) >= 2 and raised and len(nan) + len(raised) == len(failed), reasons
    lines = [line for line in out.splitlines() if line.startswith("failed x")]
    assert len(lines) == 2, out
    counts = {int(line.split()[1][1:].rstrip(":")) for line in lines}
    assert counts == {len(nan), len(raised)}
    assert "Traceback" not in err and not re.search(r"Trial \d+ failed", err), err[-2000:]


def test_a_trial_interrupted_before_its_objective_is_not_left_running(tmp_path):
    """Ctrl-C inside Optuna's trial creation (after the sampler saw the trial, before the
    objective ran) must not leave a RUNNING trial that other workers would wait on."""
    from kws_search.search.settings import StudySettings
    from kws_search.search.study import open_study
    from kws_search.search.workers import fail_if_left_running

    settings = StudySettings("faults", f"sqlite:///{tmp_path / 'faults.db'}", sampler="random")
    study = open_study(settings, heartbeat=False)
    done = study.ask()
    study.tell(done, [1.0, 1.0, 1.0])
    started = study.ask()  # as if SIGINT arrived now
    fail_if_left_running(settings, study)
    trials = trials_of(tmp_path / "faults.db")
    assert trials[done.number].state == TrialState.COMPLETE
    assert trials[started.number].state == TrialState.FAIL
    assert "interrupted" in trials[started.number].user_attrs["fail_reason"]


@pytest.mark.slow
def test_a_storage_failure_stops_the_run_at_once_and_the_trial_is_retried(
        cli_inputs, tmp_path, start):
    """The artifact folder turns into a file mid-run (a disk gone read-only or full reads the
    same to the trial: an OSError on save): the run stops after that trial, naming the
    failure, instead of training more students into it; the re-run retries the student."""
    space = tiny_space(tmp_path, "slow")
    db = tmp_path / "faults.db"
    artifacts = tmp_path / "faults-artifacts"
    args = run_args(cli_inputs, db, space, 3)
    proc = start(args)
    [broken] = wait_until_training(proc, db, running=1, complete=1)
    shutil.rmtree(artifacts)
    artifacts.write_text("not a folder any more")
    assert proc.wait(timeout=120) == 1
    err = (tmp_path / "stderr.txt").read_text()
    assert f"trial {broken.number} could not be saved: storage failure: " in err, err[-2000:]
    assert "re-run the same command" in err and "Traceback" not in err
    trials = trials_of(db)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]

    artifacts.unlink()
    assert main(args) == 0
    after = trials_of(db)
    [retry] = [t for t in after if t.system_attrs.get("failed_trial") == broken.number]
    assert retry.state == TrialState.COMPLETE and retry.params == broken.params
    assert sum(t.state == TrialState.COMPLETE for t in after) == 3
