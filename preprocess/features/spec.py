"""What each vector holds, in one place, with the version that keys the cache and the exported metadata.

Change anything a feature function computes and bump FEATURE_VERSION: the cache recomputes every
file whose (content hash, feature version) is not in its manifest, and an exported model carries
the version it was trained on.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

FEATURE_VERSION = "kelly-features-4"

# --- audio (EmotionRecognizer input) -------------------------------------------------------------
AUDIO = {
    "sample_rate": 22050,        # Hz, every file is resampled once (soxr through librosa)
    "n_fft": 2048,
    "hop_length": 512,
    "n_mels": 128,
    "fmin": 0.0,
    "fmax": 11025.0,
    "window_seconds": 0.5,       # one feature vector per 0.5 s (DEAM's dynamic labels come at 2 Hz)
    "log": "10*log10(max(mel_power, 1e-10)), dB re 1.0, no top_db clipping",
    "window_summary": "mean over the STFT frames whose centre falls in the window",
    "clip_summary": "mean of the clip's window vectors",
    "mono": "mean of the channels, before resampling",
    "resample": "soxr 'HQ' (librosa res_type='soxr_hq'), once, from the file's rate",
    "stft": "periodic Hann window, centred frames, zero padding (librosa's defaults); power 2",
    "mel": "librosa.filters.mel: Slaney mel scale, Slaney area normalisation",
    "silence_rms": 1e-4,         # mono-mix RMS below this (-80 dBFS) is a silent file: an error
    "clip_level": 0.999,         # |x| >= this counts as clipped; recorded per file, not an error
}
AUDIO_FEATURES = 128

# --- emotion embedding ---------------------------------------------------------------------------
EMBEDDING_SIZE = 64              # preprocess.features.embedding: (valence, arousal) -> 64 values in [-1, 1]
DYNAMICS_INPUTS = 32             # the plugin feeds the embedding's first 32 values to the DynamicsEngine

# --- MIDI windows --------------------------------------------------------------------------------
MIDI = {
    "melody_window_seconds": 1.0,    # MelodyTransformer: one step per second of music
    "dynamics_window_seconds": 2.0,  # DynamicsEngine: one expression vector per 2 s of performance
    "groove_window": "one bar at the file's tempo and time signature (4 beats when it has none)",
    "harmony_step": ("one chord per beat (the file's beats shifted to the phase its notes begin; a bass-aware "
                     "chord model smoothed by Viterbi with a change penalty, preprocess.features.chords."
                     "estimate_chords), N dropped, repeats merged; a sample per chord, the first with an empty history"),
    "min_notes_per_window": 1,       # windows with fewer notes are not samples (silence teaches nothing)
}

# --- pitch classes, keys and chords: their names -------------------------------------------------
#: pitch class (C = 0 .. B = 11) -> name, spelled with sharps: the spelling of the chord vocabulary
#: ("C#m7") and of MIDI note names in exported metadata ("C#4"). A name is a label only: enharmonic
#: spellings (C#, Db) are the same pitch class everywhere in kelly-ml, and written chords may use either.
PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
#: the same pitch classes spelled with flats (Db, Eb, Gb, Ab, Bb), as chords in flat keys are written
FLAT_PITCH_CLASS_NAMES = tuple(name if len(name) == 1 else PITCH_CLASS_NAMES[(pc + 1) % 12] + "b"
                               for pc, name in enumerate(PITCH_CLASS_NAMES))
#: a key's tonic as keys are usually named: flats for Eb, Ab and Bb, sharps for C# and F#
#: ("Bb minor", "F# major"; preprocess.features.keys.key_name, the proxy labels' key)
KEY_TONIC_NAMES = tuple(FLAT_PITCH_CLASS_NAMES[pc] if pc in (3, 8, 10) else PITCH_CLASS_NAMES[pc] for pc in range(12))

#: Krumhansl & Kessler's (1982) major and minor key profiles, tonic first: how well each pitch class
#: fits a key. The proxy labels' mode, a written progression's key and the mode-score descriptor
#: correlate a pitch-class profile with their 12 rotations (`key_correlations`).
KEY_PROFILES = {
    "major": (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
    "minor": (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
}


def key_correlations(profile):
    """Pearson correlation of a pitch-class profile [12] with every major and minor key: (major [12],
    minor [12]) float64, entry k the key whose tonic is pitch class k. A flat (or empty) profile
    correlates 0."""
    import numpy as np

    profile = np.asarray(profile, dtype=np.float64)
    centred = profile - profile.mean()
    norm = np.sqrt((centred**2).sum())
    if norm == 0:
        return np.zeros(12), np.zeros(12)
    return tuple(_key_templates(mode) @ centred / norm for mode in ("major", "minor"))


@functools.lru_cache(maxsize=None)
def _key_templates(mode: str):
    """The 12 rotations of a key profile, centred and scaled to unit norm, [12 keys, 12 pitch classes]."""
    import numpy as np

    keys = np.stack([np.roll(np.array(KEY_PROFILES[mode]), k) for k in range(12)])
    keys = keys - keys.mean(axis=1, keepdims=True)
    return keys / np.sqrt((keys**2).sum(axis=1, keepdims=True))


# --- targets -------------------------------------------------------------------------------------
MELODY_TARGETS = 128             # fraction of the window during which MIDI pitch p sounds, in [0, 1] (BCE)

#: pitch reference of the pitch-bearing targets (and inputs). "tonic": key-relative, each window moved
#: so its key's tonic is C, mode kept (preprocess.features.key_relative); "absolute": MIDI pitch as played.
#: Measured on the sample data in 24 keys (kelly pipeline --sample, held-out split):
#: - melody: absolute targets lose the mode (the network's mode score is flat over valence, about
#:   +0.15 everywhere, and its BCE 0.0755 does not beat the baseline's 0.0754); key-relative ones
#:   give a mode score from -0.33 at low valence to +0.33 at high (fidelity 0.89 to the held-out
#:   data) and BCE 0.0673 against 0.0687.
#: - harmony: key-relative chords predict the next chord better (cross-entropy 2.19 against 2.74,
#:   top-1 0.42 against 0.26, two seeds each) and follow valence as well (minor-chord share
#:   fidelity 0.79-0.84 against 0.83-0.84, seed to seed).
PITCH_REFERENCE = {
    "melody": "tonic",           # the 128 outputs are key-relative pitches
    "harmony": "tonic",          # the chord history (inputs 64..127) and the 64 outputs are key-relative chords
}
TONIC_RULE = ("s = tonic if tonic <= 6 else tonic - 12 (tonic: the current key's tonic pitch class, C = 0); "
              "key-relative pitch = absolute pitch - s; absolute pitch = key-relative pitch + s "
              "(s in -5..6: the register moves by at most half an octave; the mode is kept)")
CHORD_TONIC_RULE = ("with s as for pitches: key-relative chord class = the chord with its root moved by -s "
                    "(class 5 r + q -> 5 ((r - s) mod 12) + q; diminished set 60 + r -> 60 + (r - s) mod 3; "
                    "N stays N); absolute = key-relative with its root moved by +s")
KEY_ESTIMATION = ("MIDI: a key per section (preprocess.features.keys: per-beat evidence from the scale, the "
                  "tonic and dominant chords and the bass, smoothed over the 24 keys by Viterbi with a penalty "
                  "per key change, a smaller one to the relative key); a melody window takes the key at its "
                  "centre, a chord the key at its middle. A written progression: one key, the best Pearson "
                  "correlation of its chord tones (once per chord) with the 24 rotated Krumhansl-Kessler profiles")

DYNAMICS_NAMES = (               # 16 expression values per window, each in [0, 1]
    "velocity_mean",             # mean velocity / 127
    "velocity_std",              # std of velocity / 64, clipped
    "velocity_range",            # (max - min) / 127
    "velocity_median",           # median / 127
    "velocity_bin_0_31",         # fraction of notes with velocity in [0, 32)
    "velocity_bin_32_63",
    "velocity_bin_64_95",
    "velocity_bin_96_127",
    "articulation",              # mean of duration / inter-onset interval to the next onset (chord = one onset), clipped to [0, 1]
    "timing_deviation",          # irregularity of inter-onset intervals: std(log IOI) / 2, clipped
    "accent_ratio",              # fraction of notes louder than the window's median by more than 10
    "note_density",              # note onsets per second / 20, clipped
    "velocity_slope",            # crescendo (>0.5) or diminuendo (<0.5): 0.5 + slope(velocity/127 per s) / 2, clipped
    "sustain_pedal",             # fraction of the window with CC64 >= 64
    "polyphony",                 # mean number of sounding notes / 10, clipped
    "velocity_contrast",         # mean |velocity difference| between consecutive onsets / 64, clipped
)

GROOVE_CLASSES = ("kick", "snare", "closed_hat", "open_hat", "low_tom", "mid_tom", "high_tom", "crash", "ride")
#: Magenta's 9-class Roland mapping (Groove MIDI Dataset)
GROOVE_PITCH_TO_CLASS = {
    36: 0,
    38: 1, 37: 1, 40: 1,
    42: 2, 22: 2, 44: 2,
    46: 3, 26: 3,
    43: 4, 58: 4,
    47: 5, 45: 5,
    50: 6, 48: 6,
    49: 7, 52: 7, 55: 7, 57: 7,
    51: 8, 53: 8, 59: 8,
}
GROOVE_NAMES = (                 # 32 values per bar, each in [-1, 1]
    *(f"density_{c}" for c in GROOVE_CLASSES),       # 2 * min(hits per beat / 4, 1) - 1 (beat = quarter note)
    *(f"velocity_{c}" for c in GROOVE_CLASSES),      # 2 * mean velocity / 127 - 1 (-1 when silent)
    *(f"timing_{c}" for c in GROOVE_CLASSES),        # mean signed offset from the 16th grid, in 16ths, * 2 (0 when silent)
    "swing",                     # clip(6 d - 1): d = median delay of off-beat 8ths as a fraction of an 8th (straight -1, triplet +1), see groove.py
    "syncopation",               # 2 * fraction of hits on weak 16th positions (the "e" and "a" of a beat) - 1
    "fill",                      # +1 for a fill, -1 for a beat (dataset label, else the tom heuristic in groove.py)
    "velocity_spread",           # 2 * min(std(velocity) / 64, 1) - 1
    "total_density",             # 2 * min(hits per beat / 8, 1) - 1 (beat = quarter note)
)

#: the HarmonyPredictor's 64 chord classes (preprocess.features.chords maps written chords and notes
#: onto them): class 5 r + q is root r (PITCH_CLASS_NAMES) with quality CHORD_QUALITIES[q]; classes
#: DIMINISHED_FIRST + 0, 1, 2 are the three diminished sets, named by their lowest root (C, C#, D);
#: NO_CHORD is "N".
CHORD_QUALITIES = ("maj", "min", "7", "m7", "maj7")
CHORD_SUFFIXES = {"maj": "", "min": "m", "7": "7", "m7": "m7", "maj7": "maj7"}   # as a chord symbol writes them
DIMINISHED_FIRST = 60
NO_CHORD = 63
CHORD_VOCABULARY: tuple[str, ...] = (
    *(PITCH_CLASS_NAMES[r] + CHORD_SUFFIXES[q] for r in range(12) for q in CHORD_QUALITIES),
    *(PITCH_CLASS_NAMES[r] + "dim7" for r in range(3)),
    "N",
)
HARMONY_CLASSES = len(CHORD_VOCABULARY)     # 64
HARMONY_CONTEXT = 128            # [emotion embedding 64 | previous chords 64]
HARMONY_HISTORY = 4              # previous chords in the context, latest first, weighted as below (then scaled to max 1)
HARMONY_HISTORY_WEIGHTS = tuple(0.5**j for j in range(HARMONY_HISTORY))      # 1, 1/2, 1/4, 1/8

# --- the datasets (one list), their items' splits and label sources, the five networks (one list) ---
#: the datasets, each read by preprocess.datasets.<name>, in the order the job reads them
SOURCES = ("deam", "lakh", "maestro", "groove", "harmony", "emopia")

#: an item's split, by the code the cache stores (0 train, 1 validation, 2 test)
SPLITS = ("train", "validation", "test")
#: where an item's (valence, arousal) came from, by the code the cache stores: the dataset's own
#: annotations, or the documented proxy labels derived from the music (preprocess.features.proxy_labels),
#: or a trained EmotionLabeller's labels (code 2; never in the manifest: the trainer reads them from the
#: cache's labels table, preprocess.cache.labels, and names them "labeller:<id>", id = a digest of the
#: labeller's checkpoint)
LABEL_ANNOTATED, LABEL_PROXY, LABEL_LABELLER = "annotated", "proxy", "labeller"
LABEL_SOURCES = (LABEL_ANNOTATED, LABEL_PROXY, LABEL_LABELLER)


def split_fraction(identity: str, seed: int) -> float:
    """A number in [0, 1) fixed by the seed and an item's identity alone: the first 8 bytes of
    sha1("{seed}:{identity}") over 2^64. Where a dataset has no official split, an item's side is
    this number against the split fractions (preprocess.datasets.base.assign_split), and so is the
    choice of the items a trainer moves to validation in a cache without one
    (train.data.validation_items): adding items moves none of the others."""
    digest = hashlib.sha1(f"{seed}:{identity}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class Network:
    """One of the plugin's networks, as the cache feeds it and the plugin runs it.

    inputs, outputs: sizes of one input and one output vector; sources: the datasets its rows come
    from (names in SOURCES); class_name: the plugin's class (its exported file is the class name
    in lower case, ``emotionrecognizer.json``); recurrent: an LSTM network (trained on sequences;
    the plugin runs it one step per call and keeps its state between calls); input_from: what the
    plugin feeds it (docs/rtneural.md, "How the plugin runs them").

    It also reads as the tuple (inputs, outputs, sources): ``n_in, n_out, sources = NETWORKS[key]``.
    """

    inputs: int
    outputs: int
    sources: tuple[str, ...]
    class_name: str
    recurrent: bool
    input_from: str

    def __iter__(self):
        return iter((self.inputs, self.outputs, self.sources))

    def __getitem__(self, index):
        return (self.inputs, self.outputs, self.sources)[index]


_EMBEDDING_FROM = "EmotionRecognizer's 64-value emotion embedding"
#: key (the cache's, the command line's) -> Network, in the plugin's order
NETWORKS = {
    "emotion": Network(AUDIO_FEATURES, EMBEDDING_SIZE, ("deam",), "EmotionRecognizer", True,
                       "the audio features of the current 0.5-s window"),
    "melody": Network(EMBEDDING_SIZE, MELODY_TARGETS, ("lakh", "maestro"), "MelodyTransformer", True,
                      _EMBEDDING_FROM),
    "harmony": Network(HARMONY_CONTEXT, HARMONY_CLASSES, ("harmony", "lakh", "maestro"), "HarmonyPredictor", False,
                       "[EmotionRecognizer's emotion embedding (64) | previous-chord context (64)]"),
    "dynamics": Network(DYNAMICS_INPUTS, len(DYNAMICS_NAMES), ("maestro",), "DynamicsEngine", False,
                        "the first 32 values of EmotionRecognizer's emotion embedding"),
    "groove": Network(EMBEDDING_SIZE, len(GROOVE_NAMES), ("groove",), "GroovePredictor", False, _EMBEDDING_FROM),
}


def key_of_class(class_name: str) -> str:
    """The key of the network whose plugin class is `class_name` (exactly as spelled); KeyError if none."""
    for key, network in NETWORKS.items():
        if network.class_name == class_name:
            return key
    raise KeyError(class_name)

# --- how the cache stores each network's rows (preprocess/cache/layout.py applies this) ----------
#: Values that are the same on every row of an item are stored once per item: the item's emotion
#: embedding (64 float32, `items/embedding`). A row keeps only what is its own; the reader and the
#: trainer rebuild the network's input by a gather from the item table. The rebuilt inputs are the
#: ones extraction computed, bit for bit; only melody targets are quantised (below).
CACHE_LAYOUT = {
    # network: (inputs gathered from the item's embedding: how many of its first values,
    #           inputs stored per row: (dtype, width, meaning) or None,
    #           targets as stored: dtype)
    "emotion": (0, ("float32", AUDIO_FEATURES, "the window's log-mel vector"), "float32"),
    "melody": (EMBEDDING_SIZE, None, "uint8"),
    "harmony": (EMBEDDING_SIZE, ("uint8", HARMONY_HISTORY, "the previous chords, latest first, "
                                 "NO_PREVIOUS_CHORD where the progression has fewer"), "uint8"),
    "dynamics": (DYNAMICS_INPUTS, None, "float32"),
    "groove": (EMBEDDING_SIZE, None, "float32"),
}
#: harmony's stored history: a chord class 0..63, or this for "no chord yet" (the context's chord
#: half is rebuilt from these exactly as preprocess.features.harmony.chord_history computes it)
NO_PREVIOUS_CHORD = 255
#: Melody targets (fractions of a window in [0, 1]) are stored as round(fraction * 255) in uint8
#: and read back as stored / 255: the error is at most 1 / 510 (0.00196) per value, plus float32's
#: rounding of the two values (< 2^-23). Exact for 0 and 1, and every value stays on its side of
#: 0.5 (the metrics' "active" threshold is kept).
MELODY_TARGET_STEPS = 255
MELODY_TARGET_MAX_ERROR = 0.5 / MELODY_TARGET_STEPS + 2.0**-23

assert len(DYNAMICS_NAMES) == 16 and len(GROOVE_NAMES) == 32
assert HARMONY_CLASSES == 64 and len(set(CHORD_VOCABULARY)) == 64 and CHORD_VOCABULARY[NO_CHORD] == "N"
assert set(CACHE_LAYOUT) == set(NETWORKS) and HARMONY_CLASSES < NO_PREVIOUS_CHORD  # the labeller's is added below
assert all(set(network.sources) <= set(SOURCES) for network in NETWORKS.values())

# --- the EmotionLabeller's input (preprocess.features.labeller_input.labeller_frames) ------------
#: Bump when anything labeller_frames computes changes: a labeller checkpoint records the version
#: of the frames it was trained on and refuses frames of another.
LABELLER_VERSION = "kelly-labeller-3"
LABELLER = {
    "frame_seconds": 0.25,       # one input frame per 0.25 s of music (seconds, never beats)
    "window_seconds": 40.0,      # a piece is labelled by windows of about an EMOPIA clip's length ...
    "hop_seconds": 20.0,         # ... one every 20 s, their (valence, arousal) averaged
    "pitch_reference": "every pitch class counted from the tonic of the key sounding at the frame's centre",
    "velocity_min_distinct": 3,  # a piece whose notes have fewer distinct velocities ...
    "velocity_min_std": 2.0,     # ... or a smaller spread (MIDI velocity units) has no velocity information
}
#: the chord's quality in a labeller frame: CHORD_QUALITIES, then a diminished set, then N
LABELLER_CHORD_QUALITIES = CHORD_QUALITIES + ("dim7", "N")
#: the frame's columns, in order: five 12-value pitch-class blocks (key-relative: index 0 = tonic),
#: the chord's quality (one-hot), ten scalars (preprocess.features.labeller_input documents each),
#: then the piece's 23 clip values
LABELLER_COLUMNS = (tuple(f"sounding_{d}" for d in range(12)) + tuple(f"onset_{d}" for d in range(12))
                    + tuple(f"bass_{d}" for d in range(12)) + tuple(f"top_{d}" for d in range(12))
                    + tuple(f"chord_root_{d}" for d in range(12))
                    + tuple(f"chord_{q}" for q in LABELLER_CHORD_QUALITIES)
                    + ("onsets", "polyphony", "velocity", "velocity_known", "mean_pitch", "low_pitch",
                       "high_pitch", "articulation", "minor_key", "silent"))
#: the whole piece's note-level summary (preprocess.features.clip_features), the same on every frame
LABELLER_CLIP_COLUMNS = (("clip_major_fit", "clip_minor_fit", "clip_mode_fit")
                         + tuple(f"clip_interval_{c}" for c in range(7))
                         + ("clip_top_up", "clip_top_down", "clip_top_step", "clip_top_leap", "clip_top_size",
                            "clip_density", "clip_velocity", "clip_velocity_spread", "clip_length", "clip_pitch",
                            "clip_pitch_spread", "clip_pitch_high", "clip_pitch_low"))
LABELLER_COLUMNS = LABELLER_COLUMNS + LABELLER_CLIP_COLUMNS
LABELLER_INPUTS = len(LABELLER_COLUMNS)      # 100

# --- the EmotionLabeller: a network kelly-ml trains and runs itself, never the plugin -------------------
#: the cache key of the symbolic emotion labeller (train.labeller_model.EmotionLabeller): trained on
#: EMOPIA's annotated clips, it labels the MIDI items that have no human label. It is not one of the
#: plugin's networks: NETWORKS leaves it out, and so do export, the plugin contract and the emotion
#: response. Its rows: one per frame of a clip (spec.LABELLER["frame_seconds"]), the frame's
#: LABELLER_INPUTS values stored per row, the clip's (valence, arousal) signs as targets.
LABELLER_KEY = "labeller"
LABELLER_NETWORK = Network(LABELLER_INPUTS, 2, ("emopia",), "EmotionLabeller", True,
                           "not run by the plugin: kelly-ml labels MIDI with it (kelly label)")
#: every network kelly-ml trains and caches rows for: the plugin's five, then the labeller
TRAINED_NETWORKS = {**NETWORKS, LABELLER_KEY: LABELLER_NETWORK}
CACHE_LAYOUT[LABELLER_KEY] = (0, ("float32", LABELLER_INPUTS, "the clip's labeller frame"), "float32")
#: an EMOPIA clip's name: Q{quadrant}_{YouTube id}_{clip index} (YouTube ids hold "_" and "-"); the
#: song (YouTube id) is the unit a held-out split keeps whole
EMOPIA_CLIP_NAME = r"^Q(?P<quadrant>[1-4])_(?P<song>.+)_(?P<clip>\d+)$"


assert set(CACHE_LAYOUT) == set(TRAINED_NETWORKS)
assert all(set(network.sources) <= set(SOURCES) for network in TRAINED_NETWORKS.values())
