"""One child process that runs tasks one at a time (`IsolatedRunner`): a task that crashes or hangs
it is named exactly, and the child is started again for the next task."""
from __future__ import annotations

import multiprocessing
import time
from typing import Any, Callable, Iterable, Iterator

from preprocess.parallel.outcome import Failed, Outcome, backstop, describe_exit, guarded_call
from preprocess.stopping import ignore_interrupt

_READY = "ready"
CHILD_START_TIMEOUT = 300.0     # seconds a fresh child may take to start (imports on a loaded machine)


def prepare_worker(prepare: Callable[[], Any] | None) -> None:
    """A worker process's start: SIGINT ignored (`stopping.ignore_interrupt`), then its preparation
    (imports), whose failure is left for the first task to meet and report."""
    ignore_interrupt()
    if prepare is not None:
        try:
            prepare()
        except Exception:
            pass


def _child_loop(conn, func, timeout, prepare=None) -> None:
    """Body of an isolated child: prepare, then run tasks from the pipe one at a time, send back outcomes."""
    prepare_worker(prepare)
    conn.send(_READY)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, task = message
        outcome = guarded_call(func, task, timeout)
        try:
            conn.send((index, outcome))
        except (BrokenPipeError, OSError):
            return
        except Exception as exc:  # the result itself could not be pickled
            conn.send((index, Failed("error", f"result: {type(exc).__name__}: {exc}", stage="result")))


class IsolatedRunner:
    """One child process that runs tasks one at a time; a crash or a hang is pinned on its task.

    The child is started on first use (or early, by `start`) and again after each crash or timeout.
    prepare: run in each fresh child before its first task (imports), so that start-up is paid up front.
    """

    def __init__(self, func: Callable[[Any], Any], file_timeout: float | None, start_method: str = "spawn",
                 prepare: Callable[[], Any] | None = None):
        self.func = func
        self.file_timeout = file_timeout
        self.prepare = prepare
        self._context = multiprocessing.get_context(start_method)
        self._process = None
        self._conn = None
        self._ready = False

    def start(self) -> None:
        """Start the child now, without waiting for it: the caller can go on while it starts."""
        if self._process is None:
            parent_conn, child_conn = self._context.Pipe(duplex=True)
            process = self._context.Process(target=_child_loop, daemon=True,
                                            args=(child_conn, self.func, self.file_timeout, self.prepare))
            process.start()
            child_conn.close()
            self._process, self._conn, self._ready = process, parent_conn, False

    def _wait_ready(self) -> None:
        # a task's deadline starts once the child is up: interpreter start-up is not the task's time
        if self._ready:
            return
        try:
            ready = self._conn.poll(CHILD_START_TIMEOUT) and self._conn.recv() == _READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            exitcode = self._discard(kill=True)
            raise RuntimeError(f"an isolated worker process did not start ({describe_exit(exitcode)})")
        self._ready = True

    def _discard(self, kill: bool) -> int | None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        self._ready = False
        if conn is not None:
            conn.close()
        if process is None:
            return None
        if kill and process.is_alive():
            process.kill()
        process.join(timeout=10)
        return process.exitcode

    def run(self, index: int, task: Any) -> Outcome:
        """Run one task in the child and return its outcome."""
        if self._process is not None and not self._process.is_alive():
            self._discard(kill=True)
        self.start()
        self._wait_ready()
        try:
            self._conn.send((index, task))
        except (BrokenPipeError, OSError):
            exitcode = self._discard(kill=True)
            return Failed("crash", describe_exit(exitcode))
        limit = backstop(self.file_timeout)
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                ready = self._conn.poll(wait)
            except (EOFError, OSError):
                ready = True
            if not ready:
                self._discard(kill=True)
                return Failed("timeout", f"timeout after {self.file_timeout:g} s")
            try:
                got_index, outcome = self._conn.recv()
            except (EOFError, OSError):
                # the pipe closed: the child died while running this task
                self._process.join(timeout=10)
                exitcode = self._discard(kill=True)
                return Failed("crash", describe_exit(exitcode))
            if got_index == index:
                return outcome

    def close(self) -> None:
        """End the child. It is idle between tasks and holds nothing to flush: it is killed rather
        than left to tear its interpreter down (about 0.15 s) while the caller waits."""
        self._discard(kill=True)



def run_isolated(runner: IsolatedRunner, tasks: Iterable[tuple[int, Any]]) -> Iterator[tuple[Any, Outcome]]:
    for index, task in tasks:
        yield task, runner.run(index, task)
