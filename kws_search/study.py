"""Studies: storage, samplers, the shared search context, and running workers.

One SQLite database per study under `studies/` by default, or any SQLAlchemy URL (PostgreSQL
for several machines). Workers heartbeat, so a trial whose worker died is marked failed and
retried by the next worker. Re-running the same command resumes the study to the requested
number of completed trials, and workers stop at exactly that number: a worker takes a trial
only while complete + running trials are short of it, and a trial that loses that race to
another worker is pruned before it samples anything.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import json
import logging
import multiprocessing as mp
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import torch
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from kws_search.checkpoint import read_checkpoint
from kws_search.distill import TeacherOutputs, teacher_outputs
from kws_search.evaluate import eval_features, load_eval_set
from kws_search.features import FeatureConfig, FeatureSet, prepare_features
from kws_search.fidelity import finished
from kws_search.measure import bootstrap_interval, predict
from kws_search.objective import (
    DIRECTIONS,
    OBJECTIVES,
    CrossSet,
    SearchContext,
    cross_summary,
    feasible,
    make_objective,
)
from kws_search.samplers import make_sampler
from kws_search.search_space import SearchSpace, load_space
from kws_search.teacher import load_teacher

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 30  # seconds between a running trial's heartbeats
GRACE_PERIOD = 90  # seconds without a heartbeat before the trial is failed and retried
MAX_WAIT_POLL = 5.0  # seconds between looks while other workers finish the last trials
MAX_RETRY = 2  # times one student is retried after its worker died or was interrupted
INTERRUPTED = "interrupted (Ctrl-C / SIGINT)"
STORAGE_FAILURE = "storage failure"  # a trial that could not be saved: the disk, not the student
LOW_DISK = 1 << 30  # bytes free under the artifact folder below which a run warns
CALIBRATION_CLIPS = 512

# Students the seeds reached by hand (BACKGROUND.md), so the front starts where people got.
HAND_TUNED: tuple[dict[str, Any], ...] = (
    {"cnn_channels": 3, "kernel_freq": 7, "kernel_time": 20, "stride_freq": 6,
     "stride_time": 10, "rnn": "gru", "hidden": 12, "layers": 2, "kd_weight": 0.8,
     "temperature": 10.0, "attn_weight": 0.0, "mode": "int8"},
    {"cnn_channels": 4, "kernel_freq": 5, "kernel_time": 20, "stride_freq": 2,
     "stride_time": 8, "rnn": "gru", "hidden": 16, "layers": 1, "kd_weight": 0.8,
     "temperature": 10.0, "attn_weight": 0.0, "mode": "int8"},
)


class StudyError(RuntimeError):
    """A study that cannot be opened or run as asked; the message says what to do."""


@dataclass(frozen=True)
class RunSettings:
    """Where the data, teacher and study live, and how the search runs."""

    data: Path
    keyword: str
    teacher: Path
    study: str
    storage: str
    space: str = "default"
    sampler: str = "gp"
    seed: int = 0
    trials: int = 200
    jobs: int = 1
    timeout: float | None = None
    cache_dir: Path = Path(".cache")
    artifact_dir: Path | None = None
    seed_hand_tuned: bool = True
    features: FeatureConfig = field(default_factory=FeatureConfig)
    heartbeat_interval: int = HEARTBEAT_INTERVAL
    grace_period: int = GRACE_PERIOD
    threads: int = 1  # torch threads per worker: small students train fastest on one
    cross_data: Path | None = None  # clips of another synthesizer, scored for the record only
    allow_changes: bool = False  # resume a study with other data, teacher, features or space


def default_storage(study: str, studies_dir: Path | str = "studies") -> str:
    """SQLite URL of the study's own database under `studies/`."""
    path = Path(studies_dir) / f"{study}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def artifact_dir_for(storage: str, study: str) -> Path:
    """Artifact folder next to a SQLite database, else under `studies/`."""
    if storage.startswith("sqlite:///"):
        return Path(storage[len("sqlite:///"):]).with_name(f"{study}-artifacts")
    return Path("studies") / f"{study}-artifacts"


