"""The EmotionLabeller's input frames and model: units, key invariance, window labels, learning."""
from __future__ import annotations

import csv
import dataclasses
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import needs_real_corpus, REAL_CORPUS
from constructed_music import key_of, write_song
from preprocess.features import spec
from preprocess.features.labeller_input import COLUMN, labeller_frames
from preprocess.features.midi import load_notes
from train.labeller_cues import CUES, clip_cues
from train.labeller_fit import LabellerConfig, fit_ensemble, fit_labeller
from train.labeller_model import (EmotionLabeller, HOP_FRAMES, WINDOW_FRAMES, LabellerEnsemble, label_piece,
                                  labeller_checkpoint, labeller_from_checkpoint, pad_batch, quadrant_of,
                                  quadrant_signs, window_starts)

pytestmark = pytest.mark.usefixtures("one_thread")


PITCH_BLOCKS = [c for c in spec.LABELLER_COLUMNS if c.split("_")[0] in ("sounding", "onset", "bass", "top")]
REGISTER = ["mean_pitch", "low_pitch", "high_pitch"]
CLIP_REGISTER = ["clip_pitch", "clip_pitch_high", "clip_pitch_low"]        # MIDI pitch / 127


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """A 40-s pop song in A minor with drums (constructed_music), as parsed notes."""
    path = tmp_path_factory.mktemp("labeller") / "song.mid"
    write_song(path, key_of("Am F C G Am Dm E7 Am", tonic=9, minor=True) * 3, bpm=96.0)
    return load_notes(path)


def test_frames_shape_units_and_columns(song):
    frames = labeller_frames(song)
    seconds = spec.LABELLER["frame_seconds"]
    assert frames.dtype == np.float32 and frames.shape == (int(np.ceil(song.duration / seconds)), spec.LABELLER_INPUTS)
    assert np.all(np.isfinite(frames)) and frames.min() >= -1.0 and frames.max() <= 1.0
    pitched = song.select(~song.is_drum)
    # every pitched note begins in exactly one frame, drums in none
    onsets = np.round(np.expm1(frames[:, COLUMN["onsets"]].astype(np.float64) * 3.0))
    assert onsets.sum() == len(pitched)
    heard = frames[:, COLUMN["silent"]] == 0
    for block in ("sounding", "bass", "top"):
        sums = frames[:, COLUMN[f"{block}_0"]:COLUMN[f"{block}_0"] + 12].sum(axis=1)
        assert np.allclose(sums[heard], 1.0, atol=1e-5) and np.all(sums[~heard] == 0)
    # A minor: the key is minor and its tonic A is pitch class 0, its third C is 3 and F# (a tritone) is rare
    assert frames[heard, COLUMN["minor_key"]].mean() > 0.9
    sounding = frames[heard, COLUMN["sounding_0"]:COLUMN["sounding_0"] + 12].mean(axis=0)
    assert sounding[0] > sounding[6] and sounding[3] > sounding[4]
    # the bass plays the chord roots from pitch 36..47 (in 0.9-beat notes): the lowest pitch mostly sits there
    low = frames[heard, COLUMN["low_pitch"]] * 48 + 60
    assert np.median(low) < 48 and np.mean(low < 48) > 0.9
    # one chord quality per frame; Am (the tonic, root 0) is the commonest chord, and the piece's
    # chords are Am F C G Am Dm E7 Am: minor, major and dominant sevenths
    qualities = frames[:, COLUMN["chord_maj"]:COLUMN["chord_N"] + 1]
    assert np.all(qualities.sum(axis=1) == 1.0)
    roots = frames[heard, COLUMN["chord_root_0"]:COLUMN["chord_root_0"] + 12].sum(axis=0)
    assert roots.argmax() == 0 and roots[[0, 3, 5, 7, 8, 10]].sum() > 0.8 * roots.sum()
    assert min(qualities[heard][:, [0, 1, 2]].sum(axis=0)) > 0
    assert frames[:, COLUMN["velocity_known"]].min() == 1.0
    first = frames[0]
    assert 0.3 < first[COLUMN["velocity"]] < 0.8            # velocities 50..90 of 127


