"""Training one network in several processes, data-parallel (PyTorch's DistributedDataParallel).

    torchrun --nproc_per_node N -m kelly train ...      # or:
    kelly train --nproc N ...                          # starts the N processes itself, as torchrun does

Every process (rank) builds the same model from the same seed and reads the same cache; each
optimizer step, every rank draws the same global batch and trains on its own contiguous share
(`train.samples`: the ranks' rows never overlap), DistributedDataParallel all-reduces the
gradients, so every rank takes the same step. The result equals one process at the same global
batch to float tolerance. Rank 0 alone writes checkpoints, history and plots and prints; resume
works as in one process (every rank reads the latest checkpoint). The backend is gloo on the CPU
and nccl on CUDA (each rank on the GPU of its LOCAL_RANK).

When a rank dies, the others fail in their next all-reduce and end with one line
(`lost_peer`); `--nproc`'s launcher then stops the rest and names the rank that ended first.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

from common.errors import KellyError

__all__ = ["World", "LostPeer", "from_environment", "launch", "lost_peer", "ENV_KEYS"]

#: the environment torchrun gives each process (and `launch` too)
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
#: how long a collective waits for a silent peer before it fails
TIMEOUT = timedelta(minutes=10)


class LostPeer(KellyError):
    """A collective failed: another training process died or hung. The run cannot go on."""


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when alone)."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_size_from_environment() -> int:
    """WORLD_SIZE as torchrun sets it (1 when unset); a KellyError when it is not a positive integer."""
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise KellyError(f"WORLD_SIZE={text!r}: must be a positive integer (as torchrun sets it)")
    return size


def from_environment(device) -> World:
    """The World of this process: from torchrun's environment, joining the process group on first
    call (gloo on the CPU, nccl on CUDA); World() when not started by torchrun."""
    size = world_size_from_environment()
    if size == 1:
        return World()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        try:
            dist.init_process_group(backend, timeout=TIMEOUT)
        except (RuntimeError, ValueError) as exc:
            raise KellyError(f"cannot join the {size} training processes ({_first_line(exc)})") from None
    return World(dist.get_rank(), dist.get_world_size())


def wrap(model, world: World, device):
    """The model as the training steps call it: DistributedDataParallel across the ranks, or itself."""
    if world.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def all_sum(value: float, world: World, device) -> float:
    """`value` summed over the ranks (itself when alone)."""
    if world.size == 1:
        return value
    import torch
    import torch.distributed as dist

    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total.item())


def lost_peer(exc: BaseException, world: World, name: str) -> LostPeer:
    """The line a rank ends with when a collective fails (another rank died or hung)."""
    return LostPeer(f"{name}: rank {world.rank} of {world.size} lost the other training processes "
                      f"({_first_line(exc)}); no checkpoint was half-written: resume with --resume")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(argv: list[str], nproc: int, *, poll_seconds: float = 0.2, grace: float = 5.0) -> int:
    """Run `kelly <argv>` in `nproc` processes on this machine with torchrun's environment; the exit
    code of the first rank that failed (0 when all succeeded). A rank that fails gives the others
    `grace` seconds to end by themselves (the same fault, each with its own line); those still
    running then are stopped (SIGTERM, then SIGKILL after 10 s), and one line on stderr names the
    rank that failed first, as it does for a rank ended by a signal."""
    port = free_port()
    ranks = []
    for rank in range(nproc):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank),
                   LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        ranks.append(subprocess.Popen([sys.executable, "-m", "kelly", *argv], env=env))
    failed, stopped = None, False
    try:
        while failed is None and any(p.poll() is None for p in ranks):
            failed = _first_failed(ranks)
            if failed is None:
                time.sleep(poll_seconds)
        if failed is not None:
            deadline = time.monotonic() + (grace if ranks[failed].returncode > 0 else 0.0)
            while any(p.poll() is None for p in ranks) and time.monotonic() < deadline:
                time.sleep(poll_seconds)
            stopped = any(p.poll() is None for p in ranks)
            _stop(ranks)
    except KeyboardInterrupt:
        _stop(ranks)
        print(f"kelly {argv[0]}: interrupted; the {nproc} processes were stopped", file=sys.stderr)
        return 130
    codes = [p.wait() for p in ranks]
    if failed is None or codes[failed] > 0:
        failed = _first_failed(ranks)
    if failed is None:
        return 0
    code = codes[failed]
    if code < 0 or stopped:
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        print(f"kelly {argv[0]}: rank {failed} of {nproc} ended with {how}; the other processes were stopped",
              file=sys.stderr)
    return code if code > 0 else 128 - code


def _first_failed(processes) -> int | None:
    """The rank that failed, preferring one ended by a signal (the others fail because it went)."""
    failed = [(p.returncode > 0, rank) for rank, p in enumerate(processes) if p.returncode not in (None, 0)]
    return min(failed)[1] if failed else None


def _stop(processes, grace: float = 10.0) -> None:
    for p in processes:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in processes:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()


def _first_line(exc: BaseException) -> str:
    """The first line of an error, without the source location gloo puts in front of it."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    if line.startswith("[") and "] " in line:
        line = line.split("] ", 1)[1]
    return line[:160]