def open_storage(url: str, heartbeat: bool = True, interval: int = HEARTBEAT_INTERVAL,
                 grace: int = GRACE_PERIOD) -> RDBStorage:
    """An RDBStorage with heartbeats (every `interval` s) and retry of trials whose worker died.

    A trial without a heartbeat for `grace` seconds is failed and queued again, at most twice.
    """
    given, url = url, _with_installed_driver(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgresql"):  # fail fast on a dead host; survive dropped connections
        kwargs["engine_kwargs"] = {"connect_args": {"connect_timeout": 10},
                                   "pool_pre_ping": True}
    if heartbeat:
        kwargs.update(heartbeat_interval=interval, grace_period=grace,
                      heartbeat_stale_trial_callback=retry_trial)
    try:
        storage = _rdb_storage(url, kwargs)
    except Exception as exc:  # sqlalchemy raises many kinds for bad URLs and dead servers
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, ImportError) or "Failed to import DB access module" in first:
            driver = url.split("://")[0]
            raise StudyError(f"cannot open storage {masked_url(given)!r}: the database driver "
                             f"for {driver} is not installed; run pip install -e "
                             "\".[postgres]\" (psycopg2) and use a postgresql:// URL") from None
        raise StudyError(f"cannot open storage {masked_url(given)!r}: {first}; check the URL "
                         "(e.g. sqlite:///studies/x.db or postgresql://user:pw@host/db) "
                         "and that the server is reachable") from None
    if url.startswith("sqlite:///") and ":memory:" not in url:
        _serialize_sqlite(storage)
    return storage


def retry_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue `trial`'s student again: a trial whose worker died (called by the heartbeat
    check) or was interrupted. At most MAX_RETRY retries per original trial. Like Optuna's
    RetryFailedTrialCallback (same `failed_trial` and `retry_history` system attributes, read by
    its `retried_trial_number`), but without the lost run's user attributes and constraint, which
    would otherwise describe the retry (a stale failure reason, rung numbers it never reached)."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRY or not trial.params:
        return
    study.add_trial(optuna.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        system_attrs={"failed_trial": history[0], "retry_history": history}))


def retry_interrupted(study: optuna.Study, target: int) -> int:
    """Queue again the students of trials stopped by Ctrl-C or a storage failure (not yet
    retried), as far as the study is short of `target`; returns how many."""
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    waiting = sum(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in trials)
    room = target - sum(finished(t) for t in trials) - waiting
    queued = 0
    for t in trials:
        if (queued < room and t.state == TrialState.FAIL and t.number not in retried
                and t.user_attrs.get("fail_reason", "").startswith((INTERRUPTED,
                                                                     STORAGE_FAILURE))):
            retry_trial(study, t)
            queued += 1
    return queued


