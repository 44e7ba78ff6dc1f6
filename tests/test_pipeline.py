"""The README's main command, end to end: `kelly pipeline --sample` on the embedded sample data.

It runs once per test session, as a user runs it (the `kelly` command in a fresh process), and
the tests read what it left: every network beats its trivial baseline on held-out data, and the
exported files pass `kelly verify --check-specs` against their checkpoints.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from preprocess.features import spec

NETWORK_FILES = ("emotionrecognizer.json", "melodytransformer.json", "harmonypredictor.json",
                 "dynamicsengine.json", "groovepredictor.json")


def kelly(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kelly", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=900)


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("pipeline") / "run"
    done = kelly("pipeline", "--sample", "--output", str(output), "--no-progress")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return output, done


def test_pipeline_writes_every_stage_output(pipeline_run):
    output, done = pipeline_run
    for name in NETWORK_FILES:
        assert (output / "models" / name).is_file(), name
    for key in spec.NETWORKS:
        assert (output / "checkpoints" / f"{key}_best.pt").is_file()
        assert (output / "checkpoints" / f"{key}_latest.pt").is_file()
        assert (output / "history" / f"{key}_history.json").is_file()
        assert (output / "plots" / f"{key}_loss.png").stat().st_size > 1000
    assert (output / "cache" / "manifest.sqlite").is_file()
    # the deliberately broken sample files are recorded failures, not a crash of the run
    assert "failures this run" in done.stdout and "truncated" not in done.stderr.lower()
    assert "every one verified" in done.stdout


@pytest.mark.parametrize("key", list(spec.NETWORKS))
def test_every_network_beats_its_baseline_on_held_out_data(pipeline_run, key):
    output, _ = pipeline_run
    result = json.loads((output / "evaluation.json").read_text())["networks"][key]
    assert result["split"] in ("validation", "test") and result["rows"] > 0
    primary = result["primary"]
    mine, base = result["metrics"][primary], result["baseline"][primary]
    better = mine > base if primary in ("accuracy", "top1_accuracy") else mine < base
    assert result["beats_baseline"] and better, (key, primary, mine, base)


def test_exported_files_pass_verify_check_specs(pipeline_run):
    output, _ = pipeline_run
    files = [str(output / "models" / name) for name in NETWORK_FILES]
    done = kelly("verify", *files, "--check-specs", "--checkpoint-dir", str(output / "checkpoints"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 of 5 file(s) passed" in done.stdout


def test_verify_rejects_a_broken_export(pipeline_run, tmp_path):
    output, _ = pipeline_run
    document = json.loads((output / "models" / "dynamicsengine.json").read_text())
    document["layers"][0]["activation"] = "linear"          # a name RTNeural does not know
    broken = tmp_path / "dynamicsengine.json"
    broken.write_text(json.dumps(document))
    done = kelly("verify", str(broken), "--check-specs")
    assert done.returncode != 0
    assert "linear" in done.stdout + done.stderr
