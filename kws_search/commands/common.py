"""Options shared by several subcommands, and how they turn into settings."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

from kws_search.options import default_storage, teacher_path

DEFAULT_DATA = Path("data/synth")
DEFAULT_FESTIVAL = Path("data/festival")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="dataset folder in Speech Commands layout (default: %(default)s, "
                             "made by `kws-search data synth`)")
    parser.add_argument("--keyword", default="sheila", help="keyword (default: %(default)s)")
    parser.add_argument("--cache", type=Path, default=Path(".cache"),
                        help="feature cache folder (default: %(default)s)")
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"),
                        help="teacher and exported models (default: %(default)s)")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="teacher checkpoint (default: checkpoints/teacher-<data>.pt)")


def add_study_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", default="kws", type=study_name,
                        help="study name: letters, digits, '-', '_' and '.' (default: "
                             "%(default)s)")
    parser.add_argument("--storage", default=None,
                        help="SQLAlchemy URL (default: sqlite:///studies/<study>.db); use "
                             "postgresql://... to share a study between machines")


def teacher_file(args: argparse.Namespace) -> Path:
    return args.teacher or teacher_path(args.checkpoints, args.data)


def storage_url(args: argparse.Namespace) -> str:
    return args.storage or default_storage(args.study)


def study_name(text: str) -> str:
    """A study name that is also a file name under studies/: no folders, nothing hidden."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a study name; use letters, digits, '-', '_' and '.', not "
            "starting with '.' or '-' (the study lives in studies/<name>.db)")
    return text


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be > 0 and finite, got {value}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be >= 0 and finite, got {value}")
    return value


def probability(text: str) -> float:
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {value}")
    return value
