"""The isolated parallel map: errors, real segfaults and hangs are one task's failure, never the run's end."""
from __future__ import annotations

import itertools
import time

import pytest

import parallel_tasks
from preprocess.parallel import Failed, Ok, isolated_map


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
    started = time.monotonic()
    out = _outcomes(isolated_map(parallel_tasks.work, tasks, workers=2, file_timeout=1))
    elapsed = time.monotonic() - started
    assert set(out) == set(tasks)
    crash, hang, stuck = out["segfault"], out["hang"], out["stuck"]
    assert isinstance(crash, Failed) and crash.kind == "crash" and crash.message.startswith("signal 11")
    assert str(crash).startswith("crash: signal 11")
    # stopped by the worker's own timer / by killing the pool, then the child process
    assert isinstance(hang, Failed) and hang.kind == "timeout" and hang.message == "timeout after 1 s"
    assert isinstance(stuck, Failed) and stuck.kind == "timeout" and stuck.message == "timeout after 1 s"
    assert all(out[i] == Ok(i * i) for i in range(24))
    assert elapsed < 40


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