def _with_installed_driver(url: str) -> str:
    """`postgresql://` means psycopg 3 to SQLAlchemy 2.1; use psycopg2 when only it is here."""
    if (url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None
            and importlib.util.find_spec("psycopg2") is not None):
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def masked_url(url: str) -> str:
    """The URL with its password masked, for messages."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: nothing to mask
        return url


def _rdb_storage(url: str, kwargs: dict[str, Any]) -> RDBStorage:
    """RDBStorage(url), retried when another process is creating the same new database's
    tables at that moment (workers started together on a new study race on the schema)."""
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, **kwargs)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            racing = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)
            if not racing or attempt == 2:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def _serialize_sqlite(storage: RDBStorage) -> None:
    """Make every SQLite transaction take the write lock at its start (BEGIN IMMEDIATE).

    Optuna claims a queued (WAITING) trial by reading its state and then updating it. The
    sqlite3 driver runs that read outside any transaction, so two worker processes can both
    see WAITING and both run the same trial (the SQLite caveat of `enqueue_trial`; PostgreSQL
    locks the row instead). With BEGIN IMMEDIATE the read and the update are one locked step;
    waiting for the lock uses the 60 s busy timeout. SQLAlchemy's documented pysqlite recipe.
    """
    engine = storage.engine

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the "begin" hook below starts them

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # pooled connections were opened before the hooks


def open_study(settings: RunSettings, heartbeat: bool = True) -> optuna.Study:
    """Create or load the study (same name, same storage = resume)."""
    sampler = make_sampler(settings.sampler, settings.seed)
    storage = open_storage(settings.storage, heartbeat, settings.heartbeat_interval,
                           settings.grace_period)
    study = optuna.create_study(storage=storage, study_name=settings.study, sampler=sampler,
                                directions=list(DIRECTIONS), load_if_exists=True)
    if [d.name.lower() for d in study.directions] != list(DIRECTIONS):
        raise StudyError(f"study {settings.study!r} in {settings.storage} is not a kws-search "
                         "study (other objectives); choose another --study name")
    if study.metric_names != list(OBJECTIVES):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(OBJECTIVES))
    return study


# What makes a study's trials comparable: fixed when it is created (names for messages)
IDENTITY = {"dataset_fingerprint": "dataset", "teacher_sha256": "teacher", "keyword": "keyword",
            "features": "feature config", "space_params": "search space"}


def study_identity(settings: RunSettings, space: SearchSpace) -> dict[str, Any]:
    """The study's identity from the settings, read cheaply (the teacher file names the data
    it was trained on; `load_teacher` later checks the data folder against it)."""
    state = read_checkpoint(settings.teacher)
    digest = hashlib.sha256(Path(settings.teacher).read_bytes()).hexdigest()
    identity = {"dataset_fingerprint": state.get("dataset_fingerprint"),
                "teacher_sha256": digest, "keyword": settings.keyword,
                "features": settings.features.to_dict(), "space_params": space.identity()}
    return json.loads(json.dumps(identity))  # as stored: tuples become lists


def check_identity(study: optuna.Study, identity: dict[str, Any], allow_changes: bool) -> None:
    """Refuse to resume a study with trials measured against other data, teacher, features,
    keyword or space; with `allow_changes`, go on and record what changed. Then store it."""
    stored = study.user_attrs
    changed = [k for k in IDENTITY if k in stored and stored[k] != identity[k]]
    trials = study.get_trials(deepcopy=False)
    if changed and trials and not allow_changes:
        what = ", ".join(IDENTITY[k] for k in changed)
        hint = {"dataset_fingerprint": f" (it holds trials on {stored.get('data', '?')})",
                "teacher_sha256": f" (its teacher: {stored.get('teacher_path', '?')})"}
        raise StudyError(
            f"study {study.study_name!r} has {len(trials)} trials measured with a different {what}"
            f"{''.join(hint.get(k, '') for k in changed[:1])}; use a new --study name, or "
            "--allow-changes to continue it on purpose (the change is recorded)")
    if changed and trials:
        log = list(stored.get("changes", []))
        log.append({"at_trial": len(trials), "changed": [IDENTITY[k] for k in changed]})
        study.set_user_attr("changes", log)
        logger.warning("study %s: continuing with another %s (--allow-changes; recorded in "
                       "its 'changes' attribute)", study.study_name,
                       ", ".join(IDENTITY[k] for k in changed))
    for key, value in identity.items():
        if stored.get(key) != value:
            study.set_user_attr(key, value)


def check_writable(folder: Path) -> None:
    """The artifact folder takes a file (before any student trains for it); warn when the
    disk under it is nearly full."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise StudyError(f"artifact folder {folder} is not writable ({exc.strerror or exc}); "
                         "fix it or pass --artifact-dir") from None
    free = shutil.disk_usage(folder).free
    if free < LOW_DISK:
        logger.warning("only %d MiB free under %s; every complete trial stores a checkpoint "
                       "there", free >> 20, folder)


