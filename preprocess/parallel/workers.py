"""Worker processes started before a job reads its inputs and ended as soon as its work is done:
`start_workers`, `stop_workers`, and `WorkerPool`, which does both for one job."""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator

from preprocess.parallel.dask_cluster import local_dask_cluster
from preprocess.parallel.isolated import IsolatedRunner
from preprocess.parallel.mapping import isolated_map, loky_config
from preprocess.parallel.outcome import Outcome
from preprocess.stopping import deferred


def start_workers(workers: int, runner: IsolatedRunner) -> Callable[[], set[int]]:
    """Start the local processes that ``isolated_map(runner.func, ..., workers=workers, runner=runner)``
    will use, each running ``runner.prepare`` as it starts, and return at once, so that the caller can
    read its inputs while they start. The returned function waits until a worker is up and returns
    the ids of those that ran a no-op task (an empty set for one worker); call it before `isolated_map`.

    workers == 1 starts the runner's child; more start joblib's loky pool, the one isolated_map's fast
    path then reuses (same n_jobs, same preparation), with a no-op task per worker to set it going.
    """
    if workers == 1:
        runner.start()
        return set               # the first task waits for the child
    import joblib

    with loky_config(runner.prepare):
        warming = joblib.Parallel(n_jobs=workers, return_as="generator_unordered")(
            joblib.delayed(os.getpid)() for _ in range(workers))

    def wait() -> set[int]:
        _starting.discard(wait)
        try:
            return set(warming)      # the ids of the worker processes that ran a no-op task
        except Exception:  # a pool that fails to start fails again, and is handled, in isolated_map
            return set()

    _starting.add(wait)
    return wait


#: the `wait` of each start_workers whose pool is still starting (nobody waited for it yet)
_starting: set[Callable[[], set[int]]] = set()


def stop_workers() -> None:
    """End the idle processes of joblib's loky pool now, rather than have them linger for its idle
    timeout (300 s) or be joined one by one at interpreter exit.

    A pool still starting (the caller stopped before waiting for it: an error while it read its
    inputs) is first let finish its start: ending it with its no-op tasks in flight makes joblib
    warn that tasks were cancelled, and loky's manager thread can fail with a traceback."""
    from joblib.externals.loky import reusable_executor

    for wait in list(_starting):
        wait()
    executor = getattr(reusable_executor, "_executor", None)   # the process-wide pool, if one was started
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)



def default_workers() -> int:
    """Every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)



class WorkerPool:
    """The processes one job's `isolated_map` runs on: started before the job reads its inputs (they
    import meanwhile), ended as soon as the work is done (no idle processes left behind), and on any
    exit.

        with WorkerPool(func, workers=8, file_timeout=120, prepare=prepare) as pool:
            inputs = read()                  # the loky workers start meanwhile
            pool.ready(bool(inputs))         # wait for them; a local dask cluster starts here
            for task, outcome in pool.map(tasks): ...
            pool.end()                       # nothing left for them: the workers stop now

    start: False when there will be no work (nothing is started). backend "dask" without a
    `scheduler` starts one local cluster for every `map`, when `ready` is told there is work.
    """

    def __init__(self, func: Callable[[Any], Any], *, workers: int, file_timeout: float | None,
                 backend: str = "loky", scheduler: str | None = None, prepare: Callable[[], Any] | None = None,
                 start: bool = True):
        self.func, self.workers, self.file_timeout = func, workers, file_timeout
        self.backend, self.scheduler = backend, scheduler
        self.runner = IsolatedRunner(func, file_timeout, prepare=prepare)   # one child for every map
        self.local = backend == "loky" and start
        self._started = start_workers(workers, self.runner) if self.local else set
        self.cluster = None
        self.ended = False

    def ready(self, work: bool = True) -> None:
        """Wait until the local workers are up; with work to do on dask and no scheduler, start a cluster."""
        self._started()
        if work and self.backend == "dask" and not self.scheduler:
            self.cluster = local_dask_cluster(self.workers)
            self.scheduler = self.cluster.scheduler_address

    def map(self, tasks: Iterable[Any]) -> Iterator[tuple[Any, Outcome]]:
        """`isolated_map(func, tasks, ...)` on this pool."""
        return isolated_map(self.func, tasks, workers=self.workers, file_timeout=self.file_timeout,
                            backend=self.backend, scheduler=self.scheduler, runner=self.runner)

    def end(self) -> None:
        """Stop the local workers and the isolated child (once; a stop signal arriving meanwhile
        waits until they are stopped: `stopping.deferred`)."""
        if not self.ended:
            with deferred():
                self.runner.close()
                if self.local and self.workers > 1:
                    stop_workers()
                self.ended = True

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.end()
        if self.cluster is not None:
            self.cluster.close()
