"""The isolated parallel map: errors, real segfaults and hangs are one task's failure, never the run's end."""
from __future__ import annotations

import functools
import itertools
import os
import time

import pytest

import parallel_tasks
from preprocess.parallel import Failed, IsolatedRunner, Ok, isolated_map, start_workers, stop_workers


def _outcomes(pairs):
    return {task: outcome for task, outcome in pairs}


def test_results_stream_and_exceptions_stay_in_the_worker():
    tasks = list(range(30)) + ["raise"]
    out = _outcomes(isolated_map(parallel_tasks.work, tasks, workers=2, file_timeout=60))
    assert set(out) == set(tasks)
    assert all(out[i] == Ok(i * i) for i in range(30))
    failed = out["raise"]
    assert isinstance(failed, Failed) and failed.kind == "error" and failed.stage == "parse"
    assert failed.message == "parse: planted malformed input"


def test_segfault_and_hangs_are_pinned_on_their_tasks_and_the_run_goes_on():
    tasks = list(range(24))
    tasks[5:5] = ["segfault"]
    tasks[12:12] = ["hang"]
    tasks[18:18] = ["stuck"]
    out = _outcomes(isolated_map(parallel_tasks.work, tasks, workers=2, file_timeout=1))
    assert set(out) == set(tasks)
    crash, hang, stuck = out["segfault"], out["hang"], out["stuck"]
    assert isinstance(crash, Failed) and crash.kind == "crash" and crash.message.startswith("signal 11")
    assert str(crash).startswith("crash: signal 11")
    # stopped by the worker's own timer / by killing the pool, then the child process
    assert isinstance(hang, Failed) and hang.kind == "timeout" and hang.message == "timeout after 1 s"
    assert isinstance(stuck, Failed) and stuck.kind == "timeout" and stuck.message == "timeout after 1 s"
    assert all(out[i] == Ok(i * i) for i in range(24))


def test_one_worker_runs_in_a_child_so_a_crash_cannot_end_the_caller():
    tasks = [3, "segfault", 4, "hang", "stuck", "raise", 5]
    out = _outcomes(isolated_map(parallel_tasks.work, tasks, workers=1, file_timeout=1.5))
    assert out[3] == Ok(9) and out[4] == Ok(16) and out[5] == Ok(25)
    assert out["segfault"].kind == "crash" and "SIGSEGV" in out["segfault"].message
    assert out["hang"] == Failed("timeout", "timeout after 1.5 s")
    assert out["stuck"] == Failed("timeout", "timeout after 1.5 s")
    assert out["raise"].kind == "error"


@pytest.mark.filterwarnings("ignore:.*tasks which were still being processed")
def test_tasks_are_consumed_lazily():
    pulled = itertools.count()

    def endless():
        for i in itertools.count():
            next(pulled)
            yield i

    taken = 0
    for _task, outcome in isolated_map(parallel_tasks.work, endless(), workers=2, file_timeout=60):
        assert isinstance(outcome, Ok)
        taken += 1
        if taken == 40:
            break
    # joblib dispatches ahead of the results, but never the whole (endless) input
    assert next(pulled) < 2000


def test_dask_backend_on_a_local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        tasks = list(range(20)) + ["raise"]
        out = _outcomes(isolated_map(parallel_tasks.work, tasks, workers=2, file_timeout=60,
                                     backend="dask", scheduler=cluster.scheduler_address))
    assert all(out[i] == Ok(i * i) for i in range(20))
    assert out["raise"] == Failed("error", "parse: planted malformed input", stage="parse")


def test_bad_arguments():
    with pytest.raises(ValueError, match="workers"):
        list(isolated_map(parallel_tasks.work, [1], workers=0, file_timeout=1))
    with pytest.raises(ValueError, match="backend"):
        list(isolated_map(parallel_tasks.work, [1], workers=2, file_timeout=1, backend="threads"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a killed child not yet reaped by its parent is a zombie: dead for our purpose
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_workers_started_early_are_prepared_reused_and_stopped():
    runner = IsolatedRunner(parallel_tasks.who, 60, prepare=parallel_tasks.prepare)
    wait = start_workers(2, runner)          # returns at once; the caller reads its inputs meanwhile
    warmed = wait()
    try:
        out = [outcome.value for _task, outcome in
               isolated_map(parallel_tasks.who, range(40), workers=2, file_timeout=60, runner=runner)]
    finally:
        runner.close()
    assert sorted(t for t, _, _ in out) == list(range(40))
    assert all(prepared for _, _, prepared in out)        # every task ran in a prepared worker
    pids = {pid for _, pid, _ in out}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids
    assert warmed & pids                                  # the pool started early is the one that ran them
    stop_workers()
    deadline = time.monotonic() + 120         # a wait, not a bound on speed: a loaded machine is slow
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)
    # the next map starts a fresh pool
    again = [o.value for _t, o in isolated_map(parallel_tasks.who, range(4), workers=2, file_timeout=60)]
    assert not {pid for _, pid, _ in again} & pids


def test_one_worker_started_early_is_prepared_and_a_failed_preparation_is_left_to_the_tasks():
    runner = IsolatedRunner(parallel_tasks.who, 60, prepare=parallel_tasks.prepare)
    start_workers(1, runner)()
    out = [o.value for _t, o in isolated_map(parallel_tasks.who, range(3), workers=1, file_timeout=60, runner=runner)]
    child = runner._process.pid
    runner.close()
    assert [t for t, _, _ in out] == [0, 1, 2] and {pid for _, pid, _ in out} == {child}
    assert all(prepared for _, _, prepared in out)
    assert not _alive(child)                  # closed: the idle child is ended, not left behind

    failing = IsolatedRunner(parallel_tasks.who, 60, prepare=functools.partial(parallel_tasks.prepare, fail=True))
    try:
        out = [o for _t, o in isolated_map(parallel_tasks.who, [7], workers=1, file_timeout=60, runner=failing)]
    finally:
        failing.close()
    assert out[0].value[0] == 7 and out[0].value[2] is False     # the task ran; preparation did not
