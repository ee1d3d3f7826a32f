"""What choosing the next student costs, as the study grows: the samplers side by side.

    python bench/bench_sampler.py --study kws
Replays a finished study's search trials into an in-memory study, and at 25, 50, 100, 150 and
200 trials times one `ask` (the sampler choosing the next student, as a worker does before
each trial) for each sampler kws-search can use, interleaved, `--repeats` times; prints the
median seconds. `gp` is the default as run (a fresh sampler per trial, seeded by its number:
`samplers.TrialSeededSampler`); `gp-late-tpe` switches to TPE after `LATE_TRIALS`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import optuna

from kws_search.errors import run_script
from kws_search.search.fidelity import is_final
from kws_search.search.samplers import make_sampler
from kws_search.search.space import load_space
from kws_search.search.storage import load_study

POINTS = (25, 50, 100, 150, 200)


def ask_seconds(trials: list, sampler: optuna.samplers.BaseSampler, space) -> float:
    """Seconds of one `ask` + the space's suggestions after `trials`."""
    study = optuna.create_study(directions=["minimize", "maximize", "maximize"], sampler=sampler)
    study.add_trials(trials)
    start = time.perf_counter()
    trial = study.ask()
    space.sample(trial)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="kws")
    parser.add_argument("--storage", default=None, help="default: studies/<study>.db")
    parser.add_argument("--space", default="default")
    parser.add_argument("--samplers", nargs="+", default=["gp", "gp-late-tpe", "tpe"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = load_study(args.study, args.storage or f"sqlite:///studies/{args.study}.db")
    trials = [t for t in study.get_trials(deepcopy=False) if not is_final(t)
              and t.state.is_finished()]
    space = load_space(args.space)
    points = [p for p in POINTS if p <= len(trials)]
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for point in points:
            for name in args.samplers:
                sampler = make_sampler(name, seed=0)
                times.setdefault((name, point), []).append(
                    ask_seconds(trials[:point], sampler, space))
    print(f"{'sampler':14s}" + "".join(f"{f'after {p}':>11s}" for p in points))
    for name in args.samplers:
        print(f"{name:14s}" + "".join(f"{statistics.median(times[name, p]):10.2f}s"
                                      for p in points))


if __name__ == "__main__":
    run_script(main)
