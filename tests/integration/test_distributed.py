"""Several worker processes on one study: PostgreSQL (as on several machines) and SQLite.

Checks what a user relies on when scaling out: the study ends with exactly the requested
number of complete trials, trial numbers are unique, each queued trial runs exactly once, no
two workers train the same sampled student, and every complete trial has its measures and
checkpoint artifact.

The PostgreSQL test reads KWS_TEST_POSTGRES_URL (`bash .ci/postgres.sh` prints one); it is
skipped without it, except under CI=true, where a missing URL fails it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from kws_search.search.context import build_context
from kws_search.search.queue import HAND_TUNED
from kws_search.search.space import load_space
from kws_search.search.storage import open_storage
from kws_search.search.study import open_study
from kws_search.search.workers import run_search

MEASURES = ("val_quality", "macs", "bytes", "params", "latency_ms", "quant",
            "speedup", "compression", "checkpoint_artifact")
# Students queued by hand into the tiny space, like the seeds' hand-tuned ones.
QUEUED = [
    {"cnn_channels": c, "kernel_time": 10, "stride_freq": 3, "rnn": "gru", "hidden": h,
     "kd_weight": 0.5, "temperature": 2.0, "attn_weight": 0.1, "mode": "none"}
    for c, h in ((2, 4), (3, 5), (4, 6))
]
# The tiny space widened so that it holds the seeds' hand-tuned students (HAND_TUNED).
HAND_TUNED_SPACE = """
model:
  cnn_channels: {type: int, low: 3, high: 4}
  kernel_freq: {type: int, low: 5, high: 7}
  kernel_time: 20
  stride_freq: {type: int, low: 2, high: 6}
  stride_time: {type: int, low: 8, high: 10}
  rnn: {type: categorical, choices: [gru]}
  hidden: {type: int, low: 12, high: 16}
  layers: {type: int, low: 1, high: 2}
distill:
  kd_weight: {type: float, low: 0.0, high: 1.0}
  temperature: {type: float, low: 1.0, high: 10.0, log: true}
  attn_weight: {type: float, low: 0.0, high: 0.5}
train:
  epochs: 1
  lr: 5.0e-3
  batch_size: 32
  spec_augment: false
quant:
  mode: {type: categorical, choices: [none, int8]}
"""


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL; session-scoped and first in the test's arguments, so a skip
    comes before the tiny data and teacher are made."""
    url = os.environ.get("KWS_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("CI is set but KWS_TEST_POSTGRES_URL is not: run `bash .ci/postgres.sh` "
                    "and export the URL it prints, so the PostgreSQL test cannot be skipped")
    pytest.skip("set KWS_TEST_POSTGRES_URL (see .ci/postgres.sh) to run the PostgreSQL test")


def check_study(study: optuna.Study, settings, queued: list[dict]) -> None:
    """Exactly `settings.study.trials` complete, unique numbers, queued ones once, attrs,
    artifacts."""
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), numbers
    states = [t.state for t in trials]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == settings.study.trials, states
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert not [t for t in trials if t.state == TrialState.FAIL], \
        [t.user_attrs.get("fail_reason") for t in trials]
    for t in trials:  # pruned = stepped back from a slot another worker had taken
        assert t.state != TrialState.PRUNED or ("surplus" in t.user_attrs and not t.params)
    runs_of = {tuple(sorted(p.items())): [t for t in trials if p.items() <= t.params.items()]
               for p in queued}
    for params, runs in runs_of.items():  # each queued student ran once, with its values
        assert len(runs) == 1 and runs[0].state == TrialState.COMPLETE, params
    for t in complete:
        assert set(MEASURES) <= set(t.user_attrs)
        assert (settings.study.artifact_dir / t.user_attrs["checkpoint_artifact"]).is_file()
    queued_runs = {t.number for runs in runs_of.values() for t in runs}
    sampled = [tuple(sorted(t.params.items())) for t in complete if t.number not in queued_runs]
    assert len(sampled) == len(set(sampled)), "two workers trained the same student"


def machine(settings) -> None:
    """What `kws-search run` does on one machine (spawned: a separate process)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    run_search(settings, progress=False)


@pytest.mark.slow
def test_two_machines_share_a_postgresql_study(postgres_url, tiny_data, tiny_teacher, tmp_path,
                                               tiny_settings):
    url = postgres_url
    name = f"kws-test-{uuid.uuid4().hex[:8]}"
    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, storage=url, name=name,
                             trials=7, threads=1)
    build_context(settings.data, settings.study, progress=False)  # the caches, made once
    study = open_study(settings.study)
    for params in QUEUED:
        study.enqueue_trial(params)
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=machine, args=(settings,)) for _ in range(2)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=240)
        assert [w.exitcode for w in workers] == [0, 0]
        check_study(study, settings, QUEUED)
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
        optuna.delete_study(study_name=name, storage=url)


@pytest.mark.slow
def test_jobs_2_on_sqlite_runs_each_hand_tuned_student_once(tiny_data, tiny_teacher, tmp_path,
                                                             tiny_settings):
    space = tmp_path / "hand.yaml"
    space.write_text(HAND_TUNED_SPACE)
    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, space=str(space), trials=5,
                             jobs=2, threads=1)
    study = run_search(settings, progress=False)
    dists = load_space(space).distributions()
    # the seeds' students; the teacher's own shape (hidden 64) and the one-channel students
    # are outside this space
    queued = [{k: v for k, v in p.items() if k in dists} for p in HAND_TUNED
              if p["hidden"] <= 16 and p["cnn_channels"] >= 3]
    assert len(queued) == 2
    check_study(study, settings, queued)


def claim_waiting(url: str, name: str, ready: Any, out: Any) -> None:
    """Claim queued trials as fast as possible, all processes at once."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=False))
    study.get_trials()  # connected
    ready.wait()
    out.put([study.ask().number for _ in range(12)])


@pytest.mark.slow
def test_sqlite_hands_each_queued_trial_to_one_process(tmp_path: Path):
    """Optuna's SQLite caveat (two workers taking one queued trial) does not happen here."""
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="queue", storage=open_storage(url, heartbeat=False))
    for x in range(30):
        study.enqueue_trial({"x": x})
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    ready = ctx.Barrier(3)
    procs = [ctx.Process(target=claim_waiting, args=(url, "queue", ready, out))
             for _ in range(3)]
    for p in procs:
        p.start()
    claims = [i for _ in procs for i in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(claims) == len(set(claims)) == 36
    assert len(study.get_trials()) == 36
