"""The one error base class: everything a user can fix derives from `KwsSearchError`.

The command line prints such an error as one line (`error: <message>`) and exits 1; any other
exception is a bug and keeps its traceback. Subclasses that used to be a `ValueError` or a
`RuntimeError` still are one, so callers catching those keep working.
"""

from __future__ import annotations


class KwsSearchError(Exception):
    """An error the user can fix; its message names the thing and what to do."""


class ConfigError(KwsSearchError, ValueError):
    """A setting out of range: an option, a search-space value, a config field."""
