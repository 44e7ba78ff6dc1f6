"""What a task gives back (`Ok`, `Failed`), and `guarded_call`, which runs it in a worker: its
exceptions become data, and an interval timer stops it once it runs past its time."""
from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Ok:
    """A task's return value."""

    value: Any


@dataclass(frozen=True)
class Failed:
    """Why a task produced no value.

    kind: "error" (func raised), "crash" (its process died) or "timeout" (it ran past the limit).
    message: "<stage>: <text>" for errors, "signal 11 (SIGSEGV)" / "exit code 1" for crashes,
    "timeout after N s" for timeouts. stage: the step that raised (errors only).
    """

    kind: str
    message: str
    stage: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


Outcome = Ok | Failed


class _TaskTimeout(BaseException):
    """Raised in a worker by its own alarm; a BaseException so that `except Exception` in func lets it by."""


def _raise_timeout(signum, frame):
    raise _TaskTimeout()


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def guarded_call(func: Callable[[Any], Any], task: Any, timeout: float | None = None) -> Outcome:
    """Run `func(task)` and turn any exception it raises into ``Failed("error", ...)``.

    With a timeout, and where the process allows it (POSIX, main thread), an interval timer stops a
    task still running after `timeout` seconds at its next Python bytecode: ``Failed("timeout")``
    without losing the worker. A hang inside C code is left to the caller's deadline.
    """
    alarm = bool(timeout) and _can_alarm()
    if alarm:
        previous = signal.signal(signal.SIGALRM, _raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return Ok(func(task))
    except _TaskTimeout:
        return Failed("timeout", f"timeout after {timeout:g} s")
    except Exception as exc:  # a task's own failure is data, not a reason to stop the run
        stage = getattr(exc, "stage", None) or type(exc).__name__
        text = str(exc) or type(exc).__name__
        return Failed("error", f"{stage}: {text}", stage=str(stage))
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def indexed_call(func: Callable[[Any], Any], index: int, task: Any, timeout: float | None) -> tuple[int, Outcome]:
    return index, guarded_call(func, task, timeout)




def backstop(file_timeout: float | None) -> float | None:
    """The outer deadline (pool or parent): later than the worker's own alarm, for hangs in C code."""
    return None if file_timeout is None else file_timeout + max(2.0, 0.1 * file_timeout)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "process vanished"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
            return f"signal {-exitcode} ({name})"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"
