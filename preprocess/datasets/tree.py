"""What lies under a dataset's folder: every entry, walked once, either a file to read or named for why not.

    survey = Survey.of(root, named_like=(".mid", ".midi"))
    survey.files                       {relative POSIX path: absolute path} of every regular file
    survey.odd                         [(relative path, reason)] of the entries that are no file to read
    survey.with_extension((".mid",))   [(relative, absolute)] of the files with one of the extensions

The walk (os.scandir, depth first, in name order) follows links to files and to folders, but enters
each real folder once: a link back into a folder already walked (`lmd_full/a/loop -> ..`), or a
second way into one, is named and not walked again, so that no loop makes the walk run for ever or
fail with "Too many levels of symbolic links". The entries it names instead of reading (`odd`):

    LINK_NOWHERE        a symbolic link whose target does not exist (or is itself a loop of links)
    LINK_LOOP           a folder already walked, reached again by another path (a loop, a link to it)
    SPECIAL             a FIFO, socket or device: not a file, whatever its name (a pipe named song.mid)
    HIDDEN              a name starting with "." (macOS "._x.mid" copies, the download record) or an
                        archive tool's debris folder (__MACOSX): not walked, named once
    UNREADABLE          a folder or file the walk cannot look at (no permission, an I/O error)
    FOLDER_LIKE_FILE    a folder whose name ends like a file the reader wants (`song.mid/`): named,
                        and walked like any folder (its files are surveyed)

Relative paths are POSIX, relative to the surveyed root. Only the directory entries are read (one
stat per link or file), so the walk keeps up with folders of 100k+ files.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from common.errors import KellyError

LINK_NOWHERE = "a link that leads nowhere"
LINK_LOOP = "a folder already read by another path (a loop of links, or a link to it)"
SPECIAL = "not a regular file (a FIFO, socket or device)"
HIDDEN = "hidden (a name starting with '.') or an archive tool's debris"
UNREADABLE = "cannot be read (no permission or an I/O error)"
FOLDER_LIKE_FILE = "a folder, though named like a file (its contents are read as a folder's)"
#: folders that archive tools and editors leave behind and that never hold dataset files
DEBRIS_DIRS = frozenset({"__MACOSX", ".git", ".ipynb_checkpoints"})


def walk_tree(root: str | Path, named_like: tuple[str, ...] = ()) -> Iterator[tuple[str, str, str | None]]:
    """Yield (relative path, absolute path, reason) for every entry under `root` (see the module
    docstring): reason None for a regular file to read, else one of the module's reasons.

    `named_like`: lower-case file extensions (".mid") for which a folder so named is reported
    (FOLDER_LIKE_FILE). Raises KellyError when `root` itself is not a folder that can be listed.
    """
    root = str(root)
    try:
        start = os.stat(root)
    except OSError as exc:
        raise KellyError(f"{root}: cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(start.st_mode):
        raise KellyError(f"{root}: is not a folder")
    seen = {(start.st_dev, start.st_ino)}

    def walk(directory: str, prefix: str) -> Iterator[tuple[str, str, str | None]]:
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            if prefix:
                yield prefix.rstrip("/"), directory, UNREADABLE
                return
            raise KellyError(f"{directory}: the folder cannot be listed") from None
        for entry in entries:
            relative = f"{prefix}{entry.name}"
            if entry.name.startswith(".") or entry.name in DEBRIS_DIRS:
                yield relative, entry.path, HIDDEN
                continue
            try:
                if entry.is_symlink():
                    try:
                        info = os.stat(entry.path)          # follows the link
                    except FileNotFoundError:
                        yield relative, entry.path, LINK_NOWHERE
                        continue
                    except OSError as exc:                   # ELOOP: a link to itself, a ring of links
                        yield relative, entry.path, LINK_NOWHERE if exc.errno == errno.ELOOP else UNREADABLE
                        continue
                    kind = stat.S_IFMT(info.st_mode)
                elif entry.is_dir(follow_symlinks=False):   # the directory entry's type: no stat
                    info, kind = entry.stat(follow_symlinks=False), stat.S_IFDIR
                else:
                    info, kind = None, stat.S_IFREG if entry.is_file(follow_symlinks=False) else None
            except OSError:
                yield relative, entry.path, UNREADABLE
                continue
            if kind == stat.S_IFDIR:
                key = (info.st_dev, info.st_ino)
                if key in seen:
                    yield relative, entry.path, LINK_LOOP
                    continue
                seen.add(key)
                if named_like and entry.name.lower().endswith(named_like):
                    yield relative, entry.path, FOLDER_LIKE_FILE
                yield from walk(entry.path, relative + "/")
            elif kind == stat.S_IFREG:
                yield relative, entry.path, None
            else:
                yield relative, entry.path, SPECIAL

    yield from walk(root, "")


@dataclass
class Survey:
    """Everything under `root`, walked once (`walk_tree`)."""

    root: Path
    files: dict[str, str] = field(default_factory=dict)          # relative -> absolute, regular files
    odd: list[tuple[str, str]] = field(default_factory=list)     # (relative, reason): no file to read

    @classmethod
    def of(cls, root: str | Path, named_like: tuple[str, ...] = ()) -> "Survey":
        survey = cls(Path(root))
        for relative, absolute, reason in walk_tree(root, named_like):
            if reason is None:
                survey.files[relative] = absolute
            else:
                survey.odd.append((relative, reason))
        return survey

    def with_extension(self, extensions: tuple[str, ...], under: str = "") -> list[tuple[str, str]]:
        """(relative, absolute) of the files whose name ends with one of `extensions` (lower-case
        compared), under the relative folder `under` ("" = everywhere), in walk order."""
        prefix = f"{under.rstrip('/')}/" if under else ""
        return [(r, a) for r, a in self.files.items() if r.startswith(prefix) and r.lower().endswith(extensions)]
