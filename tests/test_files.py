"""Output folders checked before any work, atomic writes, and the temporaries killed writes leave."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from common.files import atomic_write, check_output_dir, remove_stale_temporaries, stale_temporaries, write_text
from common.errors import KellyError


def test_a_killed_write_leaves_a_temporary_that_the_next_write_removes(tmp_path, killed_write):
    target = tmp_path / "out" / "emotionrecognizer_best.pt"
    left = killed_write(target)
    assert left.name.startswith(".emotionrecognizer_best.pt.") and left.stat().st_size == 65536
    other = killed_write(tmp_path / "out" / "other.json")        # another file's: not this write's business
    write_text(target, "done")
    assert target.read_text() == "done" and not left.exists() and other.exists()
    assert sorted((tmp_path / "out").iterdir()) == sorted([other, target])


def test_a_run_removes_every_stale_temporary_of_its_folder_but_a_live_writers(tmp_path, killed_write):
    folder = tmp_path / "checkpoints"
    killed = killed_write(folder / "dynamicsengine_latest.pt")
    earlier = folder / ".emotion_best.pt.k2j4h6g8.tmp"            # as earlier versions named them
    earlier.write_bytes(b"x")
    fixed = folder / ".emotion_history.json.tmp"
    fixed.write_text("{")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = folder / f".melodytransformer_best.pt.{sleeper.pid}-abcd1234.tmp"   # a run writing right now
        live.write_bytes(b"x")
        kept = folder / "melodytransformer_best.pt"
        kept.write_bytes(b"checkpoint")
        assert set(stale_temporaries(folder)) == {killed, earlier, fixed}
        assert set(remove_stale_temporaries(folder)) == {killed, earlier, fixed}
        assert sorted(folder.iterdir()) == sorted([live, kept])
    finally:
        sleeper.kill()
        sleeper.wait()
    assert remove_stale_temporaries(folder) == [live]          # its writer is gone now


def test_a_failed_write_leaves_neither_half_a_file_nor_a_temporary(tmp_path):
    target = tmp_path / "history.json"
    target.write_text("old")
    with pytest.raises(ZeroDivisionError):
        with atomic_write(target) as handle:
            handle.write("new, half")
            1 / 0
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]


def fails_with(message: str, call, *args) -> None:
    """`call(*args)` raises a KellyError whose message is exactly `message`."""
    with pytest.raises(KellyError) as raised:
        call(*args)
    assert str(raised.value) == message


def test_output_folder_faults_name_the_path_and_the_fault(tmp_path, read_only):
    regular = tmp_path / "FILE"
    regular.write_text("a file")
    check_output_dir(tmp_path / "new" / "deeper", "--output")     # creatable: fine, and nothing created
    assert not (tmp_path / "new").exists()
    fails_with(f"{regular}: is a file, not a folder (--output)", check_output_dir, regular, "--output")
    fails_with(f"{regular}/sub: cannot be created: {regular} is a file, not a folder (--output)",
               check_output_dir, regular / "sub", "--output")
    fails_with(f"{regular}: is a file, not a folder (output folder)", write_text, regular / "x.json", "{}")

    locked = read_only()
    fault = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    fails_with(f"{locked}: cannot write into this folder: {fault} (--cache-dir)", check_output_dir, locked, "--cache-dir")
    fails_with(f"{locked}/sub: cannot be created: {locked}: {fault} (--output)", check_output_dir, locked / "sub", "--output")
    fails_with(f"{locked}/x.json: cannot write: {fault}", write_text, locked / "x.json", "{}")


@pytest.fixture
def umask():
    """A function setting this process's umask for the test; the old one is restored after it."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_an_atomic_write_gets_the_mode_the_umask_gives_as_a_plain_open_would(tmp_path, umask, mask, mode):
    umask(mask)
    written = write_text(tmp_path / "models" / "emotionrecognizer.json", "{}")
    with atomic_write(tmp_path / "checkpoints" / "emotionrecognizer_best.pt", "wb") as handle:
        handle.write(b"\0" * 16)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    for path in (written, tmp_path / "checkpoints" / "emotionrecognizer_best.pt"):
        assert path.stat().st_mode & 0o777 == mode == plain.stat().st_mode & 0o777, path


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_cache_shards_and_the_manifest_get_the_mode_the_umask_gives(tmp_path, umask, mask, mode):
    from preprocess.cache.manifest import Manifest
    from preprocess.cache.shards import ItemResult, write_shard

    umask(mask)
    write_shard(tmp_path, "groove/shard-0001.h5", [ItemResult(
        source="groove", item_id="a", split="train", content_hash="0" * 16, label_source="proxy",
        valence=0.1, arousal=-0.2, source_path="a.mid", samples={})], "test-version")
    Manifest.open(tmp_path, create=True).close()
    for path in (tmp_path / "groove" / "shard-0001.h5", tmp_path / "manifest.sqlite"):
        assert path.stat().st_mode & 0o777 == mode, path
