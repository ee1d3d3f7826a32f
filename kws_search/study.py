"""Studies: storage, samplers, the shared search context, and running workers.

One SQLite database per study under `studies/` by default, or any SQLAlchemy URL (PostgreSQL
for several machines). Workers heartbeat, so a trial whose worker died is marked failed and
retried by the next worker. Re-running the same command resumes the study to the requested
number of completed trials.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing as mp
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from kws_search.distill import TeacherOutputs, teacher_outputs
from kws_search.features import FeatureConfig, prepare_features
from kws_search.objective import (
    DIRECTIONS,
    OBJECTIVES,
    SearchContext,
    feasible,
    make_objective,
)
from kws_search.search_space import SearchSpace, load_space
from kws_search.teacher import load_teacher

logger = logging.getLogger(__name__)

SAMPLERS = ("tpe", "nsga2", "random")
HEARTBEAT_INTERVAL = 30
GRACE_PERIOD = 90
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
    sampler: str = "tpe"
    seed: int = 0
    trials: int = 200
    jobs: int = 1
    timeout: float | None = None
    cache_dir: Path = Path(".cache")
    artifact_dir: Path | None = None
    seed_hand_tuned: bool = True
    features: FeatureConfig = field(default_factory=FeatureConfig)


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


def open_storage(url: str, heartbeat: bool = True) -> RDBStorage:
    """An RDBStorage with heartbeats and retry of trials whose worker died."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if heartbeat:
                kwargs.update(heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                                  max_retry=2))
            return RDBStorage(url, **kwargs)
    except Exception as exc:  # sqlalchemy raises many kinds for bad URLs and dead servers
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"cannot open storage {url!r}: {first}; check the URL "
                         "(e.g. sqlite:///studies/x.db or postgresql://user:pw@host/db) "
                         "and that the server is reachable") from None


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise StudyError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def open_study(settings: RunSettings, heartbeat: bool = True) -> optuna.Study:
    """Create or load the study (same name, same storage = resume)."""
    sampler = make_sampler(settings.sampler, settings.seed)
    storage = open_storage(settings.storage, heartbeat)
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


def build_context(settings: RunSettings, progress: bool = True) -> SearchContext:
    """Features, teacher, teacher outputs and calibration clips: once per worker."""
    features = prepare_features(settings.data, settings.keyword, settings.features,
                                settings.cache_dir, progress=progress)
    teacher, metrics = load_teacher(settings.teacher, features)
    outputs = _cached_teacher_outputs(teacher, features, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    pick = torch.randperm(features.train.shape[1], generator=generator)[:CALIBRATION_CLIPS]
    store = FileSystemArtifactStore(str(_ensure_dir(
        settings.artifact_dir or artifact_dir_for(settings.storage, settings.study))))
    return SearchContext(features, outputs, metrics, features.train[0, pick].float(), store)


def _ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached_teacher_outputs(teacher: torch.nn.Module, features: Any,
                            settings: RunSettings) -> TeacherOutputs:
    """Teacher outputs over the cached train copies, saved beside the feature cache."""
    stamp = int(settings.teacher.stat().st_mtime_ns)
    path = settings.cache_dir / f"teacher-outputs-{features.fingerprint[:12]}-{stamp}.pt"
    if path.is_file():
        state = torch.load(path, weights_only=True)
        return TeacherOutputs(state["logits"], state["attention"])
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
        "artifact_dir": str(Path(context.artifact_store._base_path).resolve())
        if context.artifact_store else "",
    }
    for key, value in info.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


def seed_hand_tuned(study: optuna.Study, space: SearchSpace) -> int:
    """Enqueue the seeds' hand-tuned students (values the space can hold) into a new study."""
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
    failed: int = 0
    running: int = 0
    front: int = 0
    best_speedup: float = 0.0
    best_compression: float = 0.0
    fail_reasons: collections.Counter = field(default_factory=collections.Counter)


