"""`kws-search run`: the search. Makes the default data and teacher first if they are missing."""

from __future__ import annotations

import argparse
import logging
import math
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
from kws_search.search.attrs import BUDGET_EPOCHS

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
                             "alone, as the seeds and older studies counted) or latency "
                             "(measured per-hop time of the exported model in --runtime, front "
                             "end included)")
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
                        help="do not start the study with the seeds' hand-tuned students")
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
    parser.set_defaults(func=run)


def _ensure_inputs(args: argparse.Namespace) -> None:
    """The default dataset and teacher are made on first use, so one command runs it all."""
    from kws_search.data.features import prepare_features
    from kws_search.data.front_end import FeatureConfig
    from kws_search.teacher import train_teacher

    if args.data == DEFAULT_DATA and not DEFAULT_DATA.exists():
        from kws_search.data.synth import synthesize

        print(f"no dataset at {DEFAULT_DATA}; synthesizing the default dataset")
        synthesize(DEFAULT_DATA)
    path = teacher_file(args)
    if path.is_file():
        return
    features = prepare_features(args.data, args.keyword, FeatureConfig(), args.cache)
    print(f"no teacher at {path}; training it (kws-search teacher)")
    _, metrics = train_teacher(features, path)
    print(f"teacher: validation {metrics['val_quality']:.3e}, test {metrics['test_quality']:.3e}")


def _budgets(args: argparse.Namespace):
    """The budgets given as options (units checked here, before any work)."""
    from kws_search.search.budgets import LIMITS, Budgets, parse_amount

    given = {name: getattr(args, option[2:].replace("-", "_"))
             for name, (_, option, _) in LIMITS.items()}
    return Budgets(**{name: None if text is None else
                      parse_amount(text, LIMITS[name][2], LIMITS[name][1])
                      for name, text in given.items()})


WORKER_MEMORY = 1 << 30  # bytes a worker needs beside the shared feature cache, rounded up


