"""One writer per folder: an exclusive lock a command holds while it writes into a folder.

    with FolderLock(cache_dir, ".lock", writes="the cache", busy="another `kelly preprocess` is writing this cache"):
        ...
"""
from __future__ import annotations

from pathlib import Path

from common.errors import KellyError
from common.files import describe_os_error, make_dir


class FolderLock:
    """An exclusive lock on a folder while one command writes into it: a second command wanting the
    same folder stops at once with a KellyError. The lock is the OS's (``flock`` on the file
    `name` in `folder`), so a killed holder releases it; without ``fcntl`` (Windows) one writer at a
    time is up to the user.

    writes: what the folder holds, for the message when the lock file cannot be made ("the cache");
    busy: the message when another process holds the lock; what: the setting that names the folder.
    """

    def __init__(self, folder: str | Path, name: str, *, writes: str, busy: str, what: str = "output folder"):
        self.path = Path(folder) / name
        self.writes, self.busy, self.what = writes, busy, what
        self.handle = None

    def __enter__(self) -> "FolderLock":
        make_dir(self.path.parent, self.what)
        try:
            self.handle = open(self.path, "a+")
        except OSError as exc:
            raise KellyError(f"{self.path.parent}: cannot write {self.writes} here: {describe_os_error(exc)} "
                             f"(opening its lock file {self.path.name})") from None
        try:
            import fcntl

            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:
            pass
        except OSError:
            self.handle.close()
            self.handle = None
            raise KellyError(f"{self.path.parent}: {self.busy}") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
