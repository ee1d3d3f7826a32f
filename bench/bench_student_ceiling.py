"""How close do students of a fixed ladder of sizes get to the teacher, trained as a trial and
as a finalist? (3 seeds each, median and range)

    python bench/bench_student_ceiling.py                          # the ladder, both budgets
    python bench/bench_student_ceiling.py --budgets trial --seeds 1 --students "10x (int8)"
    python bench/bench_student_ceiling.py --quant-lever            # float/int8/static/qat at 10x
    python bench/bench_student_ceiling.py --width-lever            # conv against RNN width at 10x
    python bench/bench_student_ceiling.py --students "10x (int8)" --set train.spec_augment=true
    python bench/bench_student_ceiling.py --students "10x (int8)" --space own-front-end \
        --param n_fft=160 --param n_mels=16                        # a front end of its own

Every run is a trial of the search's own objective (`objective.make_objective` on `--space`,
the student's parameters queued), so students train exactly as a trial does: `trial` is the
space's budget (18 epochs of 10,240 samples, rungs that never stop a lone student; `--set
train.KEY=VALUE` changes it), `converged` the finalists' (the teacher's recipe, to
convergence). Seeds are trial numbers
0, 1, 2 (the objective seeds a student's weights with them). Quality is validation quality
over the teacher's; the bar is 1.1x. The last line is
`small students (>= 10x fewer network MACs and bytes): <x> x the teacher (<student>, <budget>)`
(or that no student run is that small).
"""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import trial_worker  # bench/trial_worker.py, beside this script
import yaml

from kws_search.errors import ConfigError, run_script
from kws_search.options import QUALITY_MARGIN, teacher_path
from kws_search.search.attrs import DIRECTIONS
from kws_search.search.fidelity import FINAL_OF
from kws_search.search.objective import make_objective
from kws_search.search.settings import DataSettings, RunSettings, StudySettings
from kws_search.search.space import SearchSpace, load_space

TEACHER_SHAPE = {"cnn_channels": 8, "kernel_freq": 5, "kernel_time": 20, "stride_freq": 2,
                 "stride_time": 8, "rnn": "gru", "hidden": 64, "layers": 2}
DISTILL = {"kd_weight": 0.5, "temperature": 6.0, "attn_weight": 0.0, "lr": 5e-3}
LADDER = {  # name -> architecture and quantization (about 1x, 3x, 10x and 20x fewer MACs)
    "teacher shape (int8)": {**TEACHER_SHAPE, "mode": "int8"},
    "3x (int8)": {**TEACHER_SHAPE, "cnn_channels": 6, "hidden": 31, "layers": 1,
                  "mode": "int8"},
    "10x (int8)": {**TEACHER_SHAPE, "cnn_channels": 4, "stride_freq": 3, "stride_time": 10,
                   "hidden": 24, "layers": 1, "mode": "int8"},
    "20x (int8)": {**TEACHER_SHAPE, "cnn_channels": 3, "kernel_freq": 7, "stride_freq": 6,
                   "stride_time": 10, "hidden": 16, "layers": 1, "mode": "int8"},
}
QUANT_LEVER = {f"10x ({mode})": {**LADDER["10x (int8)"], "mode": mode}
               for mode in ("none", "int8", "static_int8", "qat")}
