"""Stopping a search cleanly: Ctrl-C and SIGTERM in a worker, and stopping worker processes.

A stop never loses finished trials and never leaves a trial RUNNING: the interrupted trial is
marked failed and retried when the same command runs again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any


class CtrlC:
    """Ctrl-C that is never lost and never leaves a trial RUNNING.

    SIGINT raises KeyboardInterrupt wherever Python happens to be, and when that is a
    finalizer run by the garbage collector (a weakref callback), Python prints "Exception
    ignored" and goes on. The handler also notes the interrupt, and `check()` (after every
    epoch, and before every trial) raises it again.

    Inside `held()` (Optuna creating a trial, sampling it, storing its result) the handler
    only notes the interrupt: raised there, it could land after the trial row exists and
    before anyone knows its number, leaving a RUNNING trial nobody fails and no heartbeat
    ever marks stale. `let_through()` (the student's training) raises it again at once.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._holding = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        if not self._holding:
            raise KeyboardInterrupt

    def check(self) -> None:
        if self.interrupted:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Note Ctrl-C inside, raise it on leaving (unless another exception is leaving)."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        self.check()

    @contextlib.contextmanager
    def let_through(self) -> Iterator[None]:
        """Within `held()`: raise a noted Ctrl-C now, and any new one where it lands."""
        holding, self._holding = self._holding, False
        try:
            self.check()
            yield
        finally:
            self._holding = holding

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def raise_interrupt(signum: int, frame: Any) -> None:
    """A signal handler that turns SIGTERM into Ctrl-C."""
    raise KeyboardInterrupt


def stop_workers(workers: list[Any]) -> None:
    """After Ctrl-C: workers in the terminal's process group got SIGINT too; any still alive
    after a moment (the parent alone was signalled) get it now, so each marks its running
    trial failed; the rest are terminated (their trials go stale and are retried)."""
    join_all(workers, 3.0)
    for w in workers:
        if w.is_alive() and w.pid is not None:
            os.kill(w.pid, signal.SIGINT)
    join_all(workers, 30.0)
    for w in workers:
        if w.is_alive():
            w.terminate()


def join_all(workers: list[Any], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for w in workers:
        w.join(timeout=max(0.0, deadline - time.monotonic()))
