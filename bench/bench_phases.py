"""Where a finished study's minutes went: the search, the finalists, and each trial's time
outside training.

    python bench/bench_phases.py --study kws
Reads the study's trial timestamps (nothing is run): wall minutes of the search trials and of
the finalists, and the median seconds per trial spent outside `train_seconds` (choosing the
student, sizing it, measuring it, storing it) over the first and the last `--window` search
trials. Trials run on several workers at once, so a phase's wall time is from the first start
to the last end.
"""

from __future__ import annotations

import argparse
import statistics

import optuna

from kws_search.errors import run_script
from kws_search.search.attrs import TRAIN_SECONDS
from kws_search.search.fidelity import finished, is_final
from kws_search.search.storage import load_study


def wall_minutes(trials: list) -> float:
    if not trials:
        return 0.0
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    return (end - start).total_seconds() / 60


def outside(trials: list) -> float:
    return statistics.median((t.datetime_complete - t.datetime_start).total_seconds()
                             - t.user_attrs[TRAIN_SECONDS] for t in trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="kws")
    parser.add_argument("--storage", default=None, help="default: studies/<study>.db")
    parser.add_argument("--window", type=int, default=50)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = load_study(args.study, args.storage or f"sqlite:///studies/{args.study}.db")
    trials = study.get_trials(deepcopy=False)
    search = sorted((t for t in trials if finished(t) and not is_final(t)
                     and t.datetime_complete and TRAIN_SECONDS in t.user_attrs),
                    key=lambda t: t.number)
    finals = [t for t in trials if is_final(t) and t.datetime_complete]
    print(f"search: {len(search)} trials in {wall_minutes(search):.1f} min; finalists: "
          f"{len(finals)} in {wall_minutes(finals):.1f} min")
    first, last = search[:args.window], search[-args.window:]
    whole = statistics.median((t.datetime_complete - t.datetime_start).total_seconds()
                              for t in search)
    print(f"median seconds outside training per trial: first {len(first)} "
          f"{outside(first):.2f} s, last {len(last)} {outside(last):.2f} s; median trial "
          f"{whole:.2f} s")


if __name__ == "__main__":
    run_script(main)
