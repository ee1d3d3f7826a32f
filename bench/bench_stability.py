"""Is the answer a property of the data and the teacher, or of the run? The default search
run several times on the same data and teacher, with different seeds.

    python bench/bench_stability.py                        # seeds 0 1 2, 200 trials each
    python bench/bench_stability.py --seeds 0 1 2 --trials 200 --study-prefix stability
    python bench/bench_stability.py --reuse kws:0          # count an existing study as seed 0
Each run is the README's command (`kws-search run --trials N --seed S --study PREFIX-S`, in a
process of its own, so it is exactly what a user runs); a study that is already complete is
read, not run again. Prints each run's answer (the best network speed-up and compression
within each level of the teacher's quality, with 90% confidence, on the test split) and, per
level, the spread: the largest over the smallest of the runs' best values. A run with no
student at a level makes that level's spread infinite.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time

import optuna

from kws_search.errors import run_script
from kws_search.report.tables import answer
from kws_search.search.answer import LEVELS
from kws_search.search.storage import load_study


def run_seed(name: str, storage: str, seed: int, trials: int, extra: list[str]) -> float:
    """Run (or resume) one study with the CLI; seconds taken."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "kws_search.cli", "run", "--trials", str(trials),
               "--seed", str(seed), "--study", name, "--storage", storage, *extra]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def best(level: dict, key: str) -> tuple[float, int | None]:
    named = level.get(key)
    return (named["value"], named["trial"]) if named else (math.nan, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--study-prefix", default="stability")
    parser.add_argument("--reuse", nargs="*", default=[], metavar="STUDY:SEED",
                        help="existing studies (in studies/<study>.db) to count as a seed's run")
    parser.add_argument("--run-args", nargs=argparse.REMAINDER, default=[],
                        help="more `kws-search run` options, last (e.g. --run-args --jobs 2)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    reused = {int(seed): name for name, seed in (r.rsplit(":", 1) for r in args.reuse)}
    runs = []
    for seed in args.seeds:
        name = reused.get(seed, f"{args.study_prefix}-{seed}")
        storage = f"sqlite:///studies/{name}.db"
        seconds = None
        if seed not in reused:
            seconds = run_seed(name, storage, seed, args.trials, args.run_args)
        result = answer(load_study(name, storage))
        runs.append((seed, name, seconds, result))
    print()
    print("| run (seed, study) | minutes | teacher test | finalists within 1.1x (likely) | "
          + " | ".join(f"{lv:g}x: network / compression" for lv in LEVELS) + " |")
    print("| --- | ---: | ---: | ---: | " + " | ".join("---" for _ in LEVELS) + " |")
    for seed, name, seconds, result in runs:
        levels = {lv["level"]: lv for lv in result["levels"]}
        cells = []
        for lv in LEVELS:
            (net, a), (comp, b) = (best(levels.get(lv, {}), "model_speedup"),
                                   best(levels.get(lv, {}), "compression"))
            cells.append("-" if a is None else f"{net:.2f}x (t{a}) / {comp:.1f}x (t{b})")
        first = levels.get(LEVELS[0], {})
        print(f"| {seed}, {name} | {'' if seconds is None else f'{seconds / 60:.1f}'} | "
              f"{result.get('teacher_test_quality') or math.nan:.3e} | "
              f"{first.get('students', 0)} ({first.get('likely', 0)}) | " + " | ".join(cells)
              + " |")
    spreads = []
    for lv in LEVELS:
        row = []
        for key in ("model_speedup", "compression"):
            values = [best({x["level"]: x for x in r["levels"]}.get(lv, {}), key)[0]
                      for *_, r in runs]
            row.append(max(values) / min(values) if all(math.isfinite(v) for v in values)
                       else math.inf)
        spreads.append(row)
    print("| spread (largest / smallest) | | | | "
          + " | ".join(f"{n:.2f}x / {c:.2f}x" for n, c in spreads) + " |")


if __name__ == "__main__":
    run_script(main)
