"""Search throughput with 1 and 2 worker processes: trials per hour, and what N workers give.

    python bench/bench_workers.py                              # tiny space, small synth data
    python bench/bench_workers.py --data data/synth --space default --trials 20 --jobs 1 2 4
    python bench/bench_workers.py --storage postgresql+psycopg2://kws:kws@127.0.0.1/kws

Each setting runs a fresh study to `--trials` complete trials through `run_search` (the code
behind `kws-search run --jobs N`). Features, the teacher and its outputs are cached before the
clock starts. Two rates are printed: `wall` counts everything from the command's start
(workers' start-up included), `steady` counts trials completed between the first and the last
completion, which is what a long run approaches.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import uuid
import warnings
from dataclasses import replace
from pathlib import Path

import optuna
from optuna.trial import TrialState

from kws_search.checkpoint import CheckpointError
from kws_search.data.features import prepare_features
from kws_search.data.front_end import FeatureConfig
from kws_search.errors import run_script
from kws_search.models import CRNNConfig
from kws_search.options import teacher_path
from kws_search.search.context import build_context
from kws_search.search.settings import DataSettings, RunSettings, StudySettings, WorkerSettings
from kws_search.search.storage import open_storage
from kws_search.search.workers import run_search
from kws_search.teacher import train_teacher
from kws_search.train import TrainConfig


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="Speech Commands style folder (default: 1,000 synthesized clips)")
    parser.add_argument("--keyword", default="sheila")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="teacher checkpoint (default: a small one trained here)")
    parser.add_argument("--space", default="tiny", help="search space (default: %(default)s)")
    parser.add_argument("--trials", type=int, default=16, help="complete trials per setting")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2],
                        help="worker counts to time (default: 1 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per worker (default: cores / jobs, as `run`)")
    parser.add_argument("--storage", default=None,
                        help="SQLAlchemy URL for the studies (default: SQLite in a temp folder)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for data, caches and studies (default: a temp folder)")
    return parser.parse_args()


def prepare_inputs(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    """Dataset and teacher: given, or made on the spot (small, for a quick bench)."""
    data = args.data
    if data is None:
        from kws_search.data.synth import SynthConfig, synthesize

        data = work / "data"
        if not (data / "synth.json").is_file():
            print(f"synthesizing 1,000 clips in {data}")
            synthesize(data, SynthConfig(n_clips=1000, keyword_fraction=0.1), progress=False,
                       overwrite=True)
    if args.teacher is not None:
        if not args.teacher.is_file():
            raise CheckpointError(f"teacher {args.teacher} does not exist; pass --teacher PATH "
                                  "to a checkpoint, or leave it out to train a small one here")
        return data, args.teacher
    teacher = teacher_path(work / "checkpoints", data)
    if not teacher.is_file():
        print(f"training a small teacher ({teacher})")
        features = prepare_features(data, args.keyword, FeatureConfig(), work / "cache",
                                    progress=False)
        train_teacher(features, teacher, CRNNConfig(hidden=32), TrainConfig(epochs=3),
                      progress=False, members=1)
    return data, teacher


def time_setting(base: RunSettings, jobs: int) -> dict[str, float]:
    """Run a fresh study with `jobs` workers; return timings and rates."""
    settings = replace(base, study=replace(base.study, name=f"bench-{jobs}-{uuid.uuid4().hex[:6]}"),
                       workers=replace(base.workers, jobs=jobs))
    start = time.perf_counter()
    study = run_search(settings, progress=False)
    wall = time.perf_counter() - start
    done = sorted(t.datetime_complete for t in study.get_trials()
                  if t.state == TrialState.COMPLETE)
    span = (done[-1] - done[0]).total_seconds() if len(done) > 1 else float("nan")
    optuna.delete_study(study_name=settings.study.name,
                        storage=open_storage(settings.study.storage, heartbeat=False))
    return {"jobs": jobs, "trials": len(done), "wall_s": wall,
            "wall_per_hour": 3600 * len(done) / wall,
            "steady_per_hour": 3600 * (len(done) - 1) / span if span > 0 else float("nan")}


def main() -> None:
    args = parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")  # as the CLI does
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    work = args.work or Path(tempfile.mkdtemp(prefix="kws-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data, teacher = prepare_inputs(args, work)
    storage = args.storage or f"sqlite:///{work / 'bench.db'}"
    base = RunSettings(DataSettings(data, args.keyword, teacher, cache_dir=work / "cache"),
                       StudySettings("bench", storage, space=args.space, trials=args.trials,
                                     artifact_dir=work / "artifacts", queue_hand_tuned=False),
                       WorkerSettings(threads=args.threads))
    build_context(base.data, base.study, progress=False)  # caches made off the clock
    cores = os.cpu_count() or 1
    print(f"space {args.space}, {args.trials} trials per setting, {cores} cores, "
          f"storage {storage.split(':')[0]}, threads per worker "
          f"{args.threads or 'cores / jobs'}")
    rows = [time_setting(base, jobs) for jobs in args.jobs]
    print(f"{'workers':>7} {'trials':>6} {'wall s':>7} {'trials/h (wall)':>16} "
          f"{'trials/h (steady)':>18} {'speed-up':>8}")
    for row in rows:
        print(f"{row['jobs']:>7} {row['trials']:>6} {row['wall_s']:>7.1f} "
              f"{row['wall_per_hour']:>16.0f} {row['steady_per_hour']:>18.0f} "
              f"{row['steady_per_hour'] / rows[0]['steady_per_hour']:>8.2f}")
    single = rows[0]["steady_per_hour"] / rows[0]["jobs"]
    print(f"\nextrapolation: N workers on N free cores give about N x {single:.0f} trials/h "
          "(trials do not talk to each other; the workers of one machine share the "
          "memory-mapped feature cache). The limits are cores (a worker per core, --threads 1 "
          "for small students), memory bandwidth, and the database: every trial "
          "makes a few dozen small writes, so SQLite on one machine is fine for a handful of "
          "workers and PostgreSQL takes many machines (one `kws-search run` each).")


if __name__ == "__main__":
    run_script(main)