def test_frames_are_key_invariant(song):
    frames = labeller_frames(song)
    for semitones in (5, -3):
        moved = dataclasses.replace(song, pitch=(song.pitch + semitones * ~song.is_drum).astype(np.int16))
        other = labeller_frames(moved)
        assert np.array_equal(other[:, [COLUMN[c] for c in PITCH_BLOCKS]], frames[:, [COLUMN[c] for c in PITCH_BLOCKS]])
        rest = [c for c in spec.LABELLER_COLUMNS if c not in PITCH_BLOCKS + REGISTER + CLIP_REGISTER]
        assert np.allclose(other[:, [COLUMN[c] for c in rest]], frames[:, [COLUMN[c] for c in rest]], atol=1e-6, rtol=0)
        register = [COLUMN[c] for c in REGISTER]
        heard = frames[:, COLUMN["silent"]] == 0
        assert np.allclose(other[heard][:, register] - frames[heard][:, register], semitones / 48.0, atol=1e-6)
        clip = [COLUMN[c] for c in CLIP_REGISTER]
        assert np.allclose(other[:, clip] - frames[:, clip], semitones / 127.0, atol=1e-6)


def test_flat_velocities_carry_no_loudness_and_drums_alone_are_refused(song):
    flat = dataclasses.replace(song, velocity=np.full_like(song.velocity, 100))
    frames = labeller_frames(flat)
    assert not frames[:, COLUMN["velocity_known"]].any() and not frames[:, COLUMN["velocity"]].any()
    drums = song.select(song.is_drum)
    with pytest.raises(ValueError, match="no pitched notes"):
        labeller_frames(drums)


def test_quadrants_and_signs():
    signs = quadrant_signs([1, 2, 3, 4])
    assert signs.tolist() == [[1, 1], [-1, 1], [-1, -1], [1, -1]]
    assert quadrant_of(signs[:, 0] * 0.3, signs[:, 1] * 0.7).tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="1..4"):
        quadrant_signs([0])


def test_padding_changes_nothing_and_long_pieces_are_labelled_by_windows():
    torch.manual_seed(0)
    model = EmotionLabeller().eval()
    rng = np.random.default_rng(0)
    short, long = (rng.random((n, spec.LABELLER_INPUTS)).astype(np.float32) for n in (30, 500))
    frames, lengths = pad_batch([short, long[:WINDOW_FRAMES]])
    for each in (model, EmotionLabeller(sequence=False).eval(), EmotionLabeller(summary=True, cues=True).eval()):
        with torch.no_grad():
            alone = each(torch.as_tensor(short)[None])
            together = each(frames, lengths)
        assert torch.allclose(alone[0], together[0], atol=1e-6)
    assert window_starts(30).tolist() == [0]
    starts = window_starts(500)
    assert starts[0] == 0 and starts[-1] == 500 - WINDOW_FRAMES and np.all(np.diff(starts) <= HOP_FRAMES)
    with torch.no_grad():
        expected = torch.stack([model(torch.as_tensor(long[s:s + WINDOW_FRAMES])[None])[0] for s in starts]).mean(0)
    values = label_piece(model, long)
    assert values.shape == (2,) and np.allclose(values, expected.numpy(), atol=1e-6)
    assert model.training is False and np.all(np.abs(values) < 1)


def test_checkpoints_round_trip_and_refuse_other_versions(tmp_path):
    torch.manual_seed(0)
    ensemble = LabellerEnsemble([EmotionLabeller(hidden=8, summary=True), EmotionLabeller(sequence=False)]).eval()
    frames = np.random.default_rng(0).random((200, spec.LABELLER_INPUTS)).astype(np.float32)
    torch.save(labeller_checkpoint(ensemble), tmp_path / "labeller.pt")
    loaded = labeller_from_checkpoint(torch.load(tmp_path / "labeller.pt", weights_only=False))
    assert isinstance(loaded, LabellerEnsemble) and len(loaded.members) == 2
    assert np.array_equal(label_piece(loaded, frames), label_piece(ensemble, frames))
    old = dict(labeller_checkpoint(ensemble), labeller_version="kelly-labeller-0")
    with pytest.raises(ValueError, match="kelly-labeller-0"):
        labeller_from_checkpoint(old)
    with pytest.raises(ValueError, match="not an EmotionLabeller"):
        labeller_from_checkpoint({"model_state": {}})


def _cues(frames: np.ndarray) -> dict:
    values = clip_cues(torch.as_tensor(frames)[None], torch.ones((1, len(frames)), dtype=torch.bool))[0]
    return dict(zip(CUES, values.tolist()))