def _capped_jobs(jobs: int, trials: int) -> int:
    """`jobs`, but never more workers than trials or than the free memory holds; says so."""
    allowed = max(1, _available_memory() // WORKER_MEMORY)
    capped = min(jobs, trials, allowed)
    if capped < jobs:
        why = (f"only {trials} trial(s) to run" if capped == trials else
               f"{_available_memory() / (1 << 30):.1f} GiB of memory is free and a worker "
               "needs about 1 GiB")
        print(f"--jobs {jobs} capped to {capped}: {why}")
    return capped


def _available_memory() -> int:
    """Bytes of memory available to new processes (MemAvailable), or free pages elsewhere."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def run(args: argparse.Namespace) -> int:
    """The search; a run refused before its first trial leaves no new study file behind."""
    from kws_search.errors import KwsSearchError
    from kws_search.search.storage import sqlite_file

    path = sqlite_file(storage_url(args))
    made_here = path is not None and not path.exists()
    try:
        return _run(args)
    except KwsSearchError:
        if made_here:
            _remove_if_untried(path, args.study)
        raise


def _remove_if_untried(path: Path, study: str) -> None:
    """Delete a SQLite file this run made when its study holds no trial (and its empty
    artifact folder)."""
    import optuna

    from kws_search.search.storage import artifact_dir_for

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


def _run(args: argparse.Namespace) -> int:
    from kws_search.checkpoint import read_checkpoint
    from kws_search.data.datasets import DataError
    from kws_search.data.front_end import FeatureConfig
    from kws_search.search.reach import check_reachable
    from kws_search.search.samplers import make_sampler
    from kws_search.search.settings import (
        DataSettings,
        Measures,
        RunSettings,
        StudySettings,
        WorkerSettings,
    )
    from kws_search.search.space import load_space
    from kws_search.search.storage import open_storage
    from kws_search.search.workers import run_search

    space = load_space(args.space)  # bad space, sampler or storage: fail before slow work
    budgets = space.budgets.over(_budgets(args))

    def teacher_features() -> FeatureConfig:
        path = teacher_file(args)
        return (FeatureConfig.from_dict(read_checkpoint(path)["features"]) if path.is_file()
                else FeatureConfig())  # the one a new teacher gets
    if budgets.active():  # no student of the space fits: say so before any work
        check_reachable(space, teacher_features(), budgets)
        print(f"budgets: {budgets.describe()}")
    if args.speed == "latency" and args.runtime == "onnxruntime" and missing_onnx():
        from kws_search.errors import ConfigError

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
    jobs = _capped_jobs(args.jobs or max(1, (os.cpu_count() or 1) // args.threads), args.trials)
    _ensure_inputs(args)
    features = teacher_features()
    data = DataSettings(args.data, args.keyword, teacher_file(args), features=features,
                        cache_dir=args.cache, cross_data=args.cross_data)
    study = StudySettings(args.study, storage_url(args), space=args.space, sampler=args.sampler,
                          seed=args.seed, trials=args.trials, finalists=args.finalists,
                          measures=Measures(args.speed, args.runtime, args.margin, budgets),
                          seed_hand_tuned=not args.no_hand_tuned,
                          allow_changes=args.allow_changes, artifact_dir=args.artifact_dir)
    workers = WorkerSettings(jobs, args.threads, args.timeout, heartbeat_interval=args.heartbeat,
                             grace_period=3 * args.heartbeat)
    settings = RunSettings(data, study, workers)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("optuna").setLevel(logging.ERROR)
    bar = tqdm(total=args.trials, desc=f"study {args.study}", unit="trial")
    last = None  # what the bar shows

    def update(p) -> None:
        nonlocal last
        if p == last:  # redraw on news only: a log file gets a line per change
            return
        last = p
        bar.n = min(p.complete + p.pruned, args.trials)
        best = ({"speedup": f"{p.best_speedup:.1f}x", "compression": f"{p.best_compression:.1f}x"}
                if p.front else {})  # nothing feasible yet: no best to show
        bar.set_postfix(pruned=p.pruned, failed=p.failed, finalists=p.finals, front=p.front,
                        **best)
        bar.refresh()

    try:
        study = run_search(settings, progress=True, on_update=update)
    finally:
        bar.close()
    print_front(study)
    return 0


def print_front(study) -> None:
    """The feasible Pareto front as a table, and failures summarized by reason."""
    import pandas as pd

    from kws_search.report.tables import (
        CI_COLUMN,
        answer,
        cross_text,
        curve_lines,
        interval_text,
        ratio_text,
        study_info,
    )
    from kws_search.search.answer import front_pool
    from kws_search.search.attrs import RATIO, RATIO_HI, RATIO_LO
    from kws_search.search.study import complete_text, feasible_front, progress_of

    bar = study.user_attrs.get("quality_bar", float("nan"))
    margin = study_info(study).margin
    teacher = study.user_attrs.get("teacher", {})
    ci = interval_text(teacher.get("val_quality_lo"), teacher.get("val_quality_hi"), ".2e")
    print(f"teacher validation quality {teacher.get('val_quality', float('nan')):.3e}"
          f"{f' (90% CI {ci})' if ci else ''}; bar ({margin:g}x) {bar:.3e}")
    info = study_info(study)
    if info.budgets:
        print(info.budget_text())
    teacher_cross = study.user_attrs.get("teacher_cross")
    if teacher_cross:
        print(f"teacher on {study.user_attrs.get('cross_data', 'the cross-engine set')}: "
              f"{cross_text(teacher_cross)}")
    front = feasible_front(study)
    result = answer(study)
    if not front:
        print(f"no feasible student yet (quality within {margin:g}x of the teacher)")
        complete = sorted(front_pool(study.get_trials(deepcopy=False)),
                          key=lambda t: t.values[0])
        for t in complete[:3]:
            q, sp, cp = t.values
            print(f"  closest: trial {t.number}, quality {q:.3e} ({q / bar * margin:.2f}x the "
                  "teacher on validation), "
                  f"speed-up {sp:.1f}x, compression {cp:.1f}x")
        within = next((lv["level"] for lv in result["levels"] if lv["students"]), None)
        closest = result["closest"]
        if within is None and closest is not None:  # none within 3x: as close as it gets
            within = math.ceil(closest["times_teacher"] * 10) / 10
        if within is not None:
            print(f"  next: `kws-search export --study {study.study_name} --within {within:g}` "
                  f"exports the balanced student within {within:g}x the teacher")
    else:
        crossed = any("cross_quality" in t.user_attrs for t in front)
        rows = []
        for t in front:
            attrs = t.user_attrs
            row = {"trial": t.number, BUDGET_EPOCHS: attrs.get(BUDGET_EPOCHS),
                   "quality": f"{t.values[0]:.3e}",
                   CI_COLUMN: interval_text(attrs.get("val_quality_lo"),
                                            attrs.get("val_quality_hi"), ".2e"),
                   "speedup": round(t.values[1], 2), "compression": round(t.values[2], 2),
                   "quant": attrs.get("quant"), "params": attrs.get("params"),
                   "latency_ms": round(attrs.get("latency_ms", float("nan")), 3)}
            if RATIO in attrs:  # a finalist: judged on the test split against the teacher
                row["test / teacher (90% CI)"] = ratio_text(
                    {"ratio": attrs[RATIO], "ratio_lo": attrs.get(RATIO_LO),
                     "ratio_hi": attrs.get(RATIO_HI)})
            if crossed:
                row.update(cross_quality=f"{attrs.get('cross_quality', float('nan')):.3e}",
                           cross_detected=round(attrs.get("cross_detected", float("nan")), 3))
            rows.append(row)
        print(f"feasible Pareto front ({len(front)} students):")
        print(pd.DataFrame(rows).to_string(index=False))
    for line in curve_lines(result):
        print(line)
    progress = progress_of(study)
    print(f"{complete_text(progress)}, {progress.pruned} stopped early (pruned at a rung), "
          f"{progress.failed} failed; {progress.finals} finalists trained to convergence")
    for reason, count in progress.fail_reasons.most_common():
        print(f"failed x{count}: {reason}")
