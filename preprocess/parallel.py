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
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from common.errors import KellyError

__all__ = ["Ok", "Failed", "isolated_map", "guarded_call", "IsolatedRunner", "start_workers", "stop_workers",
           "WorkerPool", "default_workers", "check_scheduler", "local_dask_cluster"]


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


def _indexed_call(func: Callable[[Any], Any], index: int, task: Any, timeout: float | None) -> tuple[int, Outcome]:
    return index, guarded_call(func, task, timeout)


def _backstop(file_timeout: float | None) -> float | None:
    """The outer deadline (pool or parent): later than the worker's own alarm, for hangs in C code."""
    return None if file_timeout is None else file_timeout + max(2.0, 0.1 * file_timeout)


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "process vanished"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
            return f"signal {-exitcode} ({name})"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


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


_READY = "ready"
CHILD_START_TIMEOUT = 300.0     # seconds a fresh child may take to start (imports on a loaded machine)


def _prepare(prepare: Callable[[], Any] | None) -> None:
    """Run a worker's preparation (imports); its failure is left for the first task to meet and report."""
    if prepare is not None:
        try:
            prepare()
        except Exception:
            pass


def _child_loop(conn, func, timeout, prepare=None) -> None:
    """Body of an isolated child: prepare, then run tasks from the pipe one at a time, send back outcomes."""
    _prepare(prepare)
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
            raise RuntimeError(f"an isolated worker process did not start ({_describe_exit(exitcode)})")
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
            return Failed("crash", _describe_exit(exitcode))
        backstop = _backstop(self.file_timeout)
        deadline = None if backstop is None else time.monotonic() + backstop
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
                return Failed("crash", _describe_exit(exitcode))
            if got_index == index:
                return outcome

    def close(self) -> None:
        """End the child. It is idle between tasks and holds nothing to flush: it is killed rather
        than left to tear its interpreter down (about 0.15 s) while the caller waits."""
        self._discard(kill=True)


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

    with _loky_config(runner.prepare):
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


def _run_isolated(runner: IsolatedRunner, tasks: Iterable[tuple[int, Any]]) -> Iterator[tuple[Any, Outcome]]:
    for index, task in tasks:
        yield task, runner.run(index, task)


def _dask_client(scheduler: str | None, workers: int):
    cluster = None if scheduler else local_dask_cluster(workers)
    from distributed import Client

    return Client(scheduler or cluster, set_as_default=False), cluster


def _distributed():
    try:
        import distributed
    except ImportError as exc:  # optional dependency
        raise KellyError("--backend dask needs dask[distributed]: pip install 'kelly-ml[dask]'") from exc
    return distributed


def check_scheduler(scheduler: str | None) -> None:
    """KellyError unless dask.distributed is installed and, when given, `scheduler` answers (10 s)."""
    distributed = _distributed()
    if not scheduler:
        return
    try:
        distributed.Client(scheduler, timeout=10, set_as_default=False).close()
    except (OSError, TimeoutError, ValueError) as exc:
        raise KellyError(f"dask scheduler {scheduler}: cannot connect ({exc})") from exc


def local_dask_cluster(workers: int):
    """A dask.distributed cluster of `workers` single-threaded processes on this machine (close it)."""
    return _distributed().LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)


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
        """Stop the local workers and the isolated child (once)."""
        if not self.ended:
            self.ended = True
            self.runner.close()
            if self.local and self.workers > 1:
                stop_workers()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.end()
        if self.cluster is not None:
            self.cluster.close()


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
            yield from _run_isolated(runner, feed)
            return
        client = cluster = None
        if backend == "dask":
            client, cluster = _dask_client(scheduler, workers)
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
                    yield from _run_isolated(runner, suspects)
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

    calls = (joblib.delayed(_indexed_call)(func, index, task, file_timeout) for index, task in feed)
    if backend == "dask":
        # joblib's dask backend submits to the client given here, not to a process-wide default
        with joblib.parallel_config(backend="dask", client=client):
            parallel = joblib.Parallel(n_jobs=workers, return_as="generator_unordered",
                                       timeout=_backstop(file_timeout))
            yield from parallel(calls)
    else:
        with _loky_config(prepare):
            parallel = joblib.Parallel(n_jobs=workers, return_as="generator_unordered",
                                       timeout=_backstop(file_timeout))
        yield from parallel(calls)


def _loky_config(prepare: Callable[[], Any] | None):
    """joblib's loky backend, each of whose worker processes runs `prepare` as it starts (replacements
    of crashed workers too). The same `prepare` object means the same pool: joblib reuses it."""
    import joblib

    return joblib.parallel_config(backend="loky", initializer=_prepare, initargs=(prepare,))
