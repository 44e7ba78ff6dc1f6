"""`kelly datasets download` and `list` against a local HTTP server: no internet needed.

The archives are built once per session from `kelly sample-data --small`, in each source's
distributed archive layout (maestro-v3.0.0/ in the MIDI zip, groove/ in the Groove zip, MEMD_audio/
and annotations/ in DEAM's two zips, lmd_full/ ... in Lakh's tarballs). Each test starts its own
server on 127.0.0.1 and points the catalogue at it with an override file carrying the archives'
sizes and checksums (DEAM's entries carry none, as the real ones, so their checksums get recorded).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from common.errors import KellyError
from kelly.cli import main
from preprocess.datasets import catalog, locate
from preprocess.datasets.download import CHECKSUMS_FILE, DOWNLOADS_DIR, RECORD_FILE
from preprocess.datasets.download import download_lock as DownloadLock

REPO = Path(__file__).resolve().parents[1]

#: archive file name -> (folder of the sample data, the folder name inside the archive)
ARCHIVE_LAYOUT = {
    "maestro-v3.0.0-midi.zip": ("maestro-v3.0.0", "maestro-v3.0.0"),
    "groove-v1.0.0-midionly.zip": ("groove", "groove"),
    "DEAM_audio.zip": ("DEAM_audio/MEMD_audio", "MEMD_audio"),
    "DEAM_Annotations.zip": ("DEAM_Annotations/annotations", "annotations"),
    "lmd_full.tar.gz": ("lmd_full", "lmd_full"),
    "lmd_matched.tar.gz": ("lmd_matched", "lmd_matched"),
    "clean_midi.tar.gz": ("clean_midi", "clean_midi"),
}
SUBSET_OF = {"maestro-v3.0.0-midi.zip": "maestro/midi", "groove-v1.0.0-midionly.zip": "groove/midi",
             "DEAM_audio.zip": "deam/audio+annotations", "DEAM_Annotations.zip": "deam/audio+annotations",
             "lmd_full.tar.gz": "lakh/lmd_full", "lmd_matched.tar.gz": "lakh/lmd_matched",
             "clean_midi.tar.gz": "lakh/clean_midi"}


def zip_folder(folder: Path, prefix: str, extra: dict[str, bytes] | None = None) -> bytes:
    """A zip of `folder` whose entries start with `prefix`/ (folder entries included, as zip tools write)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{prefix}/", b"")
        for path in sorted(folder.rglob("*")):
            name = f"{prefix}/{path.relative_to(folder).as_posix()}"
            if path.is_dir():
                zf.writestr(name + "/", b"")
            else:
                zf.write(path, name)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buffer.getvalue()


def tar_folder(folder: Path, prefix: str, links: dict[str, str] | None = None) -> bytes:
    """A .tar.gz of `folder` under `prefix`/, plus symlinks {name: target}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tf.add(folder, arcname=prefix, recursive=False)
        for path in sorted(folder.rglob("*")):
            tf.add(path, arcname=f"{prefix}/{path.relative_to(folder).as_posix()}", recursive=False)
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> Path:
    from preprocess.sample_data import make_sample_data

    root = tmp_path_factory.mktemp("download-sample") / "sample"
    make_sample_data(root, small=True)
    return root


@pytest.fixture(scope="session")
def archives(sample) -> dict[str, bytes]:
    out = {}
    for name, (folder, prefix) in ARCHIVE_LAYOUT.items():
        build = zip_folder if name.endswith(".zip") else tar_folder
        out[name] = build(sample / folder, prefix)
    return out


class ArchiveServer:
    """An HTTP server on 127.0.0.1 serving `files` at /files/<name> and /mirror/<name>, with Range
    support (switchable), an ETag, and connections that can be cut after N bytes."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.requests: list[tuple[str, str | None]] = []
        self.cut: dict[str, list[int]] = {}          # name -> bytes to send before closing, one per request
        self.honour_range = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                name = self.path.rsplit("/", 1)[-1]
                if not self.path.startswith(("/files/", "/mirror/")) or name not in server.files:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    return
                data = server.files[name]
                etag = '"%s"' % hashlib.sha1(data).hexdigest()[:16]
                start = 0
                wanted = self.headers.get("Range")
                if wanted and server.honour_range and self.headers.get("If-Range", etag) == etag:
                    start = int(wanted.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.send_header("Connection", "close")
                self.end_headers()
                cuts = server.cut.get(name)
                if cuts:
                    self.wfile.write(body[: cuts.pop(0)])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, name: str, folder: str = "files") -> str:
        return f"http://127.0.0.1:{self.port}/{folder}/{name}"

    def fetched(self, name: str) -> list[str | None]:
        """The Range header of every request for `name`."""
        return [r for path, r in self.requests if path.endswith("/" + name)]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(archives):
    s = ArchiveServer(archives)
    yield s
    s.close()