def build_context(settings: RunSettings, progress: bool = True) -> SearchContext:
    """Features, teacher, teacher outputs and calibration clips: once per worker."""
    features = prepare_features(settings.data, settings.keyword, settings.features,
                                settings.cache_dir, progress=progress)
    teacher, metrics = load_teacher(settings.teacher, features)
    metrics = _with_quality_interval(metrics, teacher, features)
    outputs = _cached_teacher_outputs(teacher, features, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    pick = torch.randperm(features.train.shape[1], generator=generator)[:CALIBRATION_CLIPS]
    artifacts = _ensure_dir(settings.artifact_dir
                            or artifact_dir_for(settings.storage, settings.study))
    cross = None
    if settings.cross_data is not None:
        cross = _cross_set(settings, teacher, metrics.get("threshold", 0.5))
    return SearchContext(features, outputs, metrics, features.train[0, pick].float(), artifacts,
                         cross)


def _with_quality_interval(metrics: dict[str, Any], teacher: torch.nn.Module,
                           features: FeatureSet) -> dict[str, Any]:
    """Teacher metrics with the validation interval; teachers saved before it was measured
    get it here (one pass over the validation split)."""
    if "val_quality_lo" in metrics:
        return metrics
    labels = features.validation_labels.numpy()
    lo, hi = bootstrap_interval(predict(teacher, features.validation), labels)
    return {**metrics, "val_quality_lo": lo, "val_quality_hi": hi}


def _cross_set(settings: RunSettings, teacher: torch.nn.Module, threshold: float) -> CrossSet:
    """The cross-engine clips, their features, and the teacher's numbers on them."""
    eval_set = load_eval_set(settings.cross_data, settings.keyword, settings.features)
    cross = CrossSet(eval_set, eval_features(eval_set, settings.features), {})
    cross = replace(cross, teacher=cross_summary(teacher, cross, threshold))
    logger.info("cross-engine set %s: %d clips, teacher quality %.3e", eval_set.describe(),
                len(eval_set.paths), cross.teacher["quality"])
    return cross


def _ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached_teacher_outputs(teacher: torch.nn.Module, features: Any,
                            settings: RunSettings) -> TeacherOutputs:
    """Teacher outputs over the cached train copies, saved beside the feature cache."""
    stamp = int(settings.teacher.stat().st_mtime_ns)
    path = settings.cache_dir / f"teacher-outputs-{features.fingerprint[:12]}-{stamp}.pt"
    if path.is_file():
        try:
            state = torch.load(path, weights_only=True)
            return TeacherOutputs(state["logits"], state["attention"])
        except Exception as exc:  # truncated or foreign: say which file, then rebuild it
            logger.warning("teacher outputs cache %s is unreadable (%s); rebuilding it", path,
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    outputs = teacher_outputs(teacher, features.train)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"logits": outputs.logits, "attention": outputs.attention}, tmp)
    os.replace(tmp, path)
    return outputs


def record_study_info(study: optuna.Study, settings: RunSettings, context: SearchContext,
                      space: SearchSpace) -> None:
    """Teacher numbers, the bar and the setup, as study user attributes (for report, export)."""
    info = {
        "teacher": {k: v for k, v in context.teacher_metrics.items()
                    if isinstance(v, (int, float, str))},
        "quality_bar": context.quality_bar,
        "keyword": settings.keyword,
        "data": str(Path(settings.data).resolve()),
        "dataset_fingerprint": context.features.fingerprint,
        "teacher_path": str(Path(settings.teacher).resolve()),
        "space": space.text,
        "features": settings.features.to_dict(),
        "artifact_dir": str(context.artifact_dir.resolve()) if context.artifact_dir else "",
    }
    if context.cross is not None:  # recorded only; absent without --cross-data
        info["cross_data"] = str(Path(context.cross.eval_set.root).resolve())
        info["teacher_cross"] = dict(context.cross.teacher)
    for key, value in info.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


