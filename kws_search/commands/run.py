"""`kws-search run`: the search. Makes the default data and teacher first if they are missing."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from tqdm.auto import tqdm

from kws_search.commands.common import (
    DEFAULT_DATA,
    DEFAULT_FESTIVAL,
    add_data_options,
    add_study_options,
    non_negative_int,
    positive_float,
    positive_int,
    storage_url,
    teacher_file,
)
from kws_search.options import (
    FINALISTS,
    HEARTBEAT_INTERVAL,
    QUALITY_MARGIN,
    RUNTIMES,
    SAMPLERS,
    SPEEDS,
    missing_onnx,
)

HELP = """examples:
  kws-search run --trials 200                   # GP then TPE; SQLite in studies/; resumes
  kws-search run --trials 50 --space tiny --study quick
  kws-search run --trials 200 --jobs 2 --sampler nsga2
  kws-search run --storage postgresql://user:pw@db-host/kws --study shared   # one per machine
  kws-search run --storage postgresql://user:pw@db-host/kws --study shared \\
      --artifact-dir /mnt/shared/kws-artifacts --heartbeat 10
  kws-search run --trials 200 --cross-data data/festival   # also score other voices (record only)
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="search students (Optuna multi-objective study)",
                            epilog=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_options(parser)
    add_study_options(parser)
    parser.add_argument("--trials", type=positive_int, default=200,
                        help="trials the study should hold, complete or stopped early at a rung "
                             "(default: %(default)s)")
    parser.add_argument("--space", default="default",
                        help="search space: a name in search_spaces/ or a YAML path")
    parser.add_argument("--sampler", default=SAMPLERS[0], choices=SAMPLERS,
                        help="gp-tpe (default: a Gaussian process for the first 50 trials, "
                             "then TPE), gp, tpe, nsga2 or random (see docs/search.md, "
                             "\"Samplers\")")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    parser.add_argument("--speed", default=SPEEDS[0], choices=SPEEDS,
                        help="the speed-up objective: macs (default: teacher / student "
                             "multiply-adds, front end included), model-macs (the networks "
                             "alone, as the course reports' hand-made searches and older "
                             "studies counted) or latency "
                             "(measured per-hop time of the exported model in --runtime, front "
                             "end included)")
    _add_measure_options(parser)
    _add_worker_options(parser)
    parser.set_defaults(func=run)


def _add_measure_options(parser: argparse.ArgumentParser) -> None:
    """The bar, a device's budgets and where latency is measured: part of the study."""
    parser.add_argument("--margin", type=positive_float, default=QUALITY_MARGIN,
                        help="the quality bar: a student is feasible when its validation quality "
                             "is at most MARGIN x the teacher's (default: %(default)s; part of "
                             "the study, so another value needs a new --study)")
    budgets = parser.add_argument_group(
        "budgets", "a device's limits (also a `budgets:` section of the space; these take its "
        "place): a student over one is never trained, and run refuses at once when no student "
        "of the space fits. Part of the study, so other budgets need a new --study")
    budgets.add_argument("--max-bytes", metavar="SIZE",
                         help="stored weights, e.g. 16KB (1 KB = 1024 bytes; the front end's "
                              "tables do not count)")
    budgets.add_argument("--max-ram", metavar="SIZE",
                         help="peak RAM of a streaming step, e.g. 48KB (state, audio block and "
                              "live activations; docs/measures.md)")
    budgets.add_argument("--max-macs", metavar="COUNT",
                         help="multiply-adds per second of audio, front end included, e.g. 2M")
    budgets.add_argument("--max-latency", metavar="TIME",
                         help="time per 10 ms hop in --runtime, e.g. 50us (timed before each "
                              "student trains)")
    parser.add_argument("--runtime", default=RUNTIMES[0], choices=RUNTIMES,
                        help="where --speed latency measures (default: %(default)s; needs the "
                             "onnx extra)")


