"""The dask backend's cluster and client: a scheduler checked before any work, or a local cluster."""
from __future__ import annotations

from common.errors import KellyError


def dask_client(scheduler: str | None, workers: int):
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