WIDTH_LEVER = {  # the same network MACs (about 10x fewer), spent on the conv or on the GRU
    "10x conv-wide (int8)": {**LADDER["10x (int8)"], "cnn_channels": 6, "hidden": 12},
    "10x rnn-wide (int8)": {**LADDER["10x (int8)"], "cnn_channels": 2, "hidden": 35},
}
BUDGETS = ("trial", "converged")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synth"))
    parser.add_argument("--teacher", type=Path, default=None,
                        help="default: the one `run` uses for --data")
    parser.add_argument("--students", nargs="+", default=None,
                        choices=[*LADDER, *QUANT_LEVER, *WIDTH_LEVER], help="default: the ladder")
    parser.add_argument("--quant-lever", action="store_true",
                        help="the 10x student in every quantization mode, at the trial budget")
    parser.add_argument("--width-lever", action="store_true",
                        help="conv-wide against RNN-wide students of the same MACs, at 10x")
    parser.add_argument("--space", default="default",
                        help="the search space the trial runs in (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="change one fixed value of the space, e.g. "
                             "train.samples_per_epoch=20480 (repeatable)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="one more queued parameter, e.g. n_fft=160 (repeatable)")
    parser.add_argument("--budgets", nargs="+", default=list(BUDGETS), choices=BUDGETS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--kd-weight", type=float, default=DISTILL["kd_weight"],
                        help="share of the dark-knowledge term (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=DISTILL["temperature"])
    parser.add_argument("--attn-weight", type=float, default=DISTILL["attn_weight"])
    parser.add_argument("--jobs", type=int, default=2, help="processes, one thread each")
    return parser.parse_args()


def _space(name: str, fixed: dict[str, Any]) -> SearchSpace:
    """The named space with `fixed` ("section.key" -> value) set as fixed values."""
    space = load_space(name)
    sections = {section: dict(values) for section, values in space.sections.items()}
    for where, value in fixed.items():
        section, key = where.split(".", 1)
        sections.setdefault(section, {})[key] = value
    return replace(space, sections=sections)


def _assignments(items: list[str], option: str) -> dict[str, Any]:
    """`KEY=VALUE` strings as a dict, values read as YAML scalars (numbers, booleans)."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} {item!r}: write KEY=VALUE")
        pairs[key] = yaml.safe_load(value)
    return pairs


def run_student(name: str, params: dict[str, Any], budget: str, seed: int,
                distill: dict[str, float], space_name: str = "default",
                fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """One trial of the objective for a queued student: its recorded numbers."""
    space = _space(space_name, fixed or {})
    study = optuna.create_study(directions=list(DIRECTIONS))
    for _ in range(seed):  # placeholders: trial number = seed, which seeds the weights
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    study.enqueue_trial({**params, **distill},
                        user_attrs={FINAL_OF: -1} if budget == "converged" else {})
    study.optimize(make_objective(trial_worker.context(), space), n_trials=1)
    trial = study.trials[seed]
    if trial.state != optuna.trial.TrialState.COMPLETE:
        raise RuntimeError(f"{name} {budget} seed {seed}: {trial.state.name} "
                           f"{trial.user_attrs.get('fail_reason', '')}")
    attrs = trial.user_attrs
    return {"name": name, "budget": budget, "seed": seed, "quality": trial.values[0],
            "model_speedup": attrs["model_speedup"], "compression": trial.values[2],
            "epochs": attrs["budget_epochs"], "seconds": attrs["train_seconds"]}


def main() -> None:
    args = parse_args()
    if args.seeds < 1 or args.jobs < 1:
        raise ConfigError("--seeds and --jobs must be >= 1")
    teacher_file = args.teacher or teacher_path("checkpoints", args.data)
    if not Path(teacher_file).is_file():
        raise ConfigError(f"teacher {teacher_file} does not exist; run `kws-search teacher` "
                          "or pass --teacher PATH")
    fixed = _assignments(args.set, "--set")
    extra = _assignments(args.param, "--param")
    if any("." not in key for key in fixed):
        raise ConfigError("--set takes SECTION.KEY=VALUE, e.g. train.samples_per_epoch=20480")
    _space(args.space, fixed)  # an unknown space fails here, before any work
    lever = QUANT_LEVER if args.quant_lever else WIDTH_LEVER if args.width_lever else LADDER
    students = args.students or list(lever)
    budgets = ["trial"] if args.quant_lever or args.width_lever else args.budgets
    settings = RunSettings(DataSettings(args.data, "sheila", teacher_file),
                           StudySettings("ceiling", "sqlite:///:memory:", space=args.space,
                                         artifact_dir=Path("bench/out/ceiling-artifacts")))
    trial_worker.start(settings)  # the caches are made once, before the workers read them
    teacher = trial_worker.context().teacher_metrics["val_quality"]
    print(f"teacher validation {teacher:.3e}; bar ({QUALITY_MARGIN:g}x) "
          f"{QUALITY_MARGIN * teacher:.3e}")
    specs = {n: {**p, **extra} for n, p in {**LADDER, **QUANT_LEVER, **WIDTH_LEVER}.items()}
    # the slowest (largest, converged) first, so the pool ends evenly
    distill = {**DISTILL, "kd_weight": args.kd_weight, "temperature": args.temperature,
               "attn_weight": args.attn_weight}
    print(f"distilled at KD weight {args.kd_weight:g}, temperature {args.temperature:g}, "
          f"attention KD {args.attn_weight:g}; lr {distill['lr']:g}; space {args.space}"
          + "".join(f"; {k}={v}" for k, v in {**fixed, **extra}.items()))
    tasks = [(n, specs[n], b, s, distill, args.space, fixed) for b in reversed(budgets)
             for n in students for s in range(args.seeds)]
    with ProcessPoolExecutor(args.jobs, initializer=trial_worker.start,
                             initargs=(settings,)) as pool:
        results = list(pool.map(run_student, *zip(*tasks, strict=True)))
    print(f"{'student':>22} {'budget':>9} {'net MACs':>8} {'bytes':>6} {'x teacher':>9} "
          f"{'range':>11} {'x bar':>5} {'epochs':>6} {'s':>5}")
    small = (float("inf"), "", "")
    for budget in budgets:
        for name in students:
            runs = [r for r in results if r["name"] == name and r["budget"] == budget]
            ratios = [r["quality"] / teacher for r in runs]
            med = statistics.median(ratios)
            first = runs[0]
            print(f"{name:>22} {budget:>9} {first['model_speedup']:>7.1f}x "
                  f"{first['compression']:>5.1f}x {med:>9.2f} "
                  f"{min(ratios):>5.2f}-{max(ratios):<5.2f} {med / QUALITY_MARGIN:>5.2f} "
                  f"{statistics.median(r['epochs'] for r in runs):>6g} "
                  f"{statistics.median(r['seconds'] for r in runs):>5.0f}", flush=True)
            if first["model_speedup"] >= 10 and first["compression"] >= 10:
                small = min(small, (med, name, budget))
    best = (f"{small[0]:.2f} x the teacher ({small[1]}, {small[2]})" if small[1]
            else "none of these students is that small")
    print(f"small students (>= 10x fewer network MACs and bytes): {best}")


if __name__ == "__main__":
    run_script(main)
