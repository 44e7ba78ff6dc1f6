"""Blocks made in a background thread while the trainer works on the one before."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["prefetch"]


def prefetch(blocks: Iterable, depth: int = 1) -> Iterator:
    """The items of `blocks`, the next `depth` of them made in a background thread while the caller
    works on the current one (reading and decoding a block overlaps training on the one before).

    An exception in the thread is raised in the caller; when the caller stops early, the thread stops
    and `blocks` is closed.
    """
    done = object()
    channel: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                channel.put(value, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        iterator = iter(blocks)
        try:
            for value in iterator:
                if not put(value):
                    break
            else:
                put(done)
        except BaseException as exc:        # handed to the caller, raised there
            put(_Raised(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="kelly-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value = channel.get()
            if value is done:
                return
            if isinstance(value, _Raised):
                raise value.exception
            yield value
    finally:
        stop.set()
        thread.join()


@dataclass
class _Raised:
    exception: BaseException