def summarize(study: optuna.Study) -> Progress:
    trials = study.get_trials(deepcopy=False)
    state = Progress()
    for t in trials:
        if t.state == TrialState.COMPLETE:
            state.complete += 1
        elif t.state == TrialState.FAIL:
            state.failed += 1
            state.fail_reasons[t.user_attrs.get("fail_reason", "unknown (worker died?)")] += 1
        elif t.state == TrialState.RUNNING:
            state.running += 1
    front = feasible_front(trials)
    state.front = len(front)
    state.best_speedup = max((t.values[1] for t in front), default=0.0)
    state.best_compression = max((t.values[2] for t in front), default=0.0)
    return state


def _with_fail_reason(objective: Callable) -> Callable:
    """Record why a trial failed as a user attribute, then let Optuna mark it failed."""
    def wrapped(trial: optuna.Trial) -> Any:
        try:
            return objective(trial)
        except Exception as exc:
            if "fail_reason" not in trial.user_attrs:
                trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:300])
            raise
    return wrapped


def run_worker(settings: RunSettings, threads: int, progress: bool = False,
               on_trial: Callable[[], None] | None = None,
               context: SearchContext | None = None) -> None:
    """One worker: take trials until the study holds `settings.trials` complete ones."""
    torch.set_num_threads(threads)
    space = load_space(settings.space)
    context = context or build_context(settings, progress=progress)
    study = open_study(settings)
    objective = _with_fail_reason(make_objective(context, space))
    deadline = None if settings.timeout is None else time.monotonic() + settings.timeout
    consecutive_failures = 0
    while deadline is None or time.monotonic() < deadline:
        trials = study.get_trials(deepcopy=False)
        complete = sum(t.state == TrialState.COMPLETE for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        if complete + max(0, running - waiting) >= settings.trials or complete >= settings.trials:
            break
        before = len(trials)
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False)
        last = study.get_trials(deepcopy=False)[before:] or study.get_trials(deepcopy=False)[-1:]
        failed = any(t.state == TrialState.FAIL for t in last)
        consecutive_failures = consecutive_failures + 1 if failed else 0
        if on_trial:
            on_trial()
        if consecutive_failures >= 20:
            raise StudyError("20 trials failed in a row; see `kws-search report` for reasons")


def _worker_entry(settings: RunSettings, threads: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.basicConfig(level=logging.WARNING)
    try:
        run_worker(settings, threads)
    except KeyboardInterrupt:
        pass


def run_search(settings: RunSettings, progress: bool = True,
               on_update: Callable[[Progress], None] | None = None) -> optuna.Study:
    """Prepare once, then run `settings.jobs` workers (in this process when jobs == 1)."""
    space = load_space(settings.space)
    context = build_context(settings, progress=progress)
    study = open_study(settings)
    record_study_info(study, settings, context, space)
    if settings.seed_hand_tuned:
        queued = seed_hand_tuned(study, space)
        if queued:
            logger.info("queued %d hand-tuned students from the seeds", queued)
    cores = os.cpu_count() or 1
    if settings.jobs <= 1:
        def tick() -> None:
            if on_update:
                on_update(summarize(study))
        run_worker(settings, cores, context=context, on_trial=tick)
        return study
    threads = max(1, cores // settings.jobs)
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_worker_entry, args=(settings, threads), daemon=False)
               for _ in range(settings.jobs)]
    for w in workers:
        w.start()
    try:
        while any(w.is_alive() for w in workers):
            time.sleep(2.0)
            if on_update:
                on_update(summarize(study))
    except KeyboardInterrupt:
        for w in workers:
            w.join(timeout=30)
        raise
    finally:
        for w in workers:
            w.join()
    if on_update:
        on_update(summarize(study))
    bad = [w.exitcode for w in workers if w.exitcode not in (0, None)]
    if bad:
        raise StudyError(f"{len(bad)} worker(s) exited with errors {bad}; "
                         "completed trials are kept, re-run the same command to resume")
    return study
