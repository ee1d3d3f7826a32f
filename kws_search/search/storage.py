"""Study storage: SQLite or PostgreSQL with heartbeats, retry of lost trials, read access.

One SQLite database per study under `studies/` by default, or any SQLAlchemy URL (PostgreSQL
for several machines). Workers heartbeat, so a trial whose worker died is marked failed and
retried by the next worker. URLs in messages always have their password masked.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from kws_search.errors import KwsSearchError
from kws_search.options import GRACE_PERIOD, HEARTBEAT_INTERVAL
from kws_search.search.attrs import FAIL_REASON, OBJECTIVES
from kws_search.search.fidelity import FINAL_OF, finished, is_final

logger = logging.getLogger(__name__)

MAX_RETRY = 2  # times one student is retried after its worker died or was interrupted
INTERRUPTED = "interrupted (Ctrl-C / SIGINT)"
STORAGE_FAILURE = "storage failure"  # a trial that could not be saved: the disk, not the student
LOW_DISK = 1 << 30  # bytes free under the artifact folder below which a run warns


class StudyError(KwsSearchError, RuntimeError):
    """A study that cannot be opened or run as asked; the message says what to do."""


def sqlite_file(storage: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URL; None for other storages."""
    return Path(storage[len("sqlite:///"):]) if storage.startswith("sqlite:///") else None


def artifact_dir_for(storage: str, study: str) -> Path:
    """Artifact folder next to a SQLite database, else under `studies/`."""
    path = sqlite_file(storage)
    if path is not None:
        return path.with_name(f"{study}-artifacts")
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


def load_study(study_name: str, storage: str, require_trials: bool = True) -> optuna.Study:
    """Open an existing kws-search study to read; a clear error if it is missing or empty."""
    shown = masked_url(storage)
    if sqlite_file(storage) is not None and not sqlite_file(storage).is_file():
        raise StudyError(f"no study database at {shown} (study {study_name!r}); run "
                         f"`kws-search run --study {study_name}` first or pass --storage")
    rdb = open_storage(storage, heartbeat=False)
    names = optuna.get_all_study_names(storage=rdb)
    if study_name not in names:
        known = f"; studies there: {', '.join(sorted(names))}" if names else ""
        raise StudyError(f"no study {study_name!r} in {shown}{known}")
    study = optuna.load_study(study_name=study_name, storage=rdb)
    if len(study.directions) != len(OBJECTIVES):
        raise StudyError(f"study {study_name!r} in {shown} is not a kws-search study "
                         f"({len(study.directions)} objectives, expected {len(OBJECTIVES)})")
    if require_trials and not study.get_trials(deepcopy=False):
        raise StudyError(f"study {study_name!r} in {shown} has no trials yet; run "
                         f"`kws-search run --study {study_name}` first")
    return study


def retry_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue `trial`'s student again: a trial whose worker died (called by the heartbeat
    check) or was interrupted. At most MAX_RETRY retries per original trial. Like Optuna's
    RetryFailedTrialCallback (same `failed_trial` and `retry_history` system attributes, read by
    its `retried_trial_number`), but without the lost run's user attributes and constraint, which
    would otherwise describe the retry (a stale failure reason, rung numbers it never reached)."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRY or not trial.params:
        return
    final = {FINAL_OF: trial.user_attrs[FINAL_OF]} if is_final(trial) else {}  # still one
    study.add_trial(optuna.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs=final, system_attrs={"failed_trial": history[0], "retry_history": history}))


def retry_interrupted(study: optuna.Study, target: int) -> int:
    """Queue again the students of trials stopped by Ctrl-C or a storage failure (not yet
    retried), as far as the study is short of `target`; returns how many."""
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    search = [t for t in trials if not is_final(t)]
    waiting = sum(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in search)
    room = target - sum(finished(t) for t in search) - waiting
    queued = 0
    for t in trials:  # an interrupted finalist is always queued again: it is one of a few
        if ((queued < room or is_final(t)) and t.state == TrialState.FAIL
                and t.number not in retried
                and t.user_attrs.get(FAIL_REASON, "").startswith((INTERRUPTED,
                                                                     STORAGE_FAILURE))):
            retry_trial(study, t)
            queued += not is_final(t)
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


def remove_if_untried(path: Path, study: str) -> None:
    """Delete a SQLite file this run made when its study holds no trial (and its empty
    artifact folder)."""
    if not path.is_file():
        return
    try:
        summaries = optuna.get_all_study_summaries(f"sqlite:///{path}")
    except Exception:  # not a study database after all: leave it alone
        return
    if all(s.n_trials == 0 for s in summaries):
        path.unlink()
        artifacts = artifact_dir_for(f"sqlite:///{path}", study)
        if artifacts.is_dir() and not any(artifacts.iterdir()):
            artifacts.rmdir()


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


def storage_text(exc: Exception) -> str:
    """What failed, in one line: the OS reason and path, or the database's message."""
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0]
