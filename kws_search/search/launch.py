"""What `run` does before the search: make the default dataset and teacher on first use, and
size the workers to the machine."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

WORKER_MEMORY = 1 << 30  # bytes a worker needs beside the shared feature cache, rounded up


def ensure_inputs(data: Path, keyword: str, teacher: Path, cache: Path | None,
                  default_data: Path) -> None:
    """Synthesize `default_data` when it is the data asked for and missing, and train the
    teacher at `teacher` when there is none, so one command runs it all."""
    from kws_search.data.features import prepare_features
    from kws_search.data.front_end import FeatureConfig
    from kws_search.teacher import train_teacher

    if data == default_data and not default_data.exists():
        from kws_search.data.synth import synthesize

        print(f"no dataset at {default_data}; synthesizing the default dataset")
        synthesize(default_data)
    if teacher.is_file():
        return
    features = prepare_features(data, keyword, FeatureConfig(), cache)
    print(f"no teacher at {teacher}; training it (kws-search teacher)")
    _, metrics = train_teacher(features, teacher)
    print(f"teacher: validation {metrics['val_quality']:.3e}, test {metrics['test_quality']:.3e}")


def worker_jobs(jobs: int | None, threads: int, trials: int) -> int:
    """Worker processes: `jobs`, else one per `threads` cores; never more than trials or than
    the free memory holds (printed when capped)."""
    wanted = jobs or max(1, (os.cpu_count() or 1) // threads)
    free = psutil.virtual_memory().available
    capped = min(wanted, trials, max(1, int(free // WORKER_MEMORY)))
    if capped < wanted:
        why = (f"only {trials} trial(s) to run" if capped == trials else
               f"{free / (1 << 30):.1f} GiB of memory is free and a worker needs about 1 GiB")
        print(f"--jobs {wanted} capped to {capped}: {why}")
    return capped
