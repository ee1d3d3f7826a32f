"""The worker process of the benchmarks that train students as trials of the search's own
objective: the search context, built once per process (`start`, a pool initializer, also run
once in the parent so the caches exist before workers read them) and read by `context()`.
Not a benchmark itself."""

from __future__ import annotations

from dataclasses import replace

import optuna
import torch

from kws_search.search.context import SearchContext, build_context
from kws_search.search.settings import RunSettings

_context: SearchContext | None = None


def start(settings: RunSettings) -> None:
    global _context
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _context = replace(build_context(settings.data, settings.study, progress=False),
                       artifact_dir=None)


def context() -> SearchContext:
    if _context is None:
        raise RuntimeError("trial_worker.start(settings) first")
    return _context