def write_catalog(path: Path, server: ArchiveServer, files: dict[str, bytes], *, urls: bool = True,
                  **changes: dict) -> Path:
    """An override file pointing every archive at `server`, with its size and sha256 (none for DEAM's,
    as the real table publishes none); `changes` = {file name (dots as _): {field: value}}."""
    table: dict = {}
    for name, data in files.items():
        entry = {"url": server.url(name)} if urls else {}
        if not name.startswith("DEAM"):
            entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
        entry.update(changes.get(name.replace(".", "_").replace("-", "_"), {}))
        table.setdefault(SUBSET_OF[name], {"archives": {}})["archives"][name] = entry
    path.write_text(json.dumps(table), encoding="utf-8")
    return path


def kelly(*args: str) -> int:
    return main([str(a) for a in args])


def same_tree(a: Path, b: Path) -> bool:
    files_a = {p.relative_to(a).as_posix(): p.read_bytes() for p in a.rglob("*") if p.is_file() and p.name != RECORD_FILE}
    files_b = {p.relative_to(b).as_posix(): p.read_bytes() for p in b.rglob("*") if p.is_file() and p.name != RECORD_FILE}
    return files_a == files_b


# --- the tests --------------------------------------------------------------------------------------

def test_full_download_is_found_by_every_reader_and_a_rerun_downloads_nothing(sample, archives, server, tmp_path,
                                                                               capsys, monkeypatch):
    datasets = tmp_path / "datasets"
    monkeypatch.setenv(catalog.CATALOG_ENV, str(write_catalog(tmp_path / "catalog.json", server, archives)))
    assert kelly("datasets", "download", "deam", "maestro", "groove", "lakh", "--subset", "lmd_full", "lmd_matched",
                 "clean_midi", "--datasets-dir", datasets, "--quiet") == 0
    out = capsys.readouterr().out
    for licence in ("CC BY-NC-SA 4.0", "CC BY 4.0", "Creative Commons"):
        assert licence in out
    assert out.index("licence: CC BY-NC-SA") < out.index("maestro-v3.0.0-midi.zip (")   # licence first
    # the unpacked folders hold exactly the files the archives were made from, where the readers look
    for dest, origin in [("maestro-v3.0.0", "maestro-v3.0.0"), ("groove", "groove"),
                         ("deam/DEAM_audio", "DEAM_audio"), ("deam/DEAM_Annotations", "DEAM_Annotations"),
                         ("lakh_midi/lmd_full", "lmd_full"), ("lakh_midi/lmd_matched", "lmd_matched"),
                         ("lakh_midi/clean_midi", "clean_midi")]:
        assert same_tree(datasets / dest, sample / origin), dest
    assert locate(datasets, "deam") == (datasets / "deam", "deam-distributed")
    assert locate(datasets, "maestro") == (datasets / "maestro-v3.0.0", "maestro-csv")
    assert locate(datasets, "groove") == (datasets / "groove", "groove-csv")
    for layout in ("lmd_full", "lmd_matched", "clean_midi"):
        assert locate(datasets, "lakh", layout) == (datasets / "lakh_midi", layout)
    # no checksum is published for DEAM: the computed ones are recorded in the datasets folder
    recorded = json.loads((datasets / CHECKSUMS_FILE).read_text())
    for name in ("DEAM_audio.zip", "DEAM_Annotations.zip"):
        assert recorded[name]["sha256"] == hashlib.sha256(archives[name]).hexdigest()
        assert recorded[name]["size"] == len(archives[name])
    assert not (datasets / DOWNLOADS_DIR).exists()             # archives removed once unpacked
    assert not [p for p in datasets.rglob(".kelly-tmp-*")]

    requests = len(server.requests)
    assert kelly("datasets", "download", "deam", "maestro", "groove", "lakh", "--subset", "lmd_full", "lmd_matched",
                 "clean_midi", "--datasets-dir", datasets, "--quiet") == 0
    again = capsys.readouterr().out
    assert again.count("present, verified") == 6 and len(server.requests) == requests
    assert kelly("datasets", "list", "--datasets-dir", datasets) == 0
    listing = capsys.readouterr().out
    assert listing.count("present, verified") == 6 and "maestro-csv at" in listing and "groove-csv at" in listing

    shutil.copytree(sample / "harmony", datasets / "harmony")
    assert kelly("preprocess", "all", "--datasets-dir", datasets, "--cache-dir", tmp_path / "cache",
                 "--workers", "2", "--quiet") == 0
    summary = capsys.readouterr().out
    for source, layout in [("deam", "deam-distributed"), ("maestro", "maestro-csv"), ("groove", "groove-csv"),
                           ("lakh", "lmd_full"), ("harmony", "chord-json")]:
        assert f"({layout})" in summary.split(f"  {source:<8}", 1)[1].splitlines()[0]
    print(summary)
    missing = [line for line in summary.splitlines() if "not found under" in line]
    assert [line.rsplit(": ", 1)[1] for line in missing] == ["emopia"], missing     # the one not downloaded here