def seed_hand_tuned(study: optuna.Study, space: SearchSpace) -> int:
    """Enqueue the seeds' hand-tuned students (values the space can hold) into a new study.

    Each queued trial is claimed by exactly one worker: PostgreSQL locks the row, and SQLite
    storages from `open_storage` take the write lock for the claim (`_serialize_sqlite`).
    """
    if study.get_trials(deepcopy=False):
        return 0
    dists = space.distributions()
    queued = 0
    for params in HAND_TUNED:
        fixed = {k: v for k, v in params.items() if k in dists}
        if all(dists[k]._contains(dists[k].to_internal_repr(v)) for k, v in fixed.items()):
            study.enqueue_trial(fixed, skip_if_exists=True)
            queued += 1
    return queued


def feasible_front(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Pareto front of the complete, feasible trials (min quality, max speed-up, compression)."""
    pool = [t for t in trials if t.state == TrialState.COMPLETE and feasible(t)]

    def dominates(a: FrozenTrial, b: FrozenTrial) -> bool:
        qa, sa, ca = a.values
        qb, sb, cb = b.values
        return qa <= qb and sa >= sb and ca >= cb and (qa, sa, ca) != (qb, sb, cb)

    return sorted((t for t in pool if not any(dominates(o, t) for o in pool)),
                  key=lambda t: t.values[0])


@dataclass
class Progress:
    """What the progress bar shows."""

    complete: int = 0
    pruned: int = 0  # stopped at a rung (multi-fidelity); they count towards --trials
    failed: int = 0
    running: int = 0
    front: int = 0
    best_speedup: float = 0.0
    best_compression: float = 0.0
    fail_reasons: collections.Counter = field(default_factory=collections.Counter)


def summarize(study: optuna.Study) -> Progress:
    """Counts for the progress bar; failures grouped by kind (reasons that differ only in
    numbers, like the step a loss turned NaN, count as one, shown by their first example)."""
    trials = study.get_trials(deepcopy=False)
    state = Progress()
    examples: dict[str, str] = {}
    for t in trials:
        if t.state == TrialState.COMPLETE:
            state.complete += 1
        elif finished(t):
            state.pruned += 1
        elif t.state == TrialState.FAIL:
            state.failed += 1
            reason = t.user_attrs.get("fail_reason", "unknown (worker died?)")
            state.fail_reasons[examples.setdefault(_reason_kind(reason), reason)] += 1
        elif t.state == TrialState.RUNNING:
            state.running += 1
    front = feasible_front(trials)
    state.front = len(front)
    state.best_speedup = max((t.values[1] for t in front), default=0.0)
    state.best_compression = max((t.values[2] for t in front), default=0.0)
    return state


def _reason_kind(reason: str) -> str:
    """A failure reason with its numbers blanked, to group reasons of one kind."""
    return re.sub(r"\b\d+(\.\d+)?(e[-+]?\d+)?\b", "#", reason)


def _with_fail_reason(objective: Callable, target: int) -> Callable:
    """Prune a trial another worker made surplus; record why a trial failed as a user
    attribute, then let Optuna mark it failed."""
    def wrapped(trial: optuna.Trial) -> Any:
        _prune_if_surplus(trial, target)
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except (OSError, sqlalchemy.exc.OperationalError) as exc:  # the disk, not the student
            trial.set_user_attr("fail_reason", f"{STORAGE_FAILURE}: {_storage_text(exc)}"[:300])
            raise
        except Exception as exc:
            if "fail_reason" not in trial.user_attrs:
                trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:300])
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", INTERRUPTED)
            raise
    return wrapped


def _storage_text(exc: Exception) -> str:
    """What failed, in one line: the OS reason and path, or the database's message."""
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0]


