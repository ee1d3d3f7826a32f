"""How much of the answer is the finalists' training seed? Each finalist of finished studies
trained again from other seeds, judged on the test split as the study judged it.

    python bench/bench_finalist_seeds.py --studies kws stability-1 stability-2
    python bench/bench_finalist_seeds.py --studies kws --seeds 2 --min-speedup 4
Run in the folder of the studies (their data, teacher and feature cache). For every finalist
with at least `--min-speedup` fewer network MACs (the small end, which decides the curve's
levels), the objective trains its student again as a finalist (the teacher's recipe, to
convergence) with `--seeds` other seeds (the weights are seeded by the trial number), and
records its quality / the teacher's on the test split. Prints each finalist's ratio from the
study and from the new seeds, and then each study's best network speed-up and compression
within 1.25x and 1.5x by the study's own ratio (upper end of the 90% interval) and by the
median over the seeds, with the spread across studies for both.
"""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import trial_worker  # bench/trial_worker.py, beside this script

from kws_search.errors import run_script
from kws_search.options import teacher_path
from kws_search.search.attrs import DIRECTIONS, RATIO, RATIO_HI
from kws_search.search.fidelity import FINAL_OF, is_final
from kws_search.search.objective import make_objective
from kws_search.search.settings import DataSettings, RunSettings, StudySettings
from kws_search.search.space import load_space
from kws_search.search.storage import load_study

LEVELS = (1.25, 1.5)


def retrain(key: tuple[str, int], params: dict[str, Any], seed: int) -> tuple[tuple, int, float]:
    """The finalist's student trained as a finalist with weights seeded by `seed`; its test
    ratio to the teacher."""
    study = optuna.create_study(directions=list(DIRECTIONS))
    for _ in range(seed):  # placeholders: trial number = seed, which seeds the weights
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    study.enqueue_trial(params, user_attrs={FINAL_OF: -1})
    study.optimize(make_objective(trial_worker.context(), load_space("default")), n_trials=1)
    trial = study.trials[seed]
    if trial.state != optuna.trial.TrialState.COMPLETE:
        raise RuntimeError(f"{key} seed {seed}: {trial.state.name}")
    return key, seed, trial.user_attrs[RATIO]


def best(rows: list[dict], level: float, ratio_key: str) -> tuple[float, float]:
    inside = [r for r in rows if r[ratio_key] <= level]
    return (max((r["network"] for r in inside), default=0.0),
            max((r["compression"] for r in inside), default=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", nargs="+", required=True)
    parser.add_argument("--data", type=Path, default=Path("data/synth"))
    parser.add_argument("--seeds", type=int, default=2, help="new seeds per finalist")
    parser.add_argument("--min-speedup", type=float, default=4.0,
                        help="only finalists with at least this network speed-up")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows: dict[tuple[str, int], dict] = {}
    for name in args.studies:
        study = load_study(name, f"sqlite:///studies/{name}.db")
        for t in study.get_trials(deepcopy=False):
            if is_final(t) and t.state == optuna.trial.TrialState.COMPLETE:
                rows[(name, t.number)] = {
                    "study": name, "trial": t.number, "params": t.params,
                    "network": t.user_attrs["model_speedup"], "compression": t.values[2],
                    "ratio": t.user_attrs[RATIO], "upper": t.user_attrs[RATIO_HI]}
    picked = [k for k, r in rows.items() if r["network"] >= args.min_speedup]
    settings = RunSettings(DataSettings(args.data, "sheila", teacher_path("checkpoints",
                                                                          args.data)),
                           StudySettings("seeds", "sqlite:///:memory:"))
    trial_worker.start(settings)  # caches made once, before the workers read them
    tasks = [(k, rows[k]["params"], 1000 + s) for k in picked for s in range(args.seeds)]
    print(f"{len(picked)} finalists x {args.seeds} seeds = {len(tasks)} trainings", flush=True)
    with ProcessPoolExecutor(args.jobs, initializer=trial_worker.start,
                             initargs=(settings,)) as pool:
        for key, seed, ratio in pool.map(retrain, *zip(*tasks, strict=True)):
            rows[key].setdefault("seeds", []).append(ratio)
            print(f"  {key[0]} trial {key[1]} seed {seed}: {ratio:.2f}x", flush=True)
    for r in rows.values():
        r["median"] = statistics.median([r["ratio"], *r.get("seeds", [])])

    print("\n| study | trial | network | compression | ratio (90% upper) | other seeds | "
          "median |")
    print("| --- | ---: | ---: | ---: | --- | --- | ---: |")
    for k in picked:
        r = rows[k]
        print(f"| {r['study']} | {r['trial']} | {r['network']:.2f}x | {r['compression']:.1f}x | "
              f"{r['ratio']:.2f}x ({r['upper']:.2f}) | "
              f"{', '.join(f'{x:.2f}x' for x in r['seeds'])} | {r['median']:.2f}x |")
    print("\n| level | by | " + " | ".join(args.studies) + " | spread |")
    print("| --- | --- | " + " | ".join("---" for _ in args.studies) + " | --- |")
    for level in LEVELS:
        for by, key in (("upper end, one seed", "upper"), ("median of seeds", "median")):
            found = [best([r for r in rows.values() if r["study"] == s], level, key)
                     for s in args.studies]
            spread = [max(v[i] for v in found) / max(min(v[i] for v in found), 1e-9)
                      for i in (0, 1)]
            print(f"| {level}x | {by} | "
                  + " | ".join(f"{n:.2f}x / {c:.1f}x" for n, c in found)
                  + f" | {spread[0]:.2f}x / {spread[1]:.2f}x |")


if __name__ == "__main__":
    run_script(main)
