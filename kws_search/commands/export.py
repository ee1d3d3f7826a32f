"""`kws-search export`: a chosen student (or the teacher) as one streaming file: TorchScript, or
ONNX with external state (`--format onnx`, the `onnx` extra)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kws_search.commands.common import (
    add_data_options,
    add_study_options,
    positive_float,
    probability,
    teacher_file,
)
from kws_search.options import RULES, missing_onnx

HELP = """examples:
  kws-search export                          # balanced: best min(speed-up, compression)
  kws-search export --rule smallest          # highest compression among feasible students
  kws-search export --rule best --min-speedup 10 --min-compression 10
  kws-search export --within 1.5             # balanced, among students within 1.5x the teacher
  kws-search export --trial 42 --out checkpoints/kws42.pt
  kws-search export --baseline               # the teacher, exported the same way
  kws-search export --format onnx            # ONNX Runtime, state as inputs and outputs
"""
FORMATS = ("torchscript", "onnx")
SUFFIX = {"torchscript": "pt", "onnx": "onnx"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="export a student as streaming TorchScript",
                            epilog=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_options(parser)
    add_data_options(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, default=None, help="trial number")
    which.add_argument("--rule", default=RULES[0], choices=RULES,
                       help="which feasible trial: balanced (default: best min(speed-up, "
                            "compression)), fastest, smallest, or best quality")
    which.add_argument("--export-teacher", "--baseline", dest="export_teacher",
                       action="store_true", help="export the teacher instead of a student")
    parser.add_argument("--within", type=positive_float, default=None, metavar="M",
                        help="choose by --rule among students within M x the teacher's "
                             "validation quality instead of the study's bar (e.g. 1.5)")
    parser.add_argument("--min-speedup", type=float, default=0.0,
                        help="pick only among trials at least this much faster than the teacher")
    parser.add_argument("--min-compression", type=float, default=0.0,
                        help="pick only among trials at least this much smaller than the teacher")
    parser.add_argument("--window", type=float, default=1.0,
                        help="attention window in seconds (default: %(default)s)")
    parser.add_argument("--threshold", type=probability, default=None,
                        help="detection threshold stored in the file (default: the one "
                             "suggested on validation)")
    parser.add_argument("--format", default=FORMATS[0], choices=FORMATS,
                        help="torchscript (default: one file, torch.jit.load) or onnx (one "
                             "block of audio per call, every state an input and an output; "
                             "needs `pip install -e \".[onnx]\"`)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output file (default: under --checkpoints, .pt or .onnx)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    onnx = args.format == "onnx"
    if onnx:
        _check_onnx_installed()
    from kws_search.deploy.torchscript import export_checkpoint

    source, out, label = _source(args)
    if onnx:
        from kws_search.deploy.onnx import export_onnx

        path, info = export_onnx(source, out, max_window_seconds=args.window,
                                 threshold=args.threshold)
        print(f"exported {label}")
        _say_source(source, args)
        print(f"  -> {path} (ONNX, weights {info['onnx_weights']}; blocks of "
              f"{info['block_samples']} samples, {info['lead_samples']} leading zeros, "
              f"{info['warmup_blocks']} warm-up blocks: see docs/export.md for the loop)")
        if info["quant"] not in ("none", "float16"):
            print(f"  note: ONNX Runtime has no int8 GRU, so this {info['quant']} model falls "
                  "back to weight-only int8 (activations in float); its probabilities differ "
                  "slightly from the scored int8 model's (the TorchScript file has those)")
        return 0
    path = export_checkpoint(source, out, max_window_seconds=args.window,
                             threshold=args.threshold)
    print(f"exported {label}")
    _say_source(source, args)
    print(f"  -> {path} (TorchScript; torch.jit.load(path), forward(chunk) -> probability)")
    return 0


def _source(args: argparse.Namespace) -> tuple[Path, Path, str]:
    """(checkpoint, output file, what it is in words): the teacher, or the study's trial that
    the options pick (its checkpoint fetched under --checkpoints)."""
    suffix = SUFFIX[args.format]
    if args.export_teacher:
        source = teacher_file(args)
        return (source, args.out or args.checkpoints / f"{source.stem}-stream.{suffix}",
                f"teacher {source}")
    from kws_search.commands.common import storage_url
    from kws_search.search.select import fetch_checkpoint, pick_trial
    from kws_search.search.storage import load_study

    study = load_study(args.study, storage_url(args))
    trial = pick_trial(study, args.trial, args.rule, args.min_speedup,
                       args.min_compression, args.within)
    source = fetch_checkpoint(study, trial,
                              args.checkpoints / f"{args.study}-trial{trial.number}.pt")
    out = args.out or args.checkpoints / f"{args.study}-trial{trial.number}-stream.{suffix}"
    q, s, c = trial.values
    label = (f"trial {trial.number}: quality {q:.3e}, speed-up {s:.1f}x, compression "
             f"{c:.1f}x, {trial.user_attrs.get('quant')}")
    budgets = study.user_attrs.get("budgets")
    if budgets:  # the study's: pick_trial never chose a student over one
        from kws_search.search.budgets import Budgets

        label += f"\n  within the study's budgets: {Budgets(**budgets).fit_text(trial.user_attrs)}"
    return source, out, label


def _say_source(source: Path, args: argparse.Namespace) -> None:
    """A trial's checkpoint is kept under --checkpoints beside the export: say where."""
    if not args.export_teacher:
        print(f"  the trial's checkpoint (for `evaluate` and re-exports): {source}")


def _check_onnx_installed() -> None:
    """Refuse before any work when the `onnx` extra is missing."""
    missing = missing_onnx()
    if missing:
        from kws_search.errors import ConfigError

        raise ConfigError(f"--format onnx needs {', '.join(missing)}; install them with "
                          "`pip install -e \".[onnx]\"`")