def test_clip_cues_recover_notes_per_second_and_mean_velocity(song):
    frames = labeller_frames(song)
    pitched = song.select(~song.is_drum)
    cues = _cues(frames)
    seconds = len(frames) * spec.LABELLER["frame_seconds"]
    assert cues["density"] == pytest.approx(np.log2(len(pitched) / seconds / 6.0) / 2.0, abs=1e-4)
    assert cues["loudness"] == pytest.approx((pitched.velocity.astype(np.float64).mean() - 64.0) / 32.0, abs=1e-4)
    assert cues["velocity_known"] == 1.0
    # A minor: minor key and a minor-leaning profile; its chords Am F C G Am Dm E7 Am, one a bar: 4 of 8
    # minor, a minor-chord share of about a half (cue 0)
    assert cues["minor_key"] > 0.8 and cues["mode_contrast"] < 0
    assert abs(cues["minor_chords"]) < 0.15
    # flat velocities: no loudness, the density unchanged; padding frames change nothing
    flat = _cues(labeller_frames(dataclasses.replace(song, velocity=np.full_like(song.velocity, 100))))
    assert flat["loudness"] == 0.0 and flat["velocity_known"] == 0.0 and flat["density"] == cues["density"]
    padded, lengths = pad_batch([frames[:40], frames])
    both = clip_cues(padded, torch.arange(padded.shape[1])[None, :] < lengths[:, None])
    assert torch.allclose(both[0], torch.tensor(list(_cues(frames[:40]).values())), atol=1e-6)


def test_an_untrained_prior_model_is_the_hand_rules_arousal(song):
    frames = labeller_frames(song)
    flat = labeller_frames(dataclasses.replace(song, velocity=np.full_like(song.velocity, 100)))
    model = EmotionLabeller(summary=True, cues=True, prior=True).eval()
    for x in (frames, flat):
        cues = _cues(x)
        loud = (cues["density"] + cues["loudness"]) / 2.0 if cues["velocity_known"] else cues["density"]
        with torch.no_grad():
            z = model.logits(torch.as_tensor(x)[None])[0]
        assert np.allclose(z.numpy(), [0.0, 2.0 * loud], atol=1e-5)
    assert _cues(flat)["velocity_known"] == 0.0          # the flat file's arousal is its density alone
    # without arousal correction the learnt layers move only the valence: the arousal stays the rule's
    fixed = EmotionLabeller(summary=True, cues=True, prior=True, correct_arousal=False).eval()
    with torch.no_grad():
        for layer in (fixed.head[-1], fixed.cue_head):
            layer.weight.normal_()
            layer.bias.normal_()
        z = fixed.logits(torch.as_tensor(frames)[None])[0]
    cues = _cues(frames)
    assert z[0] != 0 and z[1].item() == pytest.approx(2.0 * (cues["density"] + cues["loudness"]) / 2.0, abs=1e-5)


def test_checkpoints_without_cues_load_as_before():
    torch.manual_seed(0)
    model = EmotionLabeller(hidden=8, summary=True).eval()
    saved = labeller_checkpoint(model)
    for option in ("cues", "prior", "correct_arousal"):          # written before the options existed
        del saved["config"][option]
    frames = np.random.default_rng(0).random((50, spec.LABELLER_INPUTS)).astype(np.float32)
    assert np.array_equal(label_piece(labeller_from_checkpoint(saved), frames), label_piece(model, frames))


def _toy_clips(rng, n):
    """Clips whose valence side is the mode (minor_key) and arousal side the note density."""
    quadrant = rng.integers(1, 5, n)
    signs = quadrant_signs(quadrant)
    clips = []
    for v, a in signs:
        x = np.zeros((int(rng.integers(10, 30)), spec.LABELLER_INPUTS), np.float32)
        x[:, COLUMN["minor_key"]] = float(v < 0)
        x[:, COLUMN["onsets"]] = rng.uniform(0.5, 0.9, len(x)) if a > 0 else rng.uniform(0.0, 0.4, len(x))
        x[:, COLUMN["sounding_0"]] = 1.0
        clips.append(x)
    return clips, signs, quadrant


