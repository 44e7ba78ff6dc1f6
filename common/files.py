"""The files kelly-ml writes: output folders checked before any work, atomic
writes, and their temporaries removed by the next run.

    check_output_dir(args.output, "--output")       # KellyError naming the path and the fault
    with atomic_write(path, "wb") as f: torch.save(state, f)
    write_text(path, text)
    remove_stale_temporaries(folder)                 # at the start of a run that writes into folder

An atomic write goes to ``.<name>.<pid>-<random>.tmp`` beside its target and is renamed into
place, so that no reader ever sees half a file. The file gets the mode a plain ``open()`` would
give it (0o666 less the umask: 0644 under the usual 022), so that a plugin or a build step running
as another user can read what kelly-ml writes. A run killed in the middle of a write leaves that
temporary behind; the next write of the same file removes it, and so does the next run writing
into that folder (`remove_stale_temporaries` at its start). A temporary whose writer process is
still running (another run writing into the same folder) is left alone. An ``OSError`` while
writing is a `KellyError` naming the file and the fault (read-only file system, disk full, ...).
"""
from __future__ import annotations

import errno
import glob
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator

from common.errors import KellyError

TMP_SUFFIX = ".tmp"
#: a temporary made by `atomic_write`: ".<target name>.<writer pid>-<random>.tmp"
_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")


def current_umask() -> int:
    """The process's umask, read without changing it where the OS says it (Linux /proc), else set
    and restored at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def describe_os_error(exc: OSError) -> str:
    """The fault an OSError reports, in words ("Read-only file system", "No space left on device")."""
    return exc.strerror or str(exc) or type(exc).__name__


def check_output_dir(path: str | Path, what: str = "output folder") -> None:
    """Check, without creating anything, that `path` is a folder this process can write into, or
    one it can create; KellyError naming the path and the fault otherwise. `what` says which
    setting or folder it is ("--cache-dir", "checkpoint folder") and ends the message.

    Called before a command's work starts, so that a bad output location fails at once instead of
    after the work (the write itself is checked again: a disk can fill up meanwhile).
    """
    path = Path(path)
    existing = path
    while not os.path.lexists(existing):
        if existing.parent == existing:
            break
        existing = existing.parent
    if not os.path.isdir(existing):
        if existing == path:
            raise KellyError(f"{path}: is a file, not a folder ({what})")
        raise KellyError(f"{path}: cannot be created: {existing} is a file, not a folder ({what})")
    if not os.access(existing, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        fault = _read_only_or_denied(existing)
        if existing == path:
            raise KellyError(f"{path}: cannot write into this folder: {fault} ({what})")
        raise KellyError(f"{path}: cannot be created: {existing}: {fault} ({what})")


def _read_only_or_denied(folder: Path) -> str:
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return os.strerror(errno.EROFS)
    except (AttributeError, OSError):  # no statvfs (Windows)
        pass
    return os.strerror(errno.EACCES)


def make_dir(path: str | Path, what: str = "output folder") -> Path:
    """mkdir -p, with a KellyError naming the path and the fault instead of an OSError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise KellyError(f"{path}: is a file, not a folder ({what})") from None
    except OSError as exc:
        raise KellyError(f"{path}: cannot be created: {describe_os_error(exc)} ({what})") from None
    return path


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_args) -> Iterator[IO]:
    """Open a temporary beside `path` for writing; on a clean exit it replaces `path` in one rename.

    mode: "w" (text, UTF-8 unless `encoding` is given) or "wb". The folder is created, and the
    temporaries killed earlier writes of `path` left are removed. On an exception the temporary is
    removed and the exception goes on; an OSError becomes a KellyError naming `path`.
    """
    path = Path(path)
    make_dir(path.parent)
    remove_stale_temporaries(path.parent, targets=[path.name])     # a killed earlier write's
    if "b" not in mode:
        open_args.setdefault("encoding", "utf-8")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise KellyError(f"{path}: cannot write: {describe_os_error(exc)}") from None
    try:
        with os.fdopen(fd, mode, **open_args) as handle:
            if hasattr(os, "fchmod"):    # mkstemp makes the file owner-only (0600) whatever the umask says
                os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            yield handle
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise KellyError(f"{path}: cannot write: {describe_os_error(exc)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":     # os.kill(pid, 0) would end the process there; a temporary is then taken as stale
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


def stale_temporaries(folder: str | Path, *, targets: Iterable[str] | None = None,
                      also: Iterable[str] = ()) -> list[Path]:
    """The temporaries interrupted writes left in `folder`: `atomic_write`'s whose writer process is
    gone, and hidden ``.<name>[.<random>].tmp`` files of earlier versions (no writer id).

    targets: only the temporaries of these file names (default: every hidden ``.*.tmp``, for
    folders only kelly-ml writes into); also: further glob patterns (temporaries named otherwise).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    targets = None if targets is None else set(targets)
    patterns = [".*.tmp"] if targets is None else [f".{glob.escape(name)}.*tmp" for name in targets]
    found = set()
    for pattern in patterns:
        for path in folder.glob(pattern):
            match = _TEMPORARY.match(path.name)
            if match is None:
                found.add(path)              # an earlier version's temporary: no writer id
            elif (targets is None or match["target"] in targets) and not _process_alive(int(match["pid"])):
                found.add(path)
    for pattern in also:
        found.update(folder.glob(pattern))
    return sorted(p for p in found if p.is_file())


def remove_stale_temporaries(folder: str | Path, *, targets: Iterable[str] | None = None,
                             also: Iterable[str] = ()) -> list[Path]:
    """Delete `stale_temporaries(folder, targets=targets, also=also)`; returns what was removed."""
    removed = []
    for path in stale_temporaries(folder, targets=targets, also=also):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise KellyError(f"{path}: cannot remove this leftover temporary file: {describe_os_error(exc)}") from None
        removed.append(path)
    return removed
