"""Shared test fixtures: the real-file corpus, read-only folders, writes killed half-way, and the
`kelly` command run in this process.

The real-file corpus (real MIDI, audio and dataset metadata, kept outside the repository for
licence reasons) is looked for in ``KELLY_REAL_CORPUS`` or else in ``real-corpus`` under the folder
``shared`` beside the checkout. Tests that need it take the ``real_corpus`` fixture (or carry the
``needs_real_corpus`` mark) and are skipped, with the reason, where it is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_CORPUS = Path(os.environ.get("KELLY_REAL_CORPUS")
                   or Path(__file__).resolve().parents[2] / "shared" / "real-corpus")

needs_real_corpus = pytest.mark.skipif(not REAL_CORPUS.is_dir(), reason=f"real-file corpus not present at {REAL_CORPUS}")


@pytest.fixture
def real_corpus() -> Path:
    """The real-file corpus folder; the test is skipped where it is absent."""
    if not REAL_CORPUS.is_dir():
        pytest.skip(f"real-file corpus not present at {REAL_CORPUS}")
    return REAL_CORPUS


@pytest.fixture
def read_only(tmp_path):
    """A function making read-only folders: ``read_only()`` an empty one, ``read_only(folder)`` a
    read-only view of `folder`'s content (a bind mount: the folder itself is left untouched).

    Root ignores permission bits, so a read-only mount is used where this process may mount
    (unmounted after the test); an ordinary user gets a folder without write permission instead.
    Where neither works the test is skipped, with the reason.
    """
    import shutil
    import subprocess

    mounted: list[Path] = []

    def make(source: Path | None = None) -> Path:
        target = tmp_path / f"read-only-{len(mounted) + 1}"
        target.mkdir()
        if os.name != "posix":
            pytest.skip("read-only folders are made with mount or chmod: POSIX only")
        if os.geteuid() != 0:
            if source is not None:
                shutil.copytree(source, target, dirs_exist_ok=True)
            for folder, _, _ in os.walk(target):
                os.chmod(folder, 0o555)
            mounted.append(target)
            return target
        commands = ([["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)]] if source is None else
                    [["mount", "--bind", str(source), str(target)],
                     ["mount", "-o", "remount,bind,ro", str(target)]])
        for i, command in enumerate(commands):
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired) as exc:
                done = subprocess.CompletedProcess(command, 1, "", str(exc))
            if done.returncode != 0:
                if i:
                    subprocess.run(["umount", str(target)], capture_output=True)
                pytest.skip(f"cannot make a read-only folder here (root, and `{' '.join(command[:3])}` "
                            f"failed: {done.stderr.strip() or done.returncode})")
        mounted.append(target)
        if not os.statvfs(target).f_flag & os.ST_RDONLY:
            pytest.skip(f"{target}: mounted read-only but writable still")
        return target

    yield make
    for target in reversed(mounted):
        if os.geteuid() != 0:
            for folder, _, _ in os.walk(target):
                os.chmod(folder, 0o755)
        else:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


#: a process that starts an atomic write of its argument, writes 64 KiB, and is killed mid-write
_KILLED_WRITE = """
import os, signal, sys
from common.files import atomic_write
with atomic_write(sys.argv[1], "wb") as handle:
    handle.write(b"x" * 65536)
    handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def killed_write():
    """A function ``killed_write(path) -> Path``: writes `path` the way kelly-ml writes every file, in
    a process killed (SIGKILL) half-way through the write; returns the temporary that process left.
    The file at `path`, if any, is unchanged."""
    import signal
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]

    def write(path: Path) -> Path:
        before = set(path.parent.glob(".*.tmp")) if path.parent.is_dir() else set()
        content = path.read_bytes() if path.exists() else None
        done = subprocess.run([sys.executable, "-c", _KILLED_WRITE, str(path)], cwd=repo, capture_output=True,
                              env={**os.environ, "PYTHONPATH": str(repo)})
        assert done.returncode == -signal.SIGKILL, done.stderr
        left = set(path.parent.glob(".*.tmp")) - before
        assert len(left) == 1 and (path.read_bytes() if path.exists() else None) == content
        return left.pop()

    return write


@pytest.fixture
def kelly_cli(capsys):
    """`kelly ARGV` run in this process: kelly_cli(*argv) -> (exit code, stdout, stderr)."""
    from kelly.cli import main

    def run(*argv) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (small networks train fastest so, and a shared machine's
    other cores stay free); the thread count before it is restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
