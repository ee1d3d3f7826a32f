"""Every error a user can fix is a KwsSearchError, so the CLI prints it as one line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import kws_search
from kws_search.errors import KwsSearchError

# raised for a programmer's mistake, never for a user's input: a traceback is right for them
NOT_USER_ERRORS: set[str] = set()


def test_every_error_class_of_the_library_derives_from_kws_search_error():
    found = {}
    for module in pkgutil.walk_packages(kws_search.__path__, "kws_search."):
        for name, obj in inspect.getmembers(importlib.import_module(module.name),
                                            inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__.startswith("kws_search"):
                found[f"{obj.__module__}.{name}"] = obj
    assert len(found) >= 10
    strays = [n for n, cls in found.items()
              if not issubclass(cls, KwsSearchError) and n not in NOT_USER_ERRORS]
    assert strays == []
