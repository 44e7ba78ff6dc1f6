"""Task functions for the isolated-map tests: they must live in an importable module (not a test
file) so that worker processes can unpickle them by reference."""
from __future__ import annotations

import ctypes
import signal
import time


class StageError(Exception):
    """An ordinary failure that names the step it happened in."""

    stage = "parse"


def work(task):
    """Square an int; crash for real, hang, or raise on the planted inputs.

    "hang" sleeps in Python (a timer signal can stop it); "stuck" first blocks that signal, as code
    stuck inside a C library effectively does, so only killing its process ends it.
    """
    if task == "segfault":
        ctypes.string_at(0)          # reads address 0: SIGSEGV in this process
    if task == "hang":
        time.sleep(10_000)
    if task == "stuck":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(10_000)
    if task == "raise":
        raise StageError("planted malformed input")
    time.sleep(0.01)
    return task * task


def extract_or_crash(item, content_hash=None):
    """The real `extract_item`, except for planted files: "crash_here*" segfaults, "hang_here*" hangs."""
    from pathlib import Path

    from preprocess.extract import extract_item

    name = Path(item.path).name
    if name.startswith("crash_here"):
        ctypes.string_at(0)
    if name.startswith("hang_here"):
        time.sleep(10_000)
    return extract_item(item, content_hash=content_hash)


PREPARED = False


def prepare(fail: bool = False):
    """A worker's preparation: marks the process as prepared (or raises, when asked to)."""
    global PREPARED
    if fail:
        raise ImportError("planted: a module the preparation imports is missing")
    PREPARED = True


def who(task):
    """(the task, this process's id, whether `prepare` ran in this process)."""
    import os

    return task, os.getpid(), PREPARED
