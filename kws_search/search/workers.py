"""Running a search: worker processes that take trials until the study is full.

Re-running the same command resumes the study to the requested number of finished trials,
and workers stop at exactly that number: a worker takes a trial only while finished + running
trials are short of it, and a trial that loses that race to another worker is pruned before it
samples anything. Ctrl-C and SIGTERM stop every worker and mark their trials interrupted, to be
retried on the next run.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy
import torch
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from kws_search.search.attrs import FAIL_REASON, SURPLUS
from kws_search.search.context import SearchContext, build_context
from kws_search.search.fidelity import FINAL_OF, finished, is_final
from kws_search.search.interrupts import CtrlC, raise_interrupt, stop_workers
from kws_search.search.objective import make_objective
from kws_search.search.progress import Progress, progress_of
from kws_search.search.queue import queue_finalists, queue_hand_tuned
from kws_search.search.samplers import TrialSeededSampler
from kws_search.search.settings import RunSettings, StudySettings
from kws_search.search.space import load_space
from kws_search.search.storage import (
    INTERRUPTED,
    STORAGE_FAILURE,
    StudyError,
    artifact_dir_for,
    check_writable,
    masked_url,
    open_storage,
    retry_interrupted,
    storage_text,
)
from kws_search.search.study import (
    check_identity,
    open_study,
    record_study_info,
    stored_teacher_hop_us,
    study_identity,
)

logger = logging.getLogger(__name__)

MAX_FAILURES = 20  # trials failed in a row that stop a worker

MAX_WAIT_POLL = 5.0  # seconds between looks while other workers finish the last trials


def with_fail_reason(objective: Callable, target: int, ctrl_c: CtrlC) -> Callable:
    """Prune a trial another worker made surplus; record why a trial failed as a user
    attribute, then let Optuna mark it failed. Ctrl-C, held while Optuna made the trial,
    comes through here: the trial exists and is failed as interrupted."""
    def wrapped(trial: optuna.Trial) -> Any:
        if FINAL_OF not in trial.user_attrs:  # finalists are queued: each is taken once
            _prune_if_surplus(trial, target)
        try:
            with ctrl_c.let_through():
                return objective(trial)
        except optuna.TrialPruned:
            raise
        except (OSError, sqlalchemy.exc.OperationalError) as exc:  # the disk, not the student
            trial.set_user_attr(FAIL_REASON, f"{STORAGE_FAILURE}: {storage_text(exc)}"[:300])
            raise
        except Exception as exc:
            if FAIL_REASON not in trial.user_attrs:
                trial.set_user_attr(FAIL_REASON, f"{type(exc).__name__}: {exc}"[:300])
            raise
        except KeyboardInterrupt:
            trial.set_user_attr(FAIL_REASON, INTERRUPTED)
            raise
    return wrapped


def _prune_if_surplus(trial: optuna.Trial, target: int) -> None:
    """Prune, before any sampling, a trial started when the study was already full.

    Two workers can both see one missing trial and both start one. Trial numbers are given out
    in order, so the later one sees the earlier one RUNNING here and steps back: the study ends
    with exactly `target` complete trials. If the earlier one then fails, its worker runs
    another, so nothing is lost.
    """
    trials = [t for t in trial.study.get_trials(deepcopy=False) if not is_final(t)]
    complete = sum(finished(t) for t in trials)
    ahead = sum(t.state == TrialState.RUNNING and t.number < trial.number for t in trials)
    if complete + ahead >= target:
        trial.set_user_attr(SURPLUS, f"not needed: {complete} finished and {ahead} running "
                                       f"trials already cover the {target} requested")
        raise optuna.TrialPruned(SURPLUS)


def run_worker(settings: RunSettings, threads: int, progress: bool = False,
               on_trial: Callable[[], None] | None = None,
               context: SearchContext | None = None, final: bool = False) -> None:
    """One worker: take trials until the study holds `settings.study.trials` finished search
    trials, or (`final`) until no queued finalist is left.

    While the missing trials are all RUNNING elsewhere, wait rather than stop: one of them may
    still fail, or belong to a killed worker (failed and re-queued once its heartbeat is older
    than the grace period).
    """
    torch.set_num_threads(threads)
    _import_lazy_torch()
    space = load_space(settings.study.space)
    study = open_study(settings.study, settings.workers)
    context = context or build_context(settings.data, settings.study, progress=progress,
                                       teacher_hop_us=stored_teacher_hop_us(study))
    with CtrlC() as ctrl_c:
        objective = with_fail_reason(make_objective(context, space, ctrl_c.check),
                                      settings.study.trials, ctrl_c)
        take_trials(settings, study, objective, on_trial, ctrl_c, final)


def take_trials(settings: RunSettings, study: optuna.Study, objective: Callable,
                 on_trial: Callable[[], None] | None, ctrl_c: CtrlC,
                 final: bool = False) -> None:
    """The worker loop of `run_worker`."""
    workers = settings.workers
    deadline = None if workers.timeout is None else time.monotonic() + workers.timeout
    done: list[FrozenTrial] = []  # this worker's trials, as Optuna told them
    consecutive_failures = 0
    told_waiting = False
    while deadline is None or time.monotonic() < deadline:
        complete, running, target = _stage_counts(study, settings.study.trials, final)
        if complete >= target:
            break
        if complete + running >= target:
            if not told_waiting:  # loud on a fresh start (resume after a kill), quiet at the end
                logger.log(logging.INFO if done else logging.WARNING,
                           "waiting for %d running trial(s) to finish the study; a trial of a "
                           "killed worker is retried after %d s without heartbeat",
                           running, workers.grace_period)
                told_waiting = True
            time.sleep(min(MAX_WAIT_POLL, workers.heartbeat_interval))
            continue
        told_waiting = False
        try:
            ctrl_c.check()
            with ctrl_c.held():  # not while Optuna creates or stores a trial (see CtrlC)
                study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False,
                               callbacks=[lambda _study, trial: done.append(trial)])
        except KeyboardInterrupt:
            fail_if_left_running(settings.study, study)
            raise
        except sqlalchemy.exc.SQLAlchemyError as exc:  # the database itself failed
            raise StudyError(f"the study storage {masked_url(settings.study.storage)} failed: "
                             f"{storage_text(exc)}; fix it (disk space, server), then re-run "
                             "the same command to resume") from None
        if done and done[-1].state == TrialState.PRUNED and SURPLUS in done[-1].user_attrs:
            continue  # another worker took the last slot
        failed = bool(done) and done[-1].state == TrialState.FAIL
        consecutive_failures = consecutive_failures + 1 if failed else 0
        if on_trial:
            on_trial()
        if failed:
            _stop_on_failures(done[-1], consecutive_failures)
    ctrl_c.check()  # a Ctrl-C lost in the last trial still stops the command (exit 130)


def _stage_counts(study: optuna.Study, trials: int, final: bool) -> tuple[int, int, int]:
    """(finished, running, target) of the stage: the search stops at `trials`, the final
    stage when its queue is empty. A dead worker's trial is failed first: Optuna does that only
    as it starts a new trial, and a worker waiting for the study's last trials starts none
    (`fail_stale_trials`: public, experimental)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)
    mine = [t for t in study.get_trials(deepcopy=False) if is_final(t) == final]
    complete = sum(finished(t) for t in mine)
    running = sum(t.state == TrialState.RUNNING for t in mine)
    waiting = sum(t.state == TrialState.WAITING for t in mine)
    return complete, running, complete + running + waiting if final else trials


