"""`isolated_map`: tasks on a joblib pool (loky or dask) as one lazy stream, and, when the pool
breaks (a worker died, a task hung), the tasks it held run one at a time in the isolated child."""
from __future__ import annotations

import threading
import warnings
from typing import Any, Callable, Iterable, Iterator

from preprocess.parallel.dask_cluster import dask_client
from preprocess.parallel.isolated import IsolatedRunner, prepare_worker, run_isolated
from preprocess.parallel.outcome import Outcome, backstop, indexed_call


class _Feed:
    """The task iterator handed to joblib: numbers the tasks and remembers those not yet returned."""

    def __init__(self, tasks: Iterable[Any]):
        self._tasks = iter(tasks)
        self._lock = threading.Lock()
        self._next_index = 0
        self.pending: dict[int, Any] = {}
        self.exhausted = False

    def __iter__(self) -> "_Feed":
        return self

    def __next__(self) -> tuple[int, Any]:
        with self._lock:
            try:
                task = next(self._tasks)
            except StopIteration:
                self.exhausted = True
                raise
            index = self._next_index
            self._next_index += 1
            self.pending[index] = task
            return index, task

    def returned(self, index: int) -> Any:
        with self._lock:
            return self.pending.pop(index)

    def take_pending(self) -> list[tuple[int, Any]]:
        with self._lock:
            suspects = sorted(self.pending.items())
            self.pending.clear()
            return suspects



def isolated_map(
    func: Callable[[Any], Any],
    tasks: Iterable[Any],
    *,
    workers: int,
    file_timeout: float | None,
    backend: str = "loky",
    scheduler: str | None = None,
    runner: IsolatedRunner | None = None,
) -> Iterator[tuple[Any, Outcome]]:
    """Yield ``(task, Ok(func(task)) | Failed(kind, message))`` for every task, in completion order.

    workers: processes computing at once (>= 1). file_timeout: seconds one task may run (None: no
    limit). backend: "loky" (local processes) or "dask" (a distributed cluster at `scheduler`).
    runner: an `IsolatedRunner(func, file_timeout)` to reuse across calls (its child process
    stays up; the caller closes it); by default one is made and closed here.
    Every task is yielded exactly once, whatever happens to the processes running it.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if backend not in ("loky", "dask"):
        raise ValueError(f"backend must be 'loky' or 'dask', got {backend!r}")
    if runner is not None and (runner.func is not func or runner.file_timeout != file_timeout):
        raise ValueError("runner was made for another function or timeout")
    feed = _Feed(tasks)
    own_runner = runner is None
    runner = runner or IsolatedRunner(func, file_timeout)
    try:
        if backend == "loky" and workers == 1:
            # no pool: every task in the isolated child, one at a time
            yield from run_isolated(runner, feed)
            return
        client = cluster = None
        if backend == "dask":
            client, cluster = dask_client(scheduler, workers)
        try:
            while not feed.exhausted:
                try:
                    for index, outcome in _fast_path(func, feed, workers, file_timeout, backend, client, runner.prepare):
                        yield feed.returned(index), outcome
                    return
                except Exception as exc:  # the pool broke: a worker died, or a task hung
                    suspects = feed.take_pending()
                    if not suspects:
                        raise RuntimeError(f"the {backend} worker pool failed before running any task: {exc}") from exc
                    yield from run_isolated(runner, suspects)
        finally:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
    finally:
        if own_runner:
            runner.close()



def _fast_path(func, feed: _Feed, workers: int, file_timeout: float | None, backend: str, client,
               prepare: Callable[[], Any] | None) -> Iterator[tuple[int, Outcome]]:
    import joblib

    calls = (joblib.delayed(indexed_call)(func, index, task, file_timeout) for index, task in feed)
    if backend == "dask":
        # joblib's dask backend submits to the client given here, not to a process-wide default
        with joblib.parallel_config(backend="dask", client=client):
            parallel = joblib.Parallel(n_jobs=workers, return_as="generator_unordered",
                                       timeout=backstop(file_timeout))
            yield from _closed_quietly(parallel(calls))
    else:
        with loky_config(prepare):
            parallel = joblib.Parallel(n_jobs=workers, return_as="generator_unordered",
                                       timeout=backstop(file_timeout))
        yield from _closed_quietly(parallel(calls))


#: what joblib warns when its generator is closed before the end: by design here (the caller stopped)
_EARLY_CLOSE = r".*(successfully executed\s+but not used|still being processed by the workers have been cancelled)"


def _closed_quietly(outputs: Iterator) -> Iterator:
    """joblib's result generator, closed without its warning when the caller stops early (a stop
    signal, a `break`): the tasks it cancels were never wanted."""
    try:
        for output in outputs:
            yield output
    finally:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_EARLY_CLOSE, category=UserWarning)
            outputs.close()


def loky_config(prepare: Callable[[], Any] | None):
    """joblib's loky backend, each of whose worker processes runs `prepare` as it starts (replacements
    of crashed workers too). The same `prepare` object means the same pool: joblib reuses it."""
    import joblib

    return joblib.parallel_config(backend="loky", initializer=prepare_worker, initargs=(prepare,))