def _prune_if_surplus(trial: optuna.Trial, target: int) -> None:
    """Prune, before any sampling, a trial started when the study was already full.

    Two workers can both see one missing trial and both start one. Trial numbers are given out
    in order, so the later one sees the earlier one RUNNING here and steps back: the study ends
    with exactly `target` complete trials. If the earlier one then fails, its worker runs
    another, so nothing is lost.
    """
    trials = trial.study.get_trials(deepcopy=False)
    complete = sum(finished(t) for t in trials)
    ahead = sum(t.state == TrialState.RUNNING and t.number < trial.number for t in trials)
    if complete + ahead >= target:
        trial.set_user_attr("surplus", f"not needed: {complete} finished and {ahead} running "
                                       f"trials already cover the {target} requested")
        raise optuna.TrialPruned("surplus")


def run_worker(settings: RunSettings, threads: int, progress: bool = False,
               on_trial: Callable[[], None] | None = None,
               context: SearchContext | None = None) -> None:
    """One worker: take trials until the study holds `settings.trials` complete ones.

    While the missing trials are all RUNNING elsewhere, wait rather than stop: one of them may
    still fail, or belong to a killed worker (failed and re-queued once its heartbeat is older
    than the grace period).
    """
    torch.set_num_threads(threads)
    _import_lazy_torch()
    space = load_space(settings.space)
    context = context or build_context(settings, progress=progress)
    study = open_study(settings)
    objective = _with_fail_reason(make_objective(context, space), settings.trials)
    deadline = None if settings.timeout is None else time.monotonic() + settings.timeout
    done: list[FrozenTrial] = []  # this worker's trials, as Optuna told them
    consecutive_failures = 0
    told_waiting = False
    while deadline is None or time.monotonic() < deadline:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        complete = sum(finished(t) for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if complete >= settings.trials:
            break
        if complete + running >= settings.trials:
            if not told_waiting:  # loud on a fresh start (resume after a kill), quiet at the end
                logger.log(logging.INFO if done else logging.WARNING,
                           "waiting for %d running trial(s) to finish the study; a trial of a "
                           "killed worker is retried after %d s without heartbeat",
                           running, settings.grace_period)
                told_waiting = True
            time.sleep(min(MAX_WAIT_POLL, settings.heartbeat_interval))
            continue
        told_waiting = False
        try:
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False,
                           callbacks=[lambda _study, trial: done.append(trial)])
        except KeyboardInterrupt:
            _fail_if_left_running(settings, study)
            raise
        except sqlalchemy.exc.SQLAlchemyError as exc:  # the database itself failed
            raise StudyError(f"the study storage {masked_url(settings.storage)} failed: "
                             f"{_storage_text(exc)}; fix it (disk space, server), then re-run "
                             "the same command to resume") from None
        if done and done[-1].state == TrialState.PRUNED and "surplus" in done[-1].user_attrs:
            continue  # another worker took the last slot
        failed = bool(done) and done[-1].state == TrialState.FAIL
        consecutive_failures = consecutive_failures + 1 if failed else 0
        if on_trial:
            on_trial()
        if failed and done[-1].user_attrs.get("fail_reason", "").startswith(STORAGE_FAILURE):
            raise StudyError(f"trial {done[-1].number} could not be saved: "
                             f"{done[-1].user_attrs['fail_reason']}; free space or fix the "
                             "folder, then re-run the same command (the trial is retried)")
        if consecutive_failures >= 20:
            reason = done[-1].user_attrs.get("fail_reason", "unknown")
            raise StudyError(f"20 trials failed in a row, the last with: {reason}; see "
                             "`kws-search report` for all reasons")