def _stop_on_failures(trial: FrozenTrial, in_a_row: int) -> None:
    """StudyError when a failed trial could not be saved (the disk or folder), or when
    `MAX_FAILURES` trials failed in a row (something no retry fixes)."""
    reason = trial.user_attrs.get(FAIL_REASON, "")
    if reason.startswith(STORAGE_FAILURE):
        raise StudyError(f"trial {trial.number} could not be saved: {reason}; free space or "
                         "fix the folder, then re-run the same command (the trial is retried)")
    if in_a_row >= MAX_FAILURES:
        raise StudyError(f"{MAX_FAILURES} trials failed in a row, the last with: "
                         f"{reason or 'unknown'}; see `kws-search report` for all reasons")


def fail_if_left_running(settings: StudySettings, study: optuna.Study) -> None:
    """Ctrl-C can land while Optuna creates a trial, before the objective runs (which marks
    its trial failed itself): fail that trial too, so an interrupted worker leaves nothing
    RUNNING for other workers to wait on."""
    sampler = study.sampler  # every study of a run has one (`open_study`)
    number = sampler.last_trial_number if isinstance(sampler, TrialSeededSampler) else None
    if number is None:
        return
    storage = open_storage(settings.storage, heartbeat=False)
    study_id = storage.get_study_id_from_name(settings.name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    if storage.get_trial(trial_id).state == TrialState.RUNNING:
        storage.set_trial_user_attr(trial_id, FAIL_REASON, INTERRUPTED)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)


