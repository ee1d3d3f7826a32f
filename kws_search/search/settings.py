"""A run's settings, in the groups that the code reads them in.

`DataSettings` is what students learn from and are measured against (the context builds it
into features and teacher outputs); `Measures` is what a trial's numbers mean (the objective
reads it, and it is part of the study's identity); `StudySettings` is which study, where it is
stored and how it samples; `WorkerSettings` is how the trials are run. `RunSettings` holds one
of each, and every function takes the groups it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kws_search.data.front_end import FeatureConfig
from kws_search.options import (
    FINALISTS,
    GRACE_PERIOD,
    HEARTBEAT_INTERVAL,
    QUALITY_MARGIN,
    SAMPLERS,
)
from kws_search.search.budgets import Budgets


@dataclass(frozen=True)
class DataSettings:
    """The data folder, its keyword, the teacher and its front end, and where caches go."""

    root: Path
    keyword: str
    teacher: Path
    features: FeatureConfig = field(default_factory=FeatureConfig)  # the teacher's
    cache_dir: Path = Path(".cache")
    cross_data: Path | None = None  # clips of another synthesizer, scored for the record only


@dataclass(frozen=True)
class Measures:
    """What a trial's numbers mean: the speed-up measure and the quality bar."""

    speed: str = "macs"  # "macs" (whole pipeline), "model-macs" (networks) or "latency"
    runtime: str = "onnxruntime"  # where "latency" is measured
    margin: float = QUALITY_MARGIN  # feasible: validation quality <= margin x the teacher's
    budgets: Budgets = field(default_factory=Budgets)  # the space's, with run's options over


@dataclass(frozen=True)
class StudySettings:
    """Which study, where it is stored, what it samples and how far it goes."""

    name: str
    storage: str
    space: str = "default"
    sampler: str = SAMPLERS[0]
    seed: int = 0
    trials: int = 200
    finalists: int = FINALISTS  # students of the search's front trained again as the teacher was
    measures: Measures = field(default_factory=Measures)
    queue_hand_tuned: bool = True
    allow_changes: bool = False  # resume a study with other data, teacher, features or space
    artifact_dir: Path | None = None  # trial checkpoints (default: beside the storage)


@dataclass(frozen=True)
class WorkerSettings:
    """How many workers run trials, on how many threads, for how long."""

    jobs: int = 1
    threads: int = 1  # torch threads per worker: small students train fastest on one
    timeout: float | None = None
    heartbeat_interval: int = HEARTBEAT_INTERVAL
    grace_period: int = GRACE_PERIOD


@dataclass(frozen=True)
class RunSettings:
    """Everything `kws-search run` was asked for."""

    data: DataSettings
    study: StudySettings
    workers: WorkerSettings = field(default_factory=WorkerSettings)
