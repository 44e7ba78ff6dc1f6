"""A run stopped by a signal: SIGTERM (a scheduler, `timeout`, `kill`), SIGINT (Ctrl-C) and SIGHUP
(a closed terminal) become a `Stopped` exception in the main thread, so that the run unwinds
through its clean-up (worker processes ended, temporaries removed, the manifest closed) instead
of dying with its workers left behind.

    with stop_on_signals():                 # the job's whole run, clean-up included
        ...
        with deferred():                    # a step that must finish once begun (a shard's write and commit)
            ...                             # a signal arriving here is raised when the step is done
    # Stopped.exit_code: 128 + the signal's number, what a shell reports for a process a signal ended

The first signal raises; any signal after it (a second Ctrl-C) is ignored while the clean-up
runs, so that the clean-up itself is not cut short. Handlers are installed only in the main
thread (Python runs them there) and the previous ones are restored on exit. Worker processes
ignore SIGINT (`ignore_interrupt`): a Ctrl-C reaches the whole process group, and the workers'
parent is the one that decides, and ends them.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

#: the signals that stop a run politely
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))

_deferring = 0                      # depth of `deferred` sections entered
_pending: int | None = None         # a signal that arrived inside one
_stopping = False                   # a Stopped was raised: later signals are ignored


class Stopped(KeyboardInterrupt):
    """The run was asked to stop by a signal. A KeyboardInterrupt, so that `except Exception` in
    the code it passes through lets it by, and a caller that knows only KeyboardInterrupt still
    stops cleanly (the `kelly` command's "interrupted").

    kept: what the stopped run leaves in the cache, filled in by the job as the exception passes
    ({"cache_dir", "new", "done"}; None when it stopped before it opened the cache).
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.kept: dict | None = None

    @property
    def name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return f"stopped by {self.name}"


def _handler(signum, frame) -> None:
    global _pending, _stopping
    if _stopping:
        return                      # already stopping: the clean-up goes on
    if _deferring:
        _pending = signum
        return
    _stopping = True
    raise Stopped(signum)


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Turn `signals` into `Stopped` for the duration of the block (main thread only; elsewhere a no-op)."""
    global _pending, _stopping
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _handler) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _pending, _stopping = None, False


@contextmanager
def deferred() -> Iterator[None]:
    """A step that must finish once begun: a stop signal arriving inside is raised at its end."""
    global _deferring, _pending, _stopping
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending is not None and not _stopping:
            signum, _pending = _pending, None
            _stopping = True
            raise Stopped(signum)


def ignore_interrupt() -> None:
    """In a worker process: ignore SIGINT (the parent stops the workers; see the module's docstring)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
