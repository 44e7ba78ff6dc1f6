"""Fetching one file over HTTP, resumably: what `kelly datasets download` does before it verifies.

    fetch(url, part_file, expected_size=..., retries=3)

Bytes go to the part file; a rerun asks for the rest with an HTTP Range request (If-Range with the
first response's ETag or Last-Modified, kept beside the part file as <part>.json, so a file changed
on the server restarts). A server that ignores Range restarts from byte 0. A connection lost
mid-file is retried (`retries`, resuming each time), then left for a rerun, with KellyError saying
how far it got. Only the standard library does the work (urllib); tqdm draws the bar.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path
from typing import Callable

from common.errors import KellyError
from preprocess.datasets.catalog import human_size

CHUNK = 1 << 20
USER_AGENT = "kelly-ml dataset downloader (python urllib)"


def write_json_atomic(path: Path, data) -> None:
    """`data` as indented JSON at `path`, written beside it and renamed into place."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path, default):
    """The JSON at `path`, `default` when the file does not exist; KellyError when it is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KellyError(f"{path}: not readable JSON ({exc}); delete it to start afresh") from None


def check_space(folder: Path, needed: int, what: str) -> None:
    """KellyError when the file system holding `folder` has fewer than `needed` bytes free."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise KellyError(f"{folder}: not enough disk space for {what}: needs {human_size(needed)}, "
                         f"{human_size(free)} free")


class _Interrupted(Exception):
    """The transfer stopped before the end; the part file keeps what arrived."""


def _describe_url_error(url: str, exc: urllib.error.URLError) -> str:
    reason = exc.reason
    host = urllib.request.urlparse(url).netloc
    if isinstance(reason, ConnectionRefusedError):
        why = "connection refused"
    elif isinstance(reason, socket.gaierror):
        why = "host name not found (no network?)"
    elif isinstance(reason, (TimeoutError, socket.timeout)):
        why = "timed out"
    else:
        why = str(reason)
    return f"cannot reach {host} for {url}: {why}"


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) from "bytes 100-199/200" or "bytes */200"."""
    match = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", value or "")
    if not match:
        return None, None
    first = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return first, total


def _fetch_once(url: str, part: Path, state_path: Path, *, expected_size: int | None, timeout: float,
                progress: bool, label: str, say: Callable[[str], None]) -> None:
    """One HTTP request: continue `part` from its current size (Range) or start it again."""
    from tqdm import tqdm

    state = read_json(state_path, {})
    have = part.stat().st_size if part.exists() else 0
    if have and state.get("url") != url:
        say(f"  {label}: the partial download came from another address; starting again")
        have = 0
    if expected_size is not None and have > expected_size:
        say(f"  {label}: the partial download is longer than the published size; starting again")
        have = 0
    if expected_size is not None and have == expected_size:
        return
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = state.get("etag") or state.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:            # nothing after `have`: complete, or the server's file shrank
            _, total = _content_range(exc.headers.get("Content-Range"))
            if total == have:
                return
            part.unlink(missing_ok=True)
            raise _Interrupted("the server's file is shorter than the partial download; starting again") from None
        if exc.code >= 500 or exc.code == 429:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from None
        raise KellyError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, socket.timeout)) and have:
            raise _Interrupted("timed out") from None
        raise KellyError(_describe_url_error(url, exc)) from None
    except ValueError as exc:               # not a URL urllib can open
        raise KellyError(f"{url!r}: {exc}") from None
    except (TimeoutError, socket.timeout):
        raise _Interrupted("timed out") from None
    except (ConnectionError, HTTPException) as exc:
        raise _Interrupted(f"{type(exc).__name__}: {exc}") from None

    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if response.status == 206:
            first, total = _content_range(response.headers.get("Content-Range"))
            if first != have:
                part.unlink(missing_ok=True)
                raise _Interrupted(f"asked for bytes from {have:,}, the server sent them from {first}; starting again")
            mode = "ab"
        else:
            if have:
                say(f"  {label}: the server does not resume downloads (or the file changed); starting again")
            have, mode = 0, "wb"
            total = length
        if total is None and length is not None:
            total = have + length
        if expected_size is not None and total is not None and total != expected_size:
            raise KellyError(f"{url}: the server offers {total:,} bytes, the published size is {expected_size:,}")
        remaining = (total - have) if total is not None else None
        if remaining:
            check_space(part.parent, remaining, f"the rest of {part.name[:-5]}")
        write_json_atomic(state_path, {"url": url, "etag": response.headers.get("ETag"),
                                        "last_modified": response.headers.get("Last-Modified"), "total": total})
        got = 0
        with open(part, mode) as out, tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                                           desc=label, disable=not progress, file=sys.stderr,
                                           dynamic_ncols=True, miniters=1) as bar:
            try:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    got += len(block)
                    bar.update(len(block))
            except (TimeoutError, socket.timeout):
                raise _Interrupted("timed out") from None
            except (ConnectionError, HTTPException, OSError) as exc:
                raise _Interrupted(f"{type(exc).__name__}: {exc}") from None
        if remaining is not None and got < remaining:
            raise _Interrupted(f"the connection closed after {have + got:,} of {total:,} bytes")


def fetch(url: str, part: Path, *, expected_size: int | None = None, retries: int = 3, timeout: float = 60.0,
          progress: bool = True, label: str = "", say: Callable[[str], None] = print) -> Path:
    """Download `url` into `part`, continuing what `part` already holds; return `part` when complete.

    A transfer cut short is retried up to `retries` times (each resuming where it stopped); after that
    the part file is kept and KellyError says how far it got, so that a rerun resumes.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    state_path = part.with_name(part.name + ".json")
    label = label or part.name[:-5]
    attempt = 0
    while True:
        try:
            _fetch_once(url, part, state_path, expected_size=expected_size, timeout=timeout, progress=progress,
                        label=label, say=say)
            return part
        except _Interrupted as exc:
            attempt += 1
            have = part.stat().st_size if part.exists() else 0
            if attempt > retries:
                raise KellyError(f"{url}: download interrupted ({exc}); {have:,} bytes kept in {part}: "
                                 "run the command again to resume") from None
            wait = min(2 ** (attempt - 1), 30)
            say(f"  {label}: {exc}; retrying in {wait} s from byte {have:,}")
            time.sleep(wait)
