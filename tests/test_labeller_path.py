"""The EmotionLabeller's whole path on small data, as the commands run it: `kelly preprocess emopia`,
`kelly train --models labeller`, `kelly evaluate`, `kelly label` on files and folders (good, broken,
empty), bad checkpoints refused, and `kelly label --cache-dir`: the cache's unannotated MIDI items
take the labeller's labels, human labels never change, and the label source reaches the export."""
from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
import torch

from preprocess.features import spec
from preprocess.sample_data.emopia import write_emopia
from tests.constructed_music import key_of, write_song


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Datasets (EMOPIA-style clips; three Lakh songs, one with a human label), their cache, and a
    labeller trained on it for a few epochs."""
    from kelly.cli import main

    root = tmp_path_factory.mktemp("labeller")
    datasets, cache, output = root / "datasets", root / "cache", root / "run"
    write_emopia(datasets, 0, n_songs=10)
    lakh = datasets / "lakh_midi"
    lakh.mkdir()
    for n, (chords, tonic, minor) in enumerate([("C F G C Am F G C", 0, False), ("Am Dm Em Am F Dm E Am", 9, True),
                                                 ("G C D G Em C D G", 7, False)]):
        write_song(lakh / f"song{n}.mid", key_of(chords, tonic, minor) * 2, seed=n)
    (lakh / "emotion_labels.json").write_text(json.dumps({"song1.mid": {"valence": -0.75, "arousal": 0.5}}))
    assert main(["preprocess", "all", "--datasets-dir", str(datasets), "--cache-dir", str(cache),
                 "--workers", "1"]) == 0
    assert main(["train", "--cache-dir", str(cache), "--models", "labeller", "-o", str(output), "-e", "3",
                 "--no-progress", "--no-plots"]) == 0
    return {"root": root, "datasets": datasets, "cache": cache, "output": output, "checkpoints": output / "checkpoints"}


def test_the_labeller_trains_through_the_loop_on_held_out_songs(trained):
    from train.labeller_checkpoint import load_labeller
    from train.labeller_data import from_cache, song_of

    best = trained["checkpoints"] / "emotionlabeller_best.pt"
    assert best.is_file() and (trained["checkpoints"] / "emotionlabeller_latest.pt").is_file()
    assert (trained["output"] / "history" / "emotionlabeller_history.json").is_file()
    model, checkpoint = load_labeller(best)
    assert checkpoint["network"] == "labeller" and checkpoint["labeller_version"] == spec.LABELLER_VERSION
    assert model(torch.zeros(2, 30, spec.LABELLER_INPUTS)).shape == (2, 2)
    # the valence is the trees' (fitted after the network, on the official training clips), the arousal the network's
    from train.labeller_trees import TreeValence, window_summary

    assert isinstance(model, TreeValence) and checkpoint["valence_trees"]
    frames = torch.as_tensor(from_cache(trained["cache"]).clips[0][None])
    with torch.no_grad():
        values = model(frames)
    p = model.trees.predict_proba(window_summary(frames))[0, 1]
    assert float(values[0, 0]) == pytest.approx(2.0 * p - 1.0, abs=1e-6)
    with torch.no_grad():
        assert float(values[0, 1]) == pytest.approx(float(model.network(frames)[0, 1]), abs=1e-6)
    data = from_cache(trained["cache"])
    songs = lambda side: {song_of(i) for i, s in zip(data.item_ids, data.side) if s == side}  # noqa: E731
    assert songs(0) and songs(1) and not songs(0) & songs(1)              # early stopping on other songs
    assert not (data.official[data.side >= 0] != 0).any()                  # official val/test never trained on
    assert data.counts["official_validation"] > 0 and data.counts["official_test"] > 0


def test_kelly_evaluate_reports_the_labellers_held_out_accuracy(trained, kelly_cli, tmp_path):
    code, out, _ = kelly_cli("evaluate", "--checkpoint-dir", trained["checkpoints"], "--cache-dir", trained["cache"],
                             "-o", tmp_path / "evaluation.json")
    assert code == 0 and "EmotionLabeller" in out
    result = json.loads((tmp_path / "evaluation.json").read_text())["networks"]["labeller"]
    assert result["split"] == "test" and result["rows"] > 0
    assert set(result["metrics"]) >= {"quadrant_accuracy", "valence_accuracy", "arousal_accuracy",
                                      "valence_balanced_accuracy", "arousal_balanced_accuracy", "confusion"}
    assert sum(sum(row.values()) for row in result["metrics"]["confusion"].values()) == result["rows"]


def test_kelly_label_labels_files_and_folders_and_skips_what_it_cannot_read(trained, kelly_cli, tmp_path):
    music = tmp_path / "music"
    nested = music / "deeper"
    nested.mkdir(parents=True)
    clips = sorted((trained["datasets"] / "emopia" / "midis").glob("*.mid"))[:2]
    shutil.copy(clips[0], nested / "a clip.mid")
    (music / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")           # truncated header
    (music / "notes.txt").write_text("not music")                                   # not a MIDI name: ignored
    song = trained["datasets"] / "lakh_midi" / "song0.mid"
    output = tmp_path / "labels.csv"
    code, out, err = kelly_cli("label", "--checkpoint-dir", trained["output"], music, song, clips[1],
                               "--output", output, "--no-progress", "--workers", "1")
    assert code == 0 and out == ""
    rows = list(csv.DictReader(io.StringIO(output.read_text())))
    assert [r["path"] for r in rows] == [str(nested / "a clip.mid"), str(song), str(clips[1])]
    for row in rows:
        v, a = float(row["valence"]), float(row["arousal"])
        assert -1 <= v <= 1 and -1 <= a <= 1
        assert row["quadrant"] == {(True, True): "Q1", (False, True): "Q2", (False, False): "Q3",
                                   (True, False): "Q4"}[(v >= 0, a >= 0)]
    assert f"skipped {music / 'broken.mid'}: midi:" in err
    assert "labelled 3 file(s), skipped 1 that could not be read" in err

    code, out, err = kelly_cli("label", "--checkpoint-dir", trained["checkpoints"], clips[0], "--no-progress")
    assert code == 0 and out.splitlines()[0] == "path,valence,arousal,quadrant" and len(out.splitlines()) == 2


def test_kelly_label_refuses_an_empty_folder_and_writes_nothing(trained, kelly_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out, err = kelly_cli("label", "--checkpoint-dir", trained["checkpoints"], tmp_path / "empty",
                               "--output", tmp_path / "labels.csv")
    assert code != 0 and "no .mid or .midi file in this folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "labels.csv").exists()


def test_kelly_label_refuses_what_is_not_a_labeller_of_these_frames(trained, kelly_cli, tmp_path):
    clip = next((trained["datasets"] / "emopia" / "midis").glob("*.mid"))
    state = torch.load(trained["checkpoints"] / "emotionlabeller_best.pt", weights_only=True)
    cases = {
        "none": None,
        "damaged": b"not a checkpoint",
        "other network": dict(state, network="dynamics", network_name="DynamicsEngine"),
        "other frames": dict(state, labeller_version="kelly-labeller-0"),
    }
    expected = {"none": "no EmotionLabeller checkpoint", "damaged": "not a readable checkpoint",
                "other network": "a checkpoint of DynamicsEngine, not of the EmotionLabeller",
                "other frames": "a labeller trained on frames 'kelly-labeller-0'"}
    for name, content in cases.items():
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        if isinstance(content, bytes):
            (folder / "emotionlabeller_best.pt").write_bytes(content)
        elif content is not None:
            torch.save(content, folder / "emotionlabeller_best.pt")
        code, _, err = kelly_cli("label", "--checkpoint-dir", folder, clip, "--output", folder / "labels.csv")
        assert code != 0 and expected[name] in err and len(err.strip().splitlines()) == 1, (name, err)
        assert not (folder / "labels.csv").exists()


def test_the_cache_takes_the_labellers_labels_and_human_labels_win(trained, kelly_cli):
    from preprocess.cache import reader
    from preprocess.cache.labels import read_labels
    from preprocess.features.embedding import embed
    from train import data as train_data
    from train.labeller_checkpoint import labeller_id

    cache = trained["cache"]
    before = reader.load_network(cache, "melody")
    identity = reader.cache_identity(cache)
    code, out, _ = kelly_cli("label", "--checkpoint-dir", trained["checkpoints"], "--cache-dir", cache,
                             "--no-progress", "--workers", "1", "--labeller-axes", "valence")
    assert code == 0 and "2 items labelled by the labeller" in out
    source = f"labeller:{labeller_id(trained['checkpoints'] / 'emotionlabeller_best.pt')}"
    labels = read_labels(cache)
    assert labels.label_source == source and reader.cache_identity(cache) != identity
    # valence from the labeller as asked, arousal kept from the proxy; the held-out figures said
    assert labels.axes == {"valence": "labeller", "arousal": "proxy"}
    assert labels.agreement["clips"] > 0 and "balanced accuracy labeller" in out
    name = labels.source_name()

    after = reader.load_network(cache, "melody")
    assert np.array_equal(before.row_inputs, after.row_inputs) and np.array_equal(before.stored_targets,
                                                                                  after.stored_targets)
    table = after.items
    names = [table.label_source_name(c) for c in table.label_source]
    human = table.item_ids.index(next(i for i, s in zip(before.items.item_ids, before.items.label_source) if s == 0))
    assert names[human] == "annotated" and (table.valence[human], table.arousal[human]) == (-0.75, 0.5)
    assert np.array_equal(table.embedding[human], before.items.embedding[human])
    labelled = [i for i, n in enumerate(names) if n == name]
    assert len(labelled) == 2
    for i in labelled:
        assert np.allclose(table.embedding[i], embed(table.valence[i], table.arousal[i]), atol=1e-6)
        for axis, values, old in (("valence", table.valence, before.items.valence),
                                  ("arousal", table.arousal, before.items.arousal)):
            j = before.items.item_ids.index(table.item_ids[i])
            if labels.axes[axis] == "proxy":          # the proxy's value kept on that axis
                assert values[i] == old[j]
    counts = train_data.from_cache(cache, "melody", validation_split=0.5).counts["label_sources"]
    assert counts == {"annotated": 1, name: 2}


def test_an_axis_takes_the_labellers_values_only_where_it_is_closer_to_listeners():
    from kelly.label_choice import compare
    from preprocess.cache.labels import LabelTable

    rng = np.random.default_rng(0)
    truth = np.where(rng.random((200, 2)) < 0.5, -1.0, 1.0)
    def guess(accuracy):        # signs right on the first `accuracy` share of the clips
        out = truth.copy()
        wrong = np.arange(len(truth)) >= accuracy * len(truth)
        out[wrong] *= -1
        return out * 0.5
    labeller = np.stack([guess(0.80)[:, 0], guess(0.80)[:, 1]], axis=1)
    proxy = np.stack([guess(0.70)[:, 0], guess(0.92)[:, 1]], axis=1)
    choice, figures = compare(labeller, proxy, truth)
    assert choice == {"valence": "labeller", "arousal": "proxy"}
    assert figures["valence"]["only_labeller_right"] == 20 and figures["valence"]["only_proxy_right"] == 0
    # as many clips won as lost (or none told apart): the proxy, which every item has, stays
    assert compare(guess(0.70), guess(0.70), truth)[0] == {"valence": "proxy", "arousal": "proxy"}
    swapped = guess(0.70)
    swapped[:2] *= -1                          # two clips lost at the start, two won at the end
    swapped[-2:] *= -1
    assert compare(swapped, guess(0.70), truth)[0] == {"valence": "proxy", "arousal": "proxy"}
    table = LabelTable(label_source="labeller:abc", labeller_version="v", checkpoint="c")
    assert table.source_name() == "labeller:abc"
    table.axes = choice
    assert table.source_name() == "labeller:abc (valence; arousal: proxy)"


def test_the_label_source_reaches_the_export_metadata(trained, kelly_cli):
    from export.metadata import build_metadata
    from train.checkpoints import load_network

    cache, output = trained["cache"], trained["output"]
    if not (cache / "labels.json").is_file():
        kelly_cli("label", "--checkpoint-dir", trained["checkpoints"], "--cache-dir", cache, "--no-progress")
    code, _, err = kelly_cli("train", "--cache-dir", cache, "--models", "melody", "-o", output, "-e", "1",
                             "--max-steps", "2", "--no-progress", "--no-plots", "--validation-split", "0.5")
    assert code == 0, err
    model, checkpoint = load_network(output / "checkpoints" / "melodytransformer_best.pt")
    items = build_metadata(model, checkpoint)["label_sources"]["items"]
    assert items["annotated"] == 1 and sum(n for name, n in items.items() if name.startswith("labeller:")) == 2


def test_without_emopia_the_pipeline_falls_back_to_the_proxies_and_says_so(trained, tmp_path, capsys):
    from kelly.pipeline import labels_stage
    from preprocess.cache.labels import LabelTable, labels_path, write_labels
    from preprocess.job import run_preprocess

    cache = tmp_path / "cache"
    run_preprocess(["lakh"], datasets_dir=trained["datasets"], cache_dir=cache, workers=1, progress=False)
    write_labels(cache, LabelTable("labeller:000000000000", spec.LABELLER_VERSION, "old.pt"))   # an earlier run's
    result = labels_stage(cache, tmp_path / "run", progress=False)
    out = capsys.readouterr().out
    assert result["fallback"] == "no EMOPIA clips in the cache" and not result["labeller_trained"] and result["ok"]
    assert "the networks train on the proxy labels" in out and "removed the labels table" in out
    assert not labels_path(cache).exists()


def test_a_resumed_labeller_ends_where_an_uninterrupted_one_does(trained, kelly_cli, tmp_path):
    common = ("--cache-dir", trained["cache"], "--models", "labeller", "--no-progress", "--no-plots", "--no-history")
    assert kelly_cli("train", *common, "-o", tmp_path / "whole", "-e", "2")[0] == 0
    assert kelly_cli("train", *common, "-o", tmp_path / "split", "-e", "1")[0] == 0
    assert kelly_cli("train", *common, "-o", tmp_path / "split", "-e", "2", "--resume", "labeller")[0] == 0
    whole, split = (torch.load(tmp_path / run / "checkpoints" / "emotionlabeller_latest.pt", weights_only=True)
                    for run in ("whole", "split"))
    assert whole["epoch"] == split["epoch"] == 2
    for name, value in whole["model_state"].items():          # the weights and their moving averages
        assert torch.equal(value, split["model_state"][name]), name