@pytest.mark.parametrize("cues", [False, True])
def test_labeller_learns_a_separable_quadrant_task(cues):
    rng = np.random.default_rng(1)
    clips, signs, _ = _toy_clips(rng, 64)
    stop, stop_signs, _ = _toy_clips(rng, 16)
    test, _, quadrant = _toy_clips(rng, 40)
    config = LabellerConfig(hidden=16, epochs=10, patience=10, batch_size=8, learning_rate=1e-2, average=0.0,
                            cues=cues)
    model, history = fit_labeller(clips, signs, stop, stop_signs, config)
    values = np.stack([label_piece(model, x) for x in test])
    assert np.mean(quadrant_of(values[:, 0], values[:, 1]) == quadrant) >= 0.95
    assert history[-1]["stop_loss"] < history[0]["stop_loss"]
    # the moving average of the weights learns it too, and an ensemble of two seeds agrees
    ensemble, histories = fit_ensemble(clips, signs, stop, stop_signs, replace(config, average=0.8, epochs=6), seeds=(0, 1))
    values = np.stack([label_piece(ensemble, x) for x in test])
    assert np.mean(quadrant_of(values[:, 0], values[:, 1]) == quadrant) >= 0.95 and len(histories) == 2


@needs_real_corpus
def test_labeller_beats_chance_on_emopia_clips():
    emopia = REAL_CORPUS / "emopia"
    names = {part: [row["fname"] for row in csv.DictReader(open(emopia / "split" / f"{part}.csv"))]
             for part in ("train", "val")}
    rng = np.random.default_rng(0)
    chosen = {part: sorted(rng.choice(names[part], size, replace=False)) for part, size in (("train", 120), ("val", 60))}
    frames = {part: [labeller_frames(load_notes(emopia / "midis" / f"{n}.mid")) for n in chosen[part]]
              for part in chosen}
    quadrant = {part: np.array([int(n[1]) for n in chosen[part]]) for part in chosen}
    crops = [x[:WINDOW_FRAMES // 4] for x in frames["train"]]       # 10-s crops keep the test fast
    signs = quadrant_signs(quadrant["train"])
    stop = np.array([spec.split_fraction(n.rsplit("_", 1)[0][3:], 0) < 0.2 for n in chosen["train"]])  # by song
    model, _ = fit_labeller([x for x, s in zip(crops, stop) if not s], signs[~stop],
                            [x for x, s in zip(crops, stop) if s], signs[stop], LabellerConfig(hidden=32, epochs=6, patience=6, batch_size=8, learning_rate=5e-3, summary=True, average=0.9))
    values = np.stack([label_piece(model, x) for x in frames["val"]])
    signs = quadrant_signs(quadrant["val"])
    arousal = np.mean((values[:, 1] >= 0) == (signs[:, 1] > 0))
    assert arousal >= 0.75, arousal


def test_clip_features_read_key_strength_intervals_and_the_top_line():
    """Pure function of the notes: bounded, order-free; a major triad piece reads major, a minor one
    minor; thirds and fifths sound as interval classes 3-5; a rising line rises."""
    from preprocess.features.clip_features import clip_features

    def chords(root: int, third: int, n: int = 16):
        onset = np.repeat(np.arange(n) * 0.5, 3)
        pitch = np.tile([root, root + third, root + 7], n) + np.repeat(np.arange(n) % 2 * 12, 3)
        return onset, onset + 0.45, pitch, np.full(pitch.size, 80)

    column = {name: i for i, name in enumerate(spec.LABELLER_CLIP_COLUMNS)}
    major, minor = clip_features(*chords(60, 4)), clip_features(*chords(57, 3))
    for values in (major, minor):
        assert values.shape == (len(spec.LABELLER_CLIP_COLUMNS),) and np.all(np.abs(values) <= 1.0)
        intervals = values[column["clip_interval_0"]:column["clip_interval_6"] + 1]
        assert intervals.sum() == pytest.approx(1.0) and intervals[[3, 4, 5]].sum() == pytest.approx(1.0)
    assert major[column["clip_mode_fit"]] > 0 > minor[column["clip_mode_fit"]]
    onset, offset, pitch, velocity = chords(60, 4)
    order = np.random.default_rng(0).permutation(onset.size)
    assert np.allclose(clip_features(onset[order], offset[order], pitch[order], velocity[order]), major)
    scale = np.array([60, 62, 64, 65, 67, 69, 71, 72])
    rising = clip_features(np.arange(8) * 0.25, np.arange(8) * 0.25 + 0.2, scale, np.full(8, 70))
    assert rising[column["clip_top_up"]] == 1.0 and rising[column["clip_top_step"]] == 1.0
    assert rising[column["clip_interval_0"]:column["clip_interval_6"] + 1].sum() == 0.0     # nothing overlaps
