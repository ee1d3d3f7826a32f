"""Every error a user can fix is a KwsSearchError, so the CLI prints it as one line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("args, message", [
    (["bench/bench_train.py", "--data", "/nonexistent"], "dataset folder /nonexistent does not"),
    (["bench/bench_workers.py", "--teacher", "/nonexistent.pt"], "teacher /nonexistent.pt does"),
    (["bench/bench_student_ceiling.py", "--teacher", "/nonexistent.pt"],
     "teacher /nonexistent.pt does not exist"),
])
@pytest.mark.slow
def test_a_bench_given_a_missing_input_says_so_in_one_line(args, message):
    """A bench ends a user's mistake as the command line does: one line, exit status 1 (and
    a teacher it was told to use is never trained in its place)."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, *args], cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    lines = [ln for ln in done.stderr.splitlines() if "Warning" not in ln and ln.strip()]
    assert lines[-1].startswith(f"error: {message}") and "Traceback" not in done.stderr
    assert not Path(args[-1]).exists()
