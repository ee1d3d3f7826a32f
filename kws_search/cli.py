"""The `kws-search` command line: one module per subcommand in `commands/`, registered here."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings

from kws_search.commands import (
    dashboard,
    data,
    demo,
    evaluate,
    export,
    report,
    run,
    stream,
    teacher,
)
from kws_search.errors import KwsSearchError

COMMANDS = (data, teacher, run, report, dashboard, export, stream, demo, evaluate)

EPILOG = """examples:
  kws-search data synth                 # make the default dataset under data/synth
  kws-search teacher                    # train the teacher on it
  kws-search run --trials 200           # search students (resumes if re-run)
  kws-search report                     # tables and plots of the study
  kws-search dashboard                  # browse the study in optuna-dashboard
  kws-search export --rule smallest     # streaming TorchScript of a chosen student
  kws-search stream checkpoints/x.pt some.wav
  kws-search evaluate checkpoints/x.pt --data data/festival   # score on other voices
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kws-search", description="AutoML search for compressed keyword-spotting students.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", "--debug", action="store_true",
                        help="log debug messages, and show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def _with_negative_values(argv: list[str]) -> list[str]:
    """`--max-bytes -5KB` as `--max-bytes=-5KB`: argparse takes a value that starts with '-'
    and is not a plain number for an option, and would answer "expected one argument"
    instead of saying what is wrong with the amount."""
    out: list[str] = []
    for word in argv:
        if out and out[-1].startswith("--max-") and "=" not in out[-1] \
                and re.match(r"-\.?\d", word):
            out[-1] = f"{out[-1]}={word}"
        else:
            out.append(word)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit code (errors print one line and return 1-2)."""
    parser = build_parser()
    args = parser.parse_args(_with_negative_values(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; completed work is kept, re-run the same command to resume",
              file=sys.stderr)
        return 130
    except (KwsSearchError, OSError) as exc:  # what the user can fix; anything else is a bug
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
