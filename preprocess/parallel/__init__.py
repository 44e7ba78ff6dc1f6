"""An isolated parallel map: one task's crash or hang becomes that task's failure, never the run's end.

    for task, outcome in isolated_map(func, tasks, workers=8, file_timeout=120):
        if isinstance(outcome, Ok): use(outcome.value)
        else: record(task, outcome.kind, outcome.message)      # "error" | "crash" | "timeout"

How a task can go wrong, and what happens:

- `func` raises: caught inside the worker and returned as ``Failed("error", "<stage>: <message>")``
  (the stage is the exception's ``stage`` attribute when it has one, else its type name). The
  worker lives on; this is the common case (a malformed file) and costs nothing extra.
- a task runs past `file_timeout` in Python code: an interval timer (SIGALRM) set by the worker
  around each task stops it there, ``Failed("timeout", "timeout after 120 s")``; the worker lives on.
- the worker process dies (a C extension segfaults: joblib raises ``TerminatedWorkerError``) or a
  task is stuck where the timer cannot reach it (inside C code) until the outer deadline,
  `file_timeout` plus a margin (joblib raises ``TimeoutError`` and kills the workers): the fast
  path stops. Every task handed out but not returned is a suspect; the suspects run one at a time
  in a separate child process (``multiprocessing`` "spawn", killed on the same deadline), which
  names the culprit exactly: ``Failed("crash", "signal 11 (SIGSEGV)")`` or
  ``Failed("timeout", "timeout after 120 s")``. The innocent suspects' results are yielded as
  usual, and the fast path resumes with the tasks not yet handed out.
- with ``workers=1`` there is no joblib pool at all: the tasks run in one such child process, so
  a segfault still cannot take the calling process down, and the culprit is always known.

The fast path is ``joblib.Parallel(n_jobs=workers, return_as="generator_unordered")`` over a lazy
generator of tasks: results stream back in completion order and memory stays flat however many
tasks there are. ``backend="dask"`` runs the same through joblib's dask backend on a
``distributed`` cluster (`scheduler` is its address; None starts a local cluster of `workers`
processes); suspects are then isolated on the calling machine, so the task's inputs must be
readable there too. Two dask caveats: the scheduler retries a task whose worker died on other
workers (``distributed.scheduler.allowed-failures``, default 3) before giving up, and joblib's
dask backend (joblib 1.6) does not report that failure to an unordered generator, so a crash on a
dask worker is noticed when the outer deadline runs out, not at once (with no timeout it would
wait forever: give one). Dask runs tasks in worker threads, where the per-task timer is not
available: a hung task keeps its dask worker thread busy until that worker is restarted.

Start-up: a fresh worker process pays a few tenths of a second (Python, numpy, the feature code's
imports) before its first task. ``start_workers(workers, runner)`` starts the processes that a later
``isolated_map(..., runner=runner)`` uses, each running ``runner.prepare`` as it starts, and returns
at once, so that the caller can do other work (read its inputs) meanwhile; ``stop_workers()`` ends
the loky pool's idle processes when the caller is done, instead of leaving them for its idle timeout.
`WorkerPool` does all of that for one job (and starts a local dask cluster for ``backend="dask"``
without a scheduler), ending its processes on any exit.

`func` and the tasks must be picklable (module-level functions, plain data), as for any process pool.

Worker processes ignore SIGINT (a Ctrl-C reaches the whole process group; their parent decides,
and ends them: `preprocess.stopping`).

The modules: `outcome` (what a task gives back, and the call that catches its own failure),
`isolated` (the child process that runs suspects one at a time), `mapping` (`isolated_map`: the
fast path on a joblib pool, falling back on the isolated child), `workers` (workers started
early, stopped when done: `WorkerPool`), `dask_cluster` (the dask backend's cluster and client).
"""
from __future__ import annotations

from preprocess.parallel.dask_cluster import check_scheduler, local_dask_cluster
from preprocess.parallel.isolated import IsolatedRunner
from preprocess.parallel.mapping import isolated_map
from preprocess.parallel.outcome import Failed, Ok, Outcome, guarded_call
from preprocess.parallel.workers import WorkerPool, default_workers, start_workers, stop_workers

__all__ = ["Ok", "Failed", "Outcome", "isolated_map", "guarded_call", "IsolatedRunner", "start_workers",
           "stop_workers", "WorkerPool", "default_workers", "check_scheduler", "local_dask_cluster"]
