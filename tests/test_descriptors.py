"""The emotion-response descriptors on constructed music, and the response report on known cases."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from preprocess.features import spec
from preprocess.features.chords import chord_class
from preprocess.features.dynamics import dynamics_windows
from preprocess.features.embedding import embed
from preprocess.features.groove import groove_windows
from preprocess.features.melody import melody_targets, melody_windows
from preprocess.features.midi import load_notes
from preprocess.sample_data.midi_files import MidiTrack, midi_bytes
from train import descriptors, response
from train.data import ItemTable, Rows

TPQ = 480
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)


def midi_notes(tmp_path, name, notes, *, drums=False, bpm=120.0):
    """NoteArrays of one track; notes as (tick, ticks, pitch, velocity)."""
    path = tmp_path / name
    path.write_bytes(midi_bytes([MidiTrack("t", 0, drums, list(notes))], tpq=TPQ, tempos=[(0, bpm)]))
    return load_notes(path)


def scale_notes(tonic: int, steps, octave_start: int = 60):
    """Up and down one octave in eighths from the tonic, the top and last tonic held a quarter."""
    up = [octave_start + tonic + s for s in steps] + [octave_start + tonic + 12]
    line = up + up[-2::-1]
    out, tick = [], 0
    for i, p in enumerate(line):
        length = TPQ if i in (len(up) - 1, len(line) - 1) else TPQ // 2
        out.append((tick, length, p, 80))
        tick += length
    return out


@pytest.mark.parametrize("mode,steps,sign", [("major", MAJOR, 1), ("minor", MINOR, -1)])
def test_mode_score_of_a_scale_in_every_transposition(tmp_path, mode, steps, sign):
    for tonic in range(12):
        notes = midi_notes(tmp_path, f"{mode}{tonic}.mid", scale_notes(tonic, steps))
        for rows in (melody_windows(notes)[0], melody_targets(notes)[0]):
            score = descriptors.mode_score(rows.mean(axis=0))
            assert sign * score[0] > 0.1, (mode, tonic, score)


def test_melody_register_and_activity():
    low, high = np.zeros(128), np.zeros(128)
    low[[48, 52, 55]] = 1.0
    high[[72, 76]] = 0.5
    assert descriptors.mean_pitch(np.stack([low, high])).tolist() == pytest.approx([155 / 3, 74.0])
    assert descriptors.total_activity(np.stack([low, high])).tolist() == [3.0, 1.0]
    assert np.isnan(descriptors.mean_pitch(np.zeros(128))[0]) and descriptors.mode_score(np.zeros(128))[0] == 0.0


def test_loud_staccato_against_soft_legato(tmp_path):
    """Eighth notes, one passage loud and detached (a third of their length sounding), the other
    soft and tied to the next note."""
    staccato = [(i * TPQ // 2, TPQ // 6, 60 + (i % 5), 112) for i in range(32)]
    legato = [(i * TPQ // 2, TPQ // 2, 60 + (i % 5), 40) for i in range(32)]
    values = {}
    for name, notes in (("staccato", staccato), ("legato", legato)):
        targets, _ = dynamics_windows(midi_notes(tmp_path, f"{name}.mid", notes))
        values[name] = descriptors.describe("dynamics", targets.mean(axis=0))
    assert values["staccato"]["velocity_mean"][0] > values["legato"]["velocity_mean"][0] + 0.4
    assert values["staccato"]["articulation"][0] < values["legato"]["articulation"][0] - 0.5
    assert values["staccato"]["note_density"][0] == pytest.approx(values["legato"]["note_density"][0])


def test_harmony_shares_of_minor_and_tense_chords():
    symbols = ["C", "Am", "G7", "Bdim", "Dm7", "Fmaj7", "N"]
    shares = descriptors.describe("harmony", descriptors.one_hot([chord_class(s) for s in symbols]))
    assert shares["minor_share"].tolist() == [0, 1, 0, 1, 1, 0, 0]
    assert shares["tense_share"].tolist() == [0, 0, 1, 1, 0, 0, 0]
    mixed = descriptors.one_hot([chord_class("Am")]) * 0.25 + descriptors.one_hot([chord_class("G7")]) * 0.75
    assert descriptors.minor_share(mixed)[0] == pytest.approx(0.25)


def test_groove_descriptors_of_busy_loud_syncopated_against_sparse_soft_bars(tmp_path):
    """Sixteenth hats with accents off the beat, loud, against quarter-note kick and snare, soft."""
    busy = [(i * TPQ // 4, 60, 42, 110) for i in range(64)] + [(i * TPQ // 4, 60, 38, 120) for i in range(64) if i % 4 in (1, 3)]
    sparse = [(i * TPQ, 60, 36 if i % 2 == 0 else 38, 50) for i in range(16)]
    values = {}
    for name, hits in (("busy", busy), ("sparse", sparse)):
        targets, _ = groove_windows(midi_notes(tmp_path, f"{name}.mid", hits, drums=True))
        values[name] = {k: v[0] for k, v in descriptors.describe("groove", targets.mean(axis=0)).items()}
    assert values["busy"]["hit_density"] > values["sparse"]["hit_density"] + 0.5
    assert values["busy"]["mean_velocity"] > values["sparse"]["mean_velocity"] + 0.3
    assert values["sparse"]["mean_velocity"] == pytest.approx(50 / 127, abs=0.02)
    assert values["busy"]["syncopation"] > values["sparse"]["syncopation"] + 0.5


def test_grid_and_cells():
    assert response.grid_centres(7).tolist() == pytest.approx([-6 / 7, -4 / 7, -2 / 7, 0, 2 / 7, 4 / 7, 6 / 7])
    assert response.grid_cell([-1.0, -0.99, 0.0, 0.3, 1.0, 1.5]).tolist() == [0, 0, 3, 4, 6, 6]
    valence, arousal, embedding = response.grid_embeddings(7)
    assert embedding.shape == (49, 64) and valence[1] > valence[0] and arousal[7] > arousal[0]
    with pytest.raises(ValueError, match="at least 7"):
        response.emotion_response(torch.nn.Linear(1, 1), None, grid_size=5)


class Oracle(torch.nn.Module):
    """A stand-in DynamicsEngine whose outputs are a known function of (valence, arousal), read back
    from the first 32 embedding values (e[0] = sin(pi/2 v), e[16] = sin(pi/2 a))."""

    key, name, is_recurrent, output_size = "dynamics", "DynamicsEngine", False, 16

    def __init__(self, function):
        super().__init__()
        self.function = function
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        v = torch.asin(x[:, 0].clamp(-1, 1)) * 2 / np.pi
        a = torch.asin(x[:, 16].clamp(-1, 1)) * 2 / np.pi
        return self.function(v, a)


def dynamics_rows(n_items=60, per_item=5, seed=0) -> Rows:
    """Items whose velocity follows arousal and note density valence; articulation is noise."""
    rng = np.random.default_rng(seed)
    v, a = rng.uniform(-1, 1, n_items), rng.uniform(-1, 1, n_items)
    targets = np.full((n_items * per_item, 16), 0.5, np.float32)
    item = np.repeat(np.arange(n_items), per_item)
    col = {name: i for i, name in enumerate(spec.DYNAMICS_NAMES)}
    targets[:, col["velocity_mean"]] = 0.5 + 0.3 * a[item] + rng.normal(0, 0.03, item.size)
    targets[:, col["note_density"]] = 0.4 + 0.2 * v[item] + rng.normal(0, 0.03, item.size)
    targets[:, col["articulation"]] = rng.uniform(0.3, 0.9, n_items)[item]
    items = ItemTable.of(embed(v, a), split=np.full(n_items, 2), valence=v, arousal=a)
    return Rows("dynamics", item=item, window=np.tile(np.arange(per_item), n_items).astype(np.int32),
                row_inputs=np.zeros((item.size, 0), np.float32), stored_targets=targets, items=items)


def _truth(v, a):
    out = torch.full((len(v), 16), 0.5)
    out[:, spec.DYNAMICS_NAMES.index("velocity_mean")] = 0.5 + 0.3 * a
    out[:, spec.DYNAMICS_NAMES.index("note_density")] = 0.4 + 0.2 * v
    return out


def test_response_follows_a_network_that_has_the_datas_relation_and_not_one_that_ignores_it(tmp_path):
    rows = dynamics_rows()
    good = response.emotion_response(Oracle(_truth), rows, train_rows=dynamics_rows(n_items=120, seed=1))
    entries = good["descriptors"]
    assert good["training_items"] == 120
    assert entries["velocity_mean"]["training_data_fidelity"] > 0.9                 # other items, the same relation
    assert abs(entries["articulation"]["training_data_fidelity"]) < 0.5            # noise does not repeat
    assert good["held_out_items"] == 60 and good["cells_with_data"] > 25
    assert entries["velocity_mean"]["tied"] and entries["note_density"]["tied"] and not entries["articulation"]["tied"]
    assert entries["velocity_mean"]["data_arousal_r"] > 0.9 and entries["note_density"]["data_valence_r"] > 0.9
    for name in ("velocity_mean", "note_density"):
        assert entries[name]["followed"] and entries[name]["fidelity"] > 0.9
        assert 0.8 < entries[name]["range_ratio"] < 1.2
    assert entries["velocity_mean"]["model_slopes"]["arousal"] == pytest.approx(0.3, abs=0.03)
    assert entries["velocity_mean"]["slope_signs_agree"]["arousal"] is True
    assert entries["articulation"]["followed"] is None and good["all_tied_followed"]
    assert np.array(entries["velocity_mean"]["model_grid"]).shape == (7, 7)

    flat = response.emotion_response(Oracle(lambda v, a: torch.full((len(v), 16), 0.5)), rows)
    assert not flat["all_tied_followed"] and flat["descriptors"]["velocity_mean"]["followed"] is False
    assert flat["descriptors"]["velocity_mean"]["range_ratio"] == pytest.approx(0.0, abs=1e-9)

    inverted = response.emotion_response(Oracle(lambda v, a: _truth(-v, -a)), rows)
    assert inverted["descriptors"]["velocity_mean"]["fidelity"] < -0.9
    assert inverted["descriptors"]["velocity_mean"]["slope_signs_agree"]["arousal"] is False

    path = response.plot_response(good, "DynamicsEngine", tmp_path / "plots" / "dynamics_emotion_response.png")
    assert path.stat().st_size > 10_000 and not list(path.parent.glob(".*"))
    table = response.summary({"dynamics": {"emotion_response": good}})
    assert table["tied"] == 2 and table["followed"] == 2 and table["all_tied_followed"]
    json.dumps(table)
    assert "velocity_mean" in response.format_summary(table)


@pytest.mark.parametrize("key", ["melody", "harmony", "groove"])
def test_response_runs_every_conditioned_network(key):
    from train.models import build

    torch.manual_seed(0)
    model = build(key).eval()
    outputs = response.model_outputs(model, response.grid_embeddings(7)[2])
    assert outputs.shape == (49, spec.NETWORKS[key][1]) and np.isfinite(outputs).all()
    if key == "harmony":
        assert outputs.sum(axis=1) == pytest.approx(np.ones(49))


def test_the_emotion_response_does_not_import_librosa():
    import subprocess
    import sys

    code = ("import sys\n"
            "from train import evaluate, response\n"
            "from train.models import build\n"
            "for key in response.CONDITIONED:\n"
            "    response.model_outputs(build(key), response.grid_embeddings(7)[2])\n"
            "print('librosa' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
