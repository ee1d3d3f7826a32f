"""The one error base class: everything a user can fix derives from `KwsSearchError`.

The command line prints such an error as one line (`error: <message>`) and exits 1; any other
exception is a bug and keeps its traceback. Subclasses that used to be a `ValueError` or a
`RuntimeError` still are one, so callers catching those keep working.
"""

from __future__ import annotations

from collections.abc import Callable


class KwsSearchError(Exception):
    """An error the user can fix; its message names the thing and what to do."""


class ConfigError(KwsSearchError, ValueError):
    """A setting out of range: an option, a search-space value, a config field."""


def yaml_problem(exc: Exception) -> str:
    """A YAML parser error in one line: what is wrong and where (line and column)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def run_script(main: Callable[[], object]) -> None:
    """Run a script's `main` (the benches): an error the user can fix ends it in one line,
    `error: <message>` with exit status 1, as on the command line, not with a traceback."""
    try:
        result = main()
    except KwsSearchError as exc:
        raise SystemExit(f"error: {exc}") from None
    raise SystemExit(result if isinstance(result, int) else 0)