def _import_lazy_torch() -> None:
    """Build a throwaway optimizer now: torch imports its compiler stack on the first one
    (about 1 s), so a worker's first trial is not slower than the rest (train_seconds) and a
    Ctrl-C in it does not land inside that import (swallowed in a weakref callback, or the exit
    code lost)."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def _worker_entry(settings: RunSettings, threads: int, final: bool = False) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # as the CLI does
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    try:
        run_worker(settings, threads, final=final)
    except KeyboardInterrupt:
        pass
    except StudyError as exc:  # one line, not a traceback per worker
        logger.error("%s", exc)
        raise SystemExit(1) from None


def run_search(settings: RunSettings, progress: bool = True,
               on_update: Callable[[Progress], None] | None = None) -> optuna.Study:
    """Prepare once, then run `settings.workers.jobs` workers (in this process when jobs is
    1)."""
    data, config = settings.data, settings.study
    space = load_space(config.space)
    study = open_study(config, settings.workers)
    check_identity(study, study_identity(data, config.measures, space), config.allow_changes)
    check_writable(config.artifact_dir or artifact_dir_for(config.storage, config.name))
    context = build_context(data, config, progress=progress,
                            teacher_hop_us=stored_teacher_hop_us(study))
    record_study_info(study, data, context, space)
    if config.queue_hand_tuned:
        queued = queue_hand_tuned(study, space)
        if queued:
            logger.info("queued %d hand-tuned students of the course reports", queued)
    retried = retry_interrupted(study, config.trials)
    if retried:
        logger.warning("retrying %d student(s) interrupted last time (Ctrl-C or storage)",
                       retried)
    _run_workers(settings, study, context, on_update)
    search = [t for t in study.get_trials(deepcopy=False) if not is_final(t)]
    if sum(finished(t) for t in search) < config.trials:  # stopped by --timeout
        return study
    queued = queue_finalists(study, config.finalists)
    if queued:
        logger.info("training %d finalists the way the teacher was trained", queued)
    waiting = [t for t in study.get_trials(deepcopy=False)
               if is_final(t) and t.state == TrialState.WAITING]
    if waiting:
        _run_workers(settings, study, context, on_update, final=True,
                     jobs=min(settings.workers.jobs, len(waiting)))
    return study


def _run_workers(settings: RunSettings, study: optuna.Study, context: SearchContext,
                 on_update: Callable[[Progress], None] | None, final: bool = False,
                 jobs: int | None = None) -> None:
    """`jobs` (default: settings.workers.jobs) workers on the search or (`final`) the
    finalists, in this process when there is one."""
    jobs = jobs or settings.workers.jobs
    threads = settings.workers.threads
    if jobs <= 1:
        def tick() -> None:
            if on_update:
                on_update(progress_of(study))
        run_worker(settings, threads, context=context, on_trial=tick, final=final)
        return
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_worker_entry, args=(settings, threads, final), daemon=False)
               for _ in range(jobs)]
    for w in workers:
        w.start()
    # SIGTERM (`kill`, a job scheduler) would end this process alone and leave the workers
    # training; treat it like Ctrl-C, so they stop and mark their trials interrupted
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, raise_interrupt) if on_main_thread else None
    try:
        while any(w.is_alive() for w in workers):
            time.sleep(2.0)
            if on_update:
                on_update(progress_of(study))
    except KeyboardInterrupt:
        stop_workers(workers)
        raise
    finally:
        for w in workers:
            w.join()
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
    if on_update:
        on_update(progress_of(study))
    bad = [w.exitcode for w in workers if w.exitcode not in (0, None)]
    if bad:
        raise StudyError(f"{len(bad)} worker(s) exited with errors {bad}; "
                         "completed trials are kept, re-run the same command to resume")