def test_a_dropped_connection_is_resumed_by_the_rerun_byte_for_byte(archives, server, tmp_path, capsys):
    datasets = tmp_path / "datasets"
    name = "lmd_full.tar.gz"
    cut = len(archives[name]) // 3
    server.cut[name] = [cut]
    override = write_catalog(tmp_path / "catalog.json", server, archives)
    assert kelly("datasets", "download", "lakh", "--datasets-dir", datasets, "--catalog", override, "--retries", "0",
                 "--keep-archives", "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run the command again to resume" in err and f"{cut:,} bytes kept" in err
    part = datasets / DOWNLOADS_DIR / f"{name}.part"
    assert part.stat().st_size == cut and not (datasets / "lakh_midi" / "lmd_full").exists()
    assert kelly("datasets", "download", "lakh", "--datasets-dir", datasets, "--catalog", override,
                 "--keep-archives", "--quiet") == 0
    assert server.fetched(name) == [None, f"bytes={cut}-"]
    assert (datasets / DOWNLOADS_DIR / name).read_bytes() == archives[name] and not part.exists()
    assert locate(datasets, "lakh") == (datasets / "lakh_midi", "lmd_full")


def test_within_one_run_a_dropped_connection_is_retried_from_where_it_stopped(archives, server, tmp_path, capsys):
    datasets = tmp_path / "datasets"
    name = "maestro-v3.0.0-midi.zip"
    server.cut[name] = [1000]
    override = write_catalog(tmp_path / "catalog.json", server, archives)
    assert kelly("datasets", "download", "maestro", "--datasets-dir", datasets, "--catalog", override,
                 "--retries", "1", "--quiet") == 0
    assert "retrying in 1 s from byte 1,000" in capsys.readouterr().out
    assert server.fetched(name) == [None, "bytes=1000-"]
    assert locate(datasets, "maestro") == (datasets / "maestro-v3.0.0", "maestro-csv")


def test_a_server_that_ignores_range_restarts_cleanly(archives, server, tmp_path, capsys):
    datasets = tmp_path / "datasets"
    name = "groove-v1.0.0-midionly.zip"
    server.cut[name] = [5000]
    override = write_catalog(tmp_path / "catalog.json", server, archives)
    assert kelly("datasets", "download", "groove", "--datasets-dir", datasets, "--catalog", override,
                 "--retries", "0", "--keep-archives", "--quiet") == 2
    capsys.readouterr()
    server.honour_range = False
    assert kelly("datasets", "download", "groove", "--datasets-dir", datasets, "--catalog", override,
                 "--keep-archives", "--quiet") == 0
    assert "does not resume downloads" in capsys.readouterr().out
    assert server.fetched(name) == [None, "bytes=5000-"]         # asked to resume, got the whole file
    assert (datasets / DOWNLOADS_DIR / name).read_bytes() == archives[name]
    assert locate(datasets, "groove") == (datasets / "groove", "groove-csv")


def test_a_404_is_one_line_and_installs_nothing(archives, server, tmp_path, capsys):
    datasets = tmp_path / "datasets"
    override = write_catalog(tmp_path / "catalog.json", server, archives,
                             groove_v1_0_0_midionly_zip={"url": server.url("no-such-file.zip")})
    assert kelly("datasets", "download", "groove", "--datasets-dir", datasets, "--catalog", override, "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "HTTP 404" in err and "no-such-file.zip" in err
    assert not (datasets / "groove").exists()


def test_a_checksum_mismatch_deletes_the_download_and_unpacks_nothing(archives, server, tmp_path, capsys):
    datasets = tmp_path / "datasets"
    override = write_catalog(tmp_path / "catalog.json", server, archives,
                             maestro_v3_0_0_midi_zip={"sha256": "0" * 64})
    assert kelly("datasets", "download", "maestro", "--datasets-dir", datasets, "--catalog", override, "--quiet") == 2
    err = capsys.readouterr().err.strip()
    actual = hashlib.sha256(archives["maestro-v3.0.0-midi.zip"]).hexdigest()
    assert len(err.splitlines()) == 1 and f"sha256 is {actual}, expected {'0' * 64}" in err and "deleted" in err
    assert not list((datasets / DOWNLOADS_DIR).iterdir())
    assert not (datasets / "maestro-v3.0.0").exists() and not list(datasets.rglob("*.midi"))


def test_a_changed_file_without_published_checksum_is_caught_by_the_recorded_one(sample, archives, server, tmp_path,
                                                                                capsys):
    datasets = tmp_path / "datasets"
    override = write_catalog(tmp_path / "catalog.json", server, archives)
    assert kelly("datasets", "download", "deam", "--datasets-dir", datasets, "--catalog", override, "--quiet") == 0
    shutil.rmtree(datasets / "deam")
    server.files["DEAM_Annotations.zip"] = zip_folder(sample / "DEAM_Annotations/annotations", "annotations",
                                                      extra={"annotations/README.txt": b"a new file upstream"})
    assert kelly("datasets", "download", "deam", "--datasets-dir", datasets, "--catalog", override, "--quiet") == 2
    err = capsys.readouterr().err
    assert "differs from the one recorded" in err and CHECKSUMS_FILE in err
    assert not (datasets / "deam").exists()


def test_an_unreadable_archive_without_published_checksum_is_deleted_and_not_recorded(archives, server, tmp_path,
                                                                                     capsys):
    datasets = tmp_path / "datasets"
    server.files["DEAM_Annotations.zip"] = archives["DEAM_Annotations.zip"][:-200]      # cut short upstream
    override = write_catalog(tmp_path / "catalog.json", server, archives)
    assert kelly("datasets", "download", "deam", "--datasets-dir", datasets, "--catalog", override, "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "DEAM_Annotations.zip: not a readable zip archive" in err
    assert "DEAM_Annotations.zip" not in json.loads((datasets / CHECKSUMS_FILE).read_text())
    assert not (datasets / DOWNLOADS_DIR / "DEAM_Annotations.zip").exists() and not (datasets / "deam").exists()
    server.files["DEAM_Annotations.zip"] = archives["DEAM_Annotations.zip"]          # fixed: the rerun succeeds
    assert kelly("datasets", "download", "deam", "--datasets-dir", datasets, "--catalog", override, "--quiet") == 0
    assert locate(datasets, "deam") == (datasets / "deam", "deam-distributed")


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink-out"])
def test_an_archive_entry_escaping_the_destination_refuses_the_archive(sample, archives, server, tmp_path, capsys,
                                                                       kind):
    datasets = tmp_path / "work" / "datasets"
    if kind == "symlink-out":
        name, source = "lmd_full.tar.gz", "lakh"
        bad = tar_folder(sample / "lmd_full", "lmd_full", links={"lmd_full/0/evil.mid": "../../../../evil.mid"})
    else:
        name, source = "groove-v1.0.0-midionly.zip", "groove"
        entry = "groove/../../evil.mid" if kind == "dotdot" else "/tmp/evil.mid"
        bad = zip_folder(sample / "groove", "groove", extra={entry: b"MThd not really"})
    server.files[name] = bad
    files = {**archives, name: bad}
    override = write_catalog(tmp_path / "catalog.json", server, files)
    assert kelly("datasets", "download", source, "--datasets-dir", datasets, "--catalog", override, "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refusing to unpack this archive" in err and "evil.mid" in err
    assert not list(tmp_path.rglob("evil.mid"))
    assert not [p for p in datasets.iterdir() if not p.name.startswith(".")]
    assert not [p for p in datasets.rglob("*") if p.name.startswith(".kelly-tmp-")]


KILL_SCRIPT = """
import sys, time
from preprocess.datasets import archives
write = archives._write_member
def slow(root, member, stream):
    write(root, member, stream)
    print("wrote", member.path, flush=True)
    time.sleep(0.2)
archives._write_member = slow
from kelly.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_while_unpacking_leaves_nothing_visible_and_the_rerun_completes(sample, archives, server, tmp_path):
    datasets = tmp_path / "datasets"
    override = write_catalog(tmp_path / "catalog.json", server, archives)
    args = ["datasets", "download", "groove", "--datasets-dir", str(datasets), "--catalog", str(override), "--quiet"]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, *args], stdout=subprocess.PIPE, text=True, env=env)
    try:
        written = 0
        while written < 5:
            line = child.stdout.readline()
            assert line, "the download ended before it was killed"
            written += line.startswith("wrote ")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert not (datasets / "groove").exists()
    assert [p.name.startswith(".kelly-tmp-groove-") for p in datasets.iterdir()].count(True) == 1
    with pytest.raises(KellyError, match="no groove dataset found"):
        locate(datasets, "groove")
    assert kelly("datasets", "download", "groove", "--datasets-dir", datasets, "--catalog", override, "--quiet") == 0
    assert same_tree(datasets / "groove", sample / "groove")
    assert not [p for p in datasets.iterdir() if p.name.startswith(".kelly-tmp-")]


def test_no_network_is_one_clear_line(archives, tmp_path, capsys):
    with socket.socket() as s:                   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    override = tmp_path / "catalog.json"
    override.write_text(json.dumps({"maestro/midi": {"archives": {"maestro-v3.0.0-midi.zip": {
        "url": f"http://127.0.0.1:{port}/maestro-v3.0.0-midi.zip"}}}}))
    assert kelly("datasets", "download", "maestro", "--datasets-dir", tmp_path / "datasets", "--catalog", override,
                 "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "connection refused" in err and f"127.0.0.1:{port}" in err


def test_mirror_fetches_the_official_file_names_from_another_base(archives, server, tmp_path, capsys):
    datasets = tmp_path / "datasets"
    override = write_catalog(tmp_path / "catalog.json", server, archives, urls=False)   # checksums only
    assert kelly("datasets", "download", "groove", "--datasets-dir", datasets, "--catalog", override,
                 "--mirror", f"http://127.0.0.1:{server.port}/mirror/", "--quiet") == 0
    assert [path for path, _ in server.requests] == ["/mirror/groove-v1.0.0-midionly.zip"]
    assert locate(datasets, "groove") == (datasets / "groove", "groove-csv")


@pytest.mark.parametrize("mask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_downloaded_files_get_the_mode_the_umask_gives(archives, server, tmp_path, capsys, mask, file_mode,
                                                       folder_mode):
    datasets = tmp_path / "datasets"
    override = write_catalog(tmp_path / "catalog.json", server, archives)
    old = os.umask(mask)
    try:
        assert kelly("datasets", "download", "groove", "--datasets-dir", datasets, "--catalog", override,
                     "--quiet") == 0
    finally:
        os.umask(old)
    written = list(datasets.rglob("*"))
    assert any(p.suffix == ".mid" for p in written)
    for path in written:
        assert path.stat().st_mode & 0o777 == (folder_mode if path.is_dir() else file_mode), path


def test_chord_progressions_have_no_archive_and_the_message_says_where_to_look(tmp_path, capsys):
    assert kelly("datasets", "download", "harmony", "--datasets-dir", tmp_path / "datasets") == 2
    err = capsys.readouterr().err
    assert "no public archive" in err and "datasets/README.md" in err


def test_list_shows_missing_files_and_a_changed_download_needs_force(sample, archives, server, tmp_path, capsys):
    datasets = tmp_path / "datasets"
    override = write_catalog(tmp_path / "catalog.json", server, archives)
    assert kelly("datasets", "download", "groove", "--datasets-dir", datasets, "--catalog", override, "--quiet") == 0
    gone = sorted((datasets / "groove").rglob("*.mid"))[:2]
    for path in gone:
        path.unlink()
    capsys.readouterr()
    assert kelly("datasets", "list", "--datasets-dir", datasets, "--catalog", override) == 0
    listing = capsys.readouterr().out
    first = gone[0].relative_to(datasets / "groove").as_posix()
    assert f"2 listed in info.csv are missing; first: {first}" in listing
    assert "changed since it was downloaded" in listing and "sha256 published" in listing
    assert kelly("datasets", "download", "groove", "--datasets-dir", datasets, "--catalog", override, "--quiet") == 2
    assert "--force" in capsys.readouterr().err
    assert kelly("datasets", "download", "groove", "--datasets-dir", datasets, "--catalog", override, "--force",
                 "--quiet") == 0
    assert same_tree(datasets / "groove", sample / "groove")


def test_the_audio_subset_replaces_the_midi_only_one_and_then_stands_for_it(sample, archives, server, tmp_path,
                                                                           capsys):
    datasets = tmp_path / "datasets"
    full = zip_folder(sample / "maestro-v3.0.0", "maestro-v3.0.0", extra={"maestro-v3.0.0/2018/x.wav": b"RIFF"})
    server.files["maestro-v3.0.0.zip"] = full
    override = write_catalog(tmp_path / "catalog.json", server, archives)
    table = json.loads(override.read_text())
    table["maestro/audio"] = {"extracted_size": 2 * len(full), "archives": {"maestro-v3.0.0.zip": {
        "url": server.url("maestro-v3.0.0.zip"), "size": len(full), "sha256": hashlib.sha256(full).hexdigest()}}}
    override.write_text(json.dumps(table))
    assert kelly("datasets", "download", "maestro", "--datasets-dir", datasets, "--catalog", override, "--quiet") == 0
    assert kelly("datasets", "download", "maestro", "--subset", "audio", "--datasets-dir", datasets,
                 "--catalog", override, "--quiet") == 0
    assert (datasets / "maestro-v3.0.0" / "2018" / "x.wav").read_bytes() == b"RIFF"
    capsys.readouterr()
    assert kelly("datasets", "download", "maestro", "--datasets-dir", datasets, "--catalog", override, "--quiet") == 0
    assert "present, verified (as part of maestro/audio)" in capsys.readouterr().out
    assert not [p for p in datasets.iterdir() if p.name.startswith((".kelly-tmp-", ".kelly-old-"))]


def test_disk_space_is_checked_before_downloading(archives, server, tmp_path, capsys):
    override = write_catalog(tmp_path / "catalog.json", server, archives)
    table = json.loads(override.read_text())
    table["lakh/lmd_full"]["extracted_size"] = 2**60
    override.write_text(json.dumps(table))
    assert kelly("datasets", "download", "lakh", "--datasets-dir", tmp_path / "datasets", "--catalog", override,
                 "--quiet") == 2
    err = capsys.readouterr().err
    assert "not enough disk space for lakh/lmd_full" in err and len(err.strip().splitlines()) == 1
    assert server.requests == []


def test_one_download_at_a_time_per_datasets_folder(archives, server, tmp_path, capsys):
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    override = write_catalog(tmp_path / "catalog.json", server, archives)
    with DownloadLock(datasets):
        assert kelly("datasets", "download", "groove", "--datasets-dir", datasets, "--catalog", override,
                     "--quiet") == 2
    assert "another `kelly datasets download` is running" in capsys.readouterr().err and server.requests == []


def test_the_table_names_official_addresses_and_every_override_is_checked(tmp_path):
    table = catalog.sources()
    urls = [a.url for s in table.values() for sub in s.subsets for a in sub.archives]
    assert all(u.startswith(("https://storage.googleapis.com/magentadata/", "http://hog.ee.columbia.edu/craffel/lmd/",
                             "https://cvml.unige.ch/databases/DEAM/", "https://zenodo.org/records/5090631/"))
               for u in urls)
    assert all(u.rsplit("/", 1)[1] == a.file_name for s in table.values() for sub in s.subsets for a in sub.archives
               for u in [a.url])
    assert [sub.key for sub in catalog.select(table, ["maestro", "lakh"], None)] == ["maestro/midi", "lakh/lmd_full"]
    assert [sub.key for sub in catalog.select(table, ["maestro", "groove"], ["audio"])] == ["maestro/audio",
                                                                                          "groove/audio"]
    with pytest.raises(KellyError, match="no such subset"):
        catalog.select(table, ["deam"], ["lmd_full"])
    with pytest.raises(KellyError, match="unknown subset 'maestro/flac'"):
        catalog.sources({"maestro/flac": {}})
    with pytest.raises(KellyError, match="unknown field"):
        catalog.sources({"maestro/midi": {"archives": {"maestro-v3.0.0-midi.zip": {"sha1": "x"}}}})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(KellyError, match="bad.json: not a JSON catalog override"):
        catalog.read_overrides(bad)


# --- EMOPIA, the catalog's fields, bad destinations ---------------------------------------------------

def test_emopia_comes_from_its_zenodo_record_with_its_checksum_and_licence(sample, tmp_path, capsys):
    table = catalog.sources()
    (subset,) = table["emopia"].subsets
    (archive,) = subset.archives
    assert archive.url == "https://zenodo.org/records/5090631/files/EMOPIA_1.0.zip"
    assert archive.md5 == "8f760ddcc014d144f1e2c5451bf003ac" and archive.member_root == "EMOPIA_1.0"
    assert table["emopia"].licence.startswith("CC BY-NC-SA 4.0") and subset.dest == "emopia"

    # an archive laid out as Zenodo's: EMOPIA_1.0/midis/Q{n}_{youtube id}_{clip}.mid and label.csv
    pianos = sorted((sample / "maestro-v3.0.0").rglob("*.midi"))[:4]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("EMOPIA_1.0/", b"")
        zf.writestr("EMOPIA_1.0/midis/", b"")
        names = [f"Q{q}_0vLPYiPN7q{q}_0.mid" for q in range(1, len(pianos) + 1)]
        for name, path in zip(names, pianos):
            zf.write(path, f"EMOPIA_1.0/midis/{name}")
        zf.writestr("EMOPIA_1.0/label.csv", "ID,4Q,annotator\n" + "".join(f"{n[:-4]},{n[1]},a\n" for n in names))
    data = buffer.getvalue()
    server = ArchiveServer({"EMOPIA_1.0.zip": data})
    try:
        override = tmp_path / "catalog.json"
        override.write_text(json.dumps({"emopia/midi": {"archives": {"EMOPIA_1.0.zip": {
            "url": server.url("EMOPIA_1.0.zip"), "md5": hashlib.md5(data).hexdigest()}}}}))
        datasets = tmp_path / "datasets"
        assert kelly("datasets", "download", "emopia", "--datasets-dir", datasets, "--catalog", override,
                     "--quiet") == 0
        out = capsys.readouterr().out
        assert "licence: CC BY-NC-SA 4.0" in out and "md5 as published" in out
        assert sorted(p.name for p in (datasets / "emopia" / "midis").iterdir()) == sorted(names)
        assert (datasets / "emopia" / "label.csv").read_text().startswith("ID,4Q,annotator\n")
        assert kelly("datasets", "download", "emopia", "--datasets-dir", datasets, "--catalog", override,
                     "--quiet") == 0
        assert "present, verified" in capsys.readouterr().out and len(server.requests) == 1
        assert kelly("datasets", "list", "--datasets-dir", datasets, "--catalog", override) == 0
        listing = capsys.readouterr().out
        assert "emopia: EMOPIA 1.0" in listing and "EMOPIA_1.0.zip (5.2 MiB, md5 published)" in listing
        assert f"-> {datasets / 'emopia'}/ (emopia-release): present, verified" in listing
    finally:
        server.close()


def test_a_catalog_subset_names_a_layout_its_reader_knows():
    from preprocess.datasets import READERS

    for source in catalog.sources().values():
        for subset in source.subsets:
            if subset.source in READERS:
                assert subset.layout in READERS[subset.source].LAYOUTS, subset.key


@pytest.mark.parametrize("entry, field, expected", [
    ({"archives": {"groove-v1.0.0-midionly.zip": {"size": "big", "url": 5}}}, '"size"', "a whole number of bytes"),
    ({"archives": {"groove-v1.0.0-midionly.zip": {"url": 5}}}, '"url"', "a text address starting with http://"),
    ({"archives": {"groove-v1.0.0-midionly.zip": {"url": "groove.zip"}}}, '"url"', "found 'groove.zip'"),
    ({"archives": {"groove-v1.0.0-midionly.zip": {"size": -1}}}, '"size"', ">= 0"),
    ({"archives": {"groove-v1.0.0-midionly.zip": {"size": True}}}, '"size"', "a whole number of bytes"),
    ({"archives": {"groove-v1.0.0-midionly.zip": {"md5": "xyz"}}}, '"md5"', "32 hexadecimal digits"),
    ({"archives": {"groove-v1.0.0-midionly.zip": {"sha256": 12}}}, '"sha256"', "64 hexadecimal digits"),
    ({"archives": {"groove-v1.0.0-midionly.zip": "http://x/y.zip"}}, "groove-v1.0.0-midionly.zip", "an object"),
    ({"archives": ["groove-v1.0.0-midionly.zip"]}, '"archives"', "an object {file name"),
    ({"extracted_size": "81MB"}, '"extracted_size"', "a whole number of bytes"),
])
def test_every_field_of_a_catalog_file_is_checked_with_one_line(tmp_path, kelly_cli, entry, field, expected):
    override = tmp_path / "catalog.json"
    override.write_text(json.dumps({"groove/midi": entry}))
    for command in (("datasets", "download", "groove", "--datasets-dir", tmp_path / "datasets", "--quiet"),
                    ("datasets", "list", "--datasets-dir", tmp_path / "datasets")):
        code, out, err = kelly_cli(*command, "--catalog", override)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert str(override) in err and "'groove/midi'" in err and field in err and expected in err, err
    assert not (tmp_path / "datasets").exists()


def test_a_catalog_path_that_is_a_folder_is_one_line(tmp_path, kelly_cli):
    code, _, err = kelly_cli("datasets", "list", "--catalog", tmp_path)
    assert code == 2 and "cannot read the catalog override" in err and len(err.strip().splitlines()) == 1


def test_a_datasets_folder_that_cannot_be_made_is_one_line(tmp_path, kelly_cli, read_only):
    blocker = tmp_path / "f"
    blocker.write_text("a file where a folder should be\n")
    code, _, err = kelly_cli("datasets", "download", "groove", "--datasets-dir", blocker / "ds", "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{blocker / 'ds'}: cannot be created: {blocker} is a file, not a folder (--datasets-dir)" in err
    code, _, err = kelly_cli("datasets", "list", "--datasets-dir", blocker)
    assert code == 2 and f"{blocker}: is a file, not a folder (--datasets-dir)" in err
    code, _, err = kelly_cli("datasets", "list", "--datasets-dir", blocker / "ds")
    assert code == 2 and f"{blocker / 'ds'}: cannot exist: {blocker} is a file, not a folder" in err
    locked = read_only()
    code, _, err = kelly_cli("datasets", "download", "groove", "--datasets-dir", locked / "ds", "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(locked) in err
    assert "Read-only file system" in err or "Permission denied" in err