def _add_worker_options(parser: argparse.ArgumentParser) -> None:
    """How the trials run: processes, threads, finalists, time, faults, resuming, extras."""
    cores = os.cpu_count() or 1
    parser.add_argument("--jobs", type=positive_int, default=None,
                        help=f"parallel worker processes on this machine (default: one per "
                             f"core, here {cores}; --jobs 1 repeats exactly for a --seed)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch threads per worker (default: 1, fastest for small "
                             "students; --jobs fills the cores)")
    parser.add_argument("--finalists", type=non_negative_int, default=FINALISTS,
                        help="after the trials, train this many students of the search's front "
                             "again the way the teacher was trained (its recipe, to "
                             "convergence); the study's front is then theirs (default: "
                             "%(default)s; 0 skips it)")
    parser.add_argument("--timeout", type=positive_float, default=None,
                        help="stop after SECONDS of search (> 0)")
    parser.add_argument("--allow-changes", action="store_true",
                        help="resume a study with other data, teacher, features or space on "
                             "purpose (refused otherwise; the change is recorded in the study)")
    parser.add_argument("--no-hand-tuned", action="store_true",
                        help="do not start the study with the hand-tuned students of the "
                             "course reports")
    parser.add_argument("--artifact-dir", type=Path, default=None,
                        help="where trial checkpoints go (default: beside the SQLite file, else "
                             "studies/<study>-artifacts); a shared folder for several machines")
    parser.add_argument("--heartbeat", type=positive_int, default=HEARTBEAT_INTERVAL,
                        help="seconds between heartbeats of a running trial; one silent for 3x "
                             "this long (worker killed) is failed and retried "
                             "(default: %(default)s)")
    cross = parser.add_mutually_exclusive_group()
    cross.add_argument("--cross-data", type=Path, default=None, metavar="DIR",
                       help="evaluation-only clips of another synthesizer (`kws-search data "
                            "synth --engine festival`): every student and the teacher are "
                            f"scored on them for the record; never used to train or select "
                            f"(default: {DEFAULT_FESTIVAL} when it exists)")
    cross.add_argument("--no-cross-data", action="store_true",
                       help=f"do not score on {DEFAULT_FESTIVAL} even when it exists")


def _budgets(args: argparse.Namespace):
    """The budgets given as options (units checked here, before any work)."""
    from kws_search.search.budgets import LIMITS, Budgets, parse_amount

    given = {name: getattr(args, option[2:].replace("-", "_"))
             for name, (_, option, _) in LIMITS.items()}
    return Budgets(**{name: None if text is None else
                      parse_amount(text, LIMITS[name].unit, LIMITS[name].option)
                      for name, text in given.items()})


def run(args: argparse.Namespace) -> int:
    """The search; a run refused before its first trial leaves no new study file behind."""
    from kws_search.errors import KwsSearchError
    from kws_search.search.storage import remove_if_untried, sqlite_file

    path = sqlite_file(storage_url(args))
    made_here = path is not None and not path.exists()
    try:
        return _run(args)
    except KwsSearchError:
        if made_here:
            remove_if_untried(path, args.study)
        raise


def _run(args: argparse.Namespace) -> int:
    from kws_search.search.launch import ensure_inputs, worker_jobs
    from kws_search.search.workers import run_search

    budgets = _check_first(args)  # bad space, budgets, sampler or storage: before slow work
    jobs = worker_jobs(args.jobs, args.threads, args.trials)
    ensure_inputs(args.data, args.keyword, teacher_file(args), args.cache, DEFAULT_DATA)
    settings = _settings(args, budgets, jobs)
    meter = _Meter(args.trials, args.study)
    try:
        study = run_search(settings, progress=True, on_update=meter.update)
    finally:
        meter.close()
    from kws_search.report.summary import study_summary

    print("\n".join(study_summary(study)))
    return 0


