"""`kws-search report`: tables and figures of a study (finished or still running)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kws_search.commands.common import add_study_options, non_negative_float

HELP = """examples:
  kws-search report                              # reports/kws/ from studies/kws.db
  kws-search report --study quick --out /tmp/quick-report
  kws-search report --storage postgresql://user:pw@db-host/kws --study shared --no-png
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="trials and front tables, plots (HTML, PNG), index",
                            epilog=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_options(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="report folder (default: reports/<study>)")
    parser.add_argument("--no-png", action="store_true",
                        help="skip PNG copies of the figures (they need kaleido and Chrome)")
    parser.add_argument("--hours", type=non_negative_float, default=1.0,
                        help="stream this many hours without the keyword (the dataset's test "
                             "words, running speech and noise) through the teacher and every "
                             "finalist: false accepts per hour, and keywords missed at 0.5 and "
                             "1 per hour; 0 skips it (default: %(default)s; results are kept "
                             "in the report folder)")
    parser.set_defaults(func=run)


def study_storage(args: argparse.Namespace) -> str:
    """The --storage URL, else studies/<study>.db (without creating the folder)."""
    return args.storage or f"sqlite:///{Path('studies') / f'{args.study}.db'}"


def run(args: argparse.Namespace) -> int:
    import optuna

    from kws_search.report.pages import write_report
    from kws_search.report.summary import summary_lines

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    report = write_report(args.study, study_storage(args), args.out, png=not args.no_png,
                          hours=args.hours, progress=True)
    print(f"report of study {args.study!r} written to {report.folder}/ (open index.html)")
    print("\n".join(summary_lines(report.info, report.front, report.answer, report.progress)))
    if report.png_error:
        print(f"PNG figures skipped ({report.png_error}); the HTML figures are complete")
    return 0