def _fail_if_left_running(settings: RunSettings, study: optuna.Study) -> None:
    """Ctrl-C can land while Optuna creates a trial, before the objective runs (which marks
    its trial failed itself): fail that trial too, so an interrupted worker leaves nothing
    RUNNING for other workers to wait on."""
    number = getattr(study.sampler, "last_trial_number", None)
    if number is None:
        return
    storage = open_storage(settings.storage, heartbeat=False)
    study_id = storage.get_study_id_from_name(settings.study)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    if storage.get_trial(trial_id).state == TrialState.RUNNING:
        storage.set_trial_user_attr(trial_id, "fail_reason", INTERRUPTED)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)


def _import_lazy_torch() -> None:
    """Import now what torch imports on the first optimizer (torch._dynamo, about 1 s), so a
    worker's first trial is not slower than the rest (train_seconds) and a Ctrl-C in it does not
    land inside that import (swallowed in a weakref callback, or the exit code lost)."""
    import torch._dynamo  # noqa: F401


def _worker_entry(settings: RunSettings, threads: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # as the CLI does
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    try:
        run_worker(settings, threads)
    except KeyboardInterrupt:
        pass
    except StudyError as exc:  # one line, not a traceback per worker
        logger.error("%s", exc)
        raise SystemExit(1) from None


def run_search(settings: RunSettings, progress: bool = True,
               on_update: Callable[[Progress], None] | None = None) -> optuna.Study:
    """Prepare once, then run `settings.jobs` workers (in this process when jobs == 1)."""
    space = load_space(settings.space)
    study = open_study(settings)
    check_identity(study, study_identity(settings, space), settings.allow_changes)
    check_writable(settings.artifact_dir or artifact_dir_for(settings.storage, settings.study))
    context = build_context(settings, progress=progress)
    record_study_info(study, settings, context, space)
    if settings.seed_hand_tuned:
        queued = seed_hand_tuned(study, space)
        if queued:
            logger.info("queued %d hand-tuned students from the seeds", queued)
    retried = retry_interrupted(study, settings.trials)
    if retried:
        logger.warning("retrying %d student(s) interrupted last time (Ctrl-C or storage)",
                       retried)
    cores = os.cpu_count() or 1
    threads = settings.threads or max(1, cores // settings.jobs)  # 0: share the cores out
    if settings.jobs <= 1:
        def tick() -> None:
            if on_update:
                on_update(summarize(study))
        run_worker(settings, threads, context=context, on_trial=tick)
        return study
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_worker_entry, args=(settings, threads), daemon=False)
               for _ in range(settings.jobs)]
    for w in workers:
        w.start()
    # SIGTERM (`kill`, a job scheduler) would end this process alone and leave the workers
    # training; treat it like Ctrl-C, so they stop and mark their trials interrupted
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main_thread else None
    try:
        while any(w.is_alive() for w in workers):
            time.sleep(2.0)
            if on_update:
                on_update(summarize(study))
    except KeyboardInterrupt:
        _stop_workers(workers)
        raise
    finally:
        for w in workers:
            w.join()
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
    if on_update:
        on_update(summarize(study))
    bad = [w.exitcode for w in workers if w.exitcode not in (0, None)]
    if bad:
        raise StudyError(f"{len(bad)} worker(s) exited with errors {bad}; "
                         "completed trials are kept, re-run the same command to resume")
    return study


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop_workers(workers: list[Any]) -> None:
    """After Ctrl-C: workers in the terminal's process group got SIGINT too; any still alive
    after a moment (the parent alone was signalled) get it now, so each marks its running
    trial failed; the rest are terminated (their trials go stale and are retried)."""
    _join_all(workers, 3.0)
    for w in workers:
        if w.is_alive() and w.pid is not None:
            os.kill(w.pid, signal.SIGINT)
    _join_all(workers, 30.0)
    for w in workers:
        if w.is_alive():
            w.terminate()


def _join_all(workers: list[Any], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for w in workers:
        w.join(timeout=max(0.0, deadline - time.monotonic()))