def _check_first(args: argparse.Namespace):
    """Everything `run` can refuse before it spends time: the space, the budgets (and whether
    any student of the space keeps to them), the runtime, the sampler, the storage and the
    cross-engine folder. Returns the budgets."""
    from kws_search.data.datasets import DataError
    from kws_search.errors import ConfigError
    from kws_search.search.reach import check_reachable
    from kws_search.search.samplers import make_sampler
    from kws_search.search.space import load_space
    from kws_search.search.storage import open_storage

    space = load_space(args.space)
    budgets = space.budgets.over(_budgets(args))
    if budgets.active():  # no student of the space fits: say so before any work
        check_reachable(space, _teacher_features(args), budgets)
        print(f"budgets: {budgets.describe()}")
    if args.speed == "latency" and args.runtime == "onnxruntime" and missing_onnx():
        raise ConfigError(f"--speed latency measures in onnxruntime, which needs "
                          f"{', '.join(missing_onnx())}: `pip install -e \".[onnx]\"`, "
                          "or pass --runtime torchscript")
    make_sampler(args.sampler, args.seed)
    open_storage(storage_url(args), heartbeat=False)
    if args.cross_data is None and not args.no_cross_data and DEFAULT_FESTIVAL.is_dir():
        args.cross_data = DEFAULT_FESTIVAL
        print(f"scoring students on {DEFAULT_FESTIVAL} too (voices nobody trains on; "
              "record only, --no-cross-data to skip)")
    if args.cross_data is not None and not args.cross_data.is_dir():
        raise DataError(f"--cross-data {args.cross_data} is not a folder; make one with "
                        "`kws-search data synth --engine festival`")
    return budgets


def _teacher_features(args: argparse.Namespace):
    """The teacher's feature settings: its checkpoint's, or those a new teacher gets."""
    from kws_search.checkpoint import read_checkpoint
    from kws_search.data.front_end import FeatureConfig

    path = teacher_file(args)
    return (FeatureConfig.from_dict(read_checkpoint(path)["features"]) if path.is_file()
            else FeatureConfig())


def _settings(args: argparse.Namespace, budgets, jobs: int):
    """The run's settings from its options, in groups: data, study, workers."""
    from kws_search.search.settings import (
        DataSettings,
        Measures,
        RunSettings,
        StudySettings,
        WorkerSettings,
    )

    data = DataSettings(args.data, args.keyword, teacher_file(args),
                        features=_teacher_features(args), cache_dir=args.cache,
                        cross_data=args.cross_data)
    study = StudySettings(args.study, storage_url(args), space=args.space, sampler=args.sampler,
                          seed=args.seed, trials=args.trials, finalists=args.finalists,
                          measures=Measures(args.speed, args.runtime, args.margin, budgets),
                          queue_hand_tuned=not args.no_hand_tuned,
                          allow_changes=args.allow_changes, artifact_dir=args.artifact_dir)
    workers = WorkerSettings(jobs, args.threads, args.timeout, heartbeat_interval=args.heartbeat,
                             grace_period=3 * args.heartbeat)
    return RunSettings(data, study, workers)


class _Meter:
    """The run's progress bar: trials finished, with the front's best so far."""

    def __init__(self, trials: int, study: str) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        logging.getLogger("optuna").setLevel(logging.ERROR)
        self.trials = trials
        self.bar = tqdm(total=trials, desc=f"study {study}", unit="trial")
        self.last = None  # what it shows

    def update(self, p) -> None:
        if p == self.last:  # redraw on news only: a log file gets a line per change
            return
        self.last = p
        self.bar.n = min(p.complete + p.pruned, self.trials)
        best = ({"speedup": f"{p.best_speedup:.1f}x", "compression": f"{p.best_compression:.1f}x"}
                if p.front else {})  # nothing feasible yet: no best to show
        self.bar.set_postfix(pruned=p.pruned, failed=p.failed, finalists=p.finals,
                             front=p.front, **best)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
