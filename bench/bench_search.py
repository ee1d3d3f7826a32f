"""Which search reaches further per minute: feasible-front hypervolume against wall time.

    python bench/bench_search.py                          # 3 seeds x new, tpe, random; 10 min
    python bench/bench_search.py --budget 300 --methods new tpe random gp nsga2
    python bench/bench_search.py --work bench/out/search --analyze-only --margin 4

Each run is one `kws-search run --jobs 1 --threads 1 --timeout BUDGET --no-cross-data
--no-hand-tuned` into its own SQLite file, on the default data and teacher. Two runs go side by
side (the 2 cores), and the order interleaves the methods (seed 0 of each method, then seed 1,
...), so machine noise hits all of them alike. Methods:

    new     the default: `--space default` (log-uniform sizes, multi-fidelity rungs), gp
    tpe     the setup before: `--space full-training` (every student 12 epochs), tpe
    random  `--space full-training`, random search
    tpe-rungs, nsga2, random-rungs: `--space default` with that sampler

Hypervolume is of the feasible front (complete trials within the bar), against the fixed
reference point (bar, 1x, 1x), in gains (1 - quality / bar, speed-up - 1, compression - 1), at
a few points of the budget; the table shows the median over seeds. `--margin` sets the bar as a
multiple of the teacher's validation quality: 1.1 is the study's own bar; a larger one shows
how the methods compare when that bar is out of every student's reach. The last line is
`hypervolume at budget: new=<x> tpe=<y> random=<z>` for the first margin.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState
from tqdm import tqdm

from kws_search.errors import run_script
from kws_search.report.tables import gains, hypervolume
from kws_search.search.fidelity import finished

METHODS = {  # name -> (space, sampler)
    "new": ("default", "gp"),
    "tpe": ("full-training", "tpe"),
    "random": ("full-training", "random"),
    "tpe-rungs": ("default", "tpe"),
    "nsga2": ("default", "nsga2"),
    "random-rungs": ("default", "random"),
}
POINTS = (0.25, 0.5, 0.75, 1.0)  # shares of the budget where the table reads hypervolume


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["new", "tpe", "random"],
                        choices=sorted(METHODS))
    parser.add_argument("--seeds", type=int, default=3, help="runs per method")
    parser.add_argument("--budget", type=float, default=600.0,
                        help="seconds of search per run (default: %(default)s)")
    parser.add_argument("--parallel", type=int, default=2, help="runs side by side")
    parser.add_argument("--margin", type=float, nargs="+", default=[1.1],
                        help="bar = MARGIN x teacher validation quality (default: 1.1)")
    parser.add_argument("--data", default=None, help="passed to `run --data` if given")
    parser.add_argument("--teacher", default=None, help="passed to `run --teacher` if given")
    parser.add_argument("--work", type=Path, default=Path("bench/out/search"),
                        help="folder for the study databases and the figure")
    parser.add_argument("--analyze-only", action="store_true",
                        help="read the databases of an earlier bench in --work; run nothing")
    return parser.parse_args()


def run_name(method: str, seed: int) -> str:
    return f"{method}-s{seed}"


def command(args: argparse.Namespace, method: str, seed: int) -> list[str]:
    space, sampler = METHODS[method]
    name = run_name(method, seed)
    cmd = [sys.executable, "-m", "kws_search.cli", "run", "--study", name,
           "--storage", f"sqlite:///{args.work / f'{name}.db'}", "--space", space,
           "--sampler", sampler, "--seed", str(seed), "--trials", "100000", "--jobs", "1",
           "--threads", "1", "--timeout", str(args.budget), "--no-cross-data",
           "--no-hand-tuned", "--artifact-dir", str(args.work / f"{name}-artifacts")]
    for option in ("data", "teacher"):
        if getattr(args, option):
            cmd += [f"--{option}", getattr(args, option)]
    return cmd


def run_all(args: argparse.Namespace) -> None:
    """All runs, `--parallel` at a time, seeds outer and methods inner (interleaved)."""
    queue = [(m, s) for s in range(args.seeds) for m in args.methods]
    for method, seed in queue:
        (args.work / f"{run_name(method, seed)}.db").unlink(missing_ok=True)
    bar = tqdm(total=len(queue), desc="bench runs", unit="run")
    running: list[tuple[subprocess.Popen, Path]] = []
    while queue or running:
        while queue and len(running) < args.parallel:
            method, seed = queue.pop(0)
            log = args.work / f"{run_name(method, seed)}.log"
            with log.open("w") as out:
                proc = subprocess.Popen(command(args, method, seed), stdout=out,
                                        stderr=subprocess.STDOUT)
            running.append((proc, log))
        time.sleep(2.0)
        for proc, log in [r for r in running if r[0].poll() is not None]:
            running.remove((proc, log))
            bar.update()
            if proc.returncode != 0:
                tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
                print(f"{log.stem} exited {proc.returncode}: {tail[0]}", file=sys.stderr)
    bar.close()


def curve(study: optuna.Study, bar: float, budget: float) -> list[tuple[float, float]]:
    """(seconds since the first trial started, feasible-front hypervolume) per complete trial,
    up to the budget."""
    trials = study.get_trials(deepcopy=False)
    start = min(t.datetime_start for t in trials if t.datetime_start)
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE),
                  key=lambda t: t.datetime_complete)
    points, front = [(0.0, 0.0)], []
    for t in done:
        seconds = (t.datetime_complete - start).total_seconds()
        if seconds > budget:
            break
        if t.values[0] <= bar:
            front.append(gains(*t.values, bar))
            points.append((seconds, hypervolume(front)))
    return points


def at(points: list[tuple[float, float]], seconds: float) -> float:
    return max(v for s, v in points if s <= seconds)


def analyze(args: argparse.Namespace) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    studies: dict[tuple[str, int], optuna.Study] = {}
    for method in args.methods:
        for seed in range(args.seeds):
            name = run_name(method, seed)
            path = args.work / f"{name}.db"
            if path.is_file():  # one study per file (by its file name: runs can be renamed)
                studies[method, seed] = optuna.load_study(study_name=None,
                                                          storage=f"sqlite:///{path}")
    if not studies:
        raise SystemExit(f"no bench databases in {args.work}; run without --analyze-only")
    teacher_quality = next(iter(studies.values())).user_attrs["teacher"]["val_quality"]
    print(f"budget {args.budget:.0f} s per run, {args.seeds} seeds, one worker per run, "
          f"{args.parallel} runs side by side; teacher validation quality {teacher_quality:.3e}")
    counts = []
    for (method, seed), study in studies.items():
        trials = study.get_trials(deepcopy=False)
        counts.append((method, seed, sum(finished(t) for t in trials),
                       sum(t.state == TrialState.COMPLETE for t in trials),
                       sum(t.state == TrialState.FAIL for t in trials)))
    print(f"{'method':>12} {'trials/h':>9} {'complete':>9} {'pruned':>7} {'failed':>7}")
    for method in args.methods:
        rows = [c for c in counts if c[0] == method]
        if rows:
            n = statistics.median(r[2] for r in rows)
            print(f"{method:>12} {3600 * n / args.budget:>9.0f} "
                  f"{statistics.median(r[3] for r in rows):>9.0f} "
                  f"{statistics.median(r[2] - r[3] for r in rows):>7.0f} "
                  f"{statistics.median(r[4] for r in rows):>7.0f}")
    figure = go.Figure()
    finals: dict[float, dict[str, float]] = {}
    for margin in args.margin:
        bar = margin * teacher_quality
        print(f"\nmedian feasible-front hypervolume, bar {margin:g} x teacher = {bar:.3e}, "
              "reference (bar, 1x, 1x)")
        print(f"{'method':>12} " + " ".join(f"{f'{p * args.budget:.0f} s':>10}"
                                             for p in POINTS) + f" {'feasible':>9}")
        finals[margin] = {}
        for method in args.methods:
            runs = [s for (m, _), s in studies.items() if m == method]
            if not runs:
                continue
            curves = [curve(s, bar, args.budget) for s in runs]
            medians = [statistics.median(at(c, p * args.budget) for c in curves)
                       for p in POINTS]
            feasible = statistics.median(len(c) - 1 for c in curves)
            finals[margin][method] = medians[-1]
            print(f"{method:>12} " + " ".join(f"{m:>10.4g}" for m in medians)
                  + f" {feasible:>9.0f}")
            grid = [args.budget * i / 60 for i in range(61)]
            figure.add_trace(go.Scatter(
                x=grid, y=[statistics.median(at(c, g) for c in curves) for g in grid],
                mode="lines", name=f"{method} (bar {margin:g}x)"))
    figure.update_layout(title="feasible-front hypervolume against search time (median)",
                         xaxis={"title": "seconds of search"},
                         yaxis={"title": "hypervolume (reference: bar, 1x, 1x)"},
                         template="plotly_white")
    out = args.work / "hypervolume.html"
    figure.write_html(out, include_plotlyjs="cdn")
    print(f"\nfigure: {out}")
    first = finals[args.margin[0]]
    print("hypervolume at budget: " + " ".join(
        f"{m}={first[m]:.4g}" for m in ("new", "tpe", "random") if m in first))


def main() -> None:
    args = parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.analyze_only:
        run_all(args)
    analyze(args)


if __name__ == "__main__":
    run_script(main)
