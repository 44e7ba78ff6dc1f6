"""The 64 chord classes the HarmonyPredictor speaks and a parser for written chord symbols
(`parse_chord`, `chord_class`); `chords.py` recognises chords from notes.

Vocabulary (index: name; defined in `spec.CHORD_VOCABULARY`, imported here as VOCABULARY), roots
spelled with sharps (spec.PITCH_CLASS_NAMES: C C# D D# E F F# G G# A A# B, r = 0..11):

    5 * r + 0  "C"      major triad            {0, 4, 7}
    5 * r + 1  "Cm"     minor triad            {0, 3, 7}
    5 * r + 2  "C7"     dominant seventh       {0, 4, 7, 10}
    5 * r + 3  "Cm7"    minor seventh          {0, 3, 7, 10}
    5 * r + 4  "Cmaj7"  major seventh          {0, 4, 7, 11}
    60 "Cdim7"   the diminished set {C, D#, F#, A}
    61 "C#dim7"  the diminished set {C#, E, G, A#}
    62 "Ddim7"   the diminished set {D, F, G#, B}
    63 "N"       no chord

A diminished chord on root r (dim, dim7, m7b5 / half-diminished) is class 60 + r % 3: the set that
holds its root's diminished triad {r, r+3, r+6}. So Bdim, Bm7b5, Ddim7 and Fdim7 are all 62.

Folding of what people write onto the 64 classes (the bass of a slash chord is parsed and kept
in `ParsedChord.bass`, but the class is that of the chord above the slash: C/E is C):

    written                                              class quality
    C, CM, Cmaj, Cmajor, C6, CM6, C69, C6/9, Cadd9,      maj
      Cadd2, Cadd11, C2, C5 (power chord), Csus2, Csus4,
      Csus, C4, C+ / Caug / C(#5) (augmented)
    Cm, Cmin, Cmi, Cminor, C-, Cm6, Cm69, Cmadd9,        min
      CmM7 / Cm(maj7) / Cminmaj7 (minor-major seventh)
    C7, C9, C11, C13, Cdom7, C7b9, C7#9, C7#11, C7alt,   7
      C7b5, C7#5, C+7, Caug7, C7sus4, C9sus4, C7sus2
    Cm7, Cmin7, Cmi7, C-7, Cm9, Cm11, Cm13               m7
    Cmaj7, CM7, CMaj7, Cma7, CΔ, CΔ7, Cmaj9, CM9,        maj7
      Cmaj11, Cmaj13, Cmaj7#11, C+M7, Cmaj7#5, Cmaj7sus4
    Cdim, Co, C°, Cdim7, Co7, C°7, Cm7b5, Cm7-5, Cmb5,   diminished set of C
      Cø, Cø7, Chdim7, Cmin7b5, C-7b5
    N, NC, N.C., N/C                                     N

Alterations and added tones (b5 #5 b9 #9 #11 b13, add9, in parentheses or not) keep the class,
except b5 on a minor chord, which makes it diminished. Flats and sharps (also ♭ ♯) are equal
enharmonically: Db == C#. Harte's notation (C:maj, A:min7, B:hdim7, C:maj/3, D:7/b7) is read
too, its shorthands only (an interval list such as C:(1,b3,5) is refused). Case matters: "m"/"mi"/"min" is minor, "M"/"ma"/"maj" is major, "Am" is A minor and "AM7" is
A major seventh; nothing here ever changes a symbol's case. Anything else raises `UnknownChord`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from preprocess.features.spec import CHORD_QUALITIES as QUALITIES
from preprocess.features.spec import CHORD_VOCABULARY as VOCABULARY
from preprocess.features.spec import DIMINISHED_FIRST, NO_CHORD

QUALITY_INTERVALS = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "7": (0, 4, 7, 10),
    "m7": (0, 3, 7, 10),
    "maj7": (0, 4, 7, 11),
}
assert tuple(QUALITY_INTERVALS) == QUALITIES

NO_CHORD_SYMBOLS = frozenset({"N", "NC", "N.C.", "N.C", "N/C"})


class UnknownChord(ValueError):
    """A chord symbol this module cannot read; `symbol` holds it as written."""

    def __init__(self, symbol: object, reason: str = ""):
        self.symbol = symbol
        self.reason = reason
        super().__init__(f"unknown chord symbol {symbol!r}" + (f": {reason}" if reason else ""))

    def __reduce__(self):                 # survives pickling, e.g. from a worker process
        return type(self), (self.symbol, self.reason)


@dataclass(frozen=True)
class ParsedChord:
    """A parsed symbol: root and bass pitch classes (0 = C; None for "N") and the folded quality.

    quality is one of QUALITIES, "dim" (a diminished set), or "N".
    """

    root: int | None
    quality: str
    bass: int | None
    symbol: str = ""

    @property
    def chord_class(self) -> int:
        if self.quality == "N":
            return NO_CHORD
        if self.quality == "dim":
            return DIMINISHED_FIRST + self.root % 3
        return 5 * self.root + QUALITIES.index(self.quality)

    @property
    def name(self) -> str:
        return VOCABULARY[self.chord_class]


# --- parsing -------------------------------------------------------------------------------------

_LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NOTE = re.compile(r"([A-G])((?:#|b)*)")
_UNICODE = str.maketrans({"♯": "#", "♭": "b", "△": "Δ", "∆": "Δ", "Ø": "ø", "º": "°", "˚": "°"})

# tokens of the part after the root, tried in this order at each position; words are read in any
# case ("maj", "Maj", "MAJ"), the single letters "m" (minor) and "M" (major) only as written
_TOKENS = re.compile(
    r"(?P<maj>(?i:major|maj)|(?i:ma)(?=\d|$))"
    r"|(?P<min>(?i:minor|min)|(?i:mi)(?=\d|$))"
    r"|(?P<hdim>(?i:hdim)|ø)"
    r"|(?P<dim>(?i:dim)|°|o)"
    r"|(?P<aug>(?i:aug)|\+(?!5|9|11|13))"
    r"|(?P<dom>(?i:dom))"
    r"|(?P<sus>(?i:sus)[24]?)"
    r"|(?P<add>(?i:add)[b#]?(?:2|4|6|9|11|13))"
    r"|(?P<alt>[b#+\-](?:5|9|11|13)|(?i:alt))"
    r"|(?P<number>69|13|11|9|7|6|5|4|2)"
    r"|(?P<major_letter>M|Δ)"
    r"|(?P<minor_letter>m)"
)
_TOKEN_KIND = {"major_letter": "maj", "minor_letter": "min"}
_SEVENTHS = {"7", "9", "11", "13"}

_HARTE = {
    "maj": "maj", "min": "min", "aug": "maj", "dim": "dim", "dim7": "dim", "hdim7": "dim",
    "7": "7", "9": "7", "11": "7", "13": "7", "maj7": "maj7", "maj9": "maj7", "maj11": "maj7",
    "maj13": "maj7", "min7": "m7", "min9": "m7", "min11": "m7", "min13": "m7", "minmaj7": "min",
    "maj6": "maj", "min6": "min", "sus2": "maj", "sus4": "maj", "5": "maj", "1": "maj",
}
_DEGREE_SEMITONES = {1: 0, 2: 2, 3: 4, 4: 5, 5: 7, 6: 9, 7: 11, 8: 0, 9: 2, 10: 4, 11: 5, 12: 7, 13: 9}
_DEGREE = re.compile(r"([b#]*)(\d{1,2})")


def _note_pc(text: str) -> int | None:
    """Pitch class of a whole note name ("C", "Db", "F#", "Cb"), or None if it is not one."""
    m = _NOTE.fullmatch(text)
    if not m:
        return None
    return (_LETTER_PC[m.group(1)] + m.group(2).count("#") - m.group(2).count("b")) % 12


def _fold_quality(quality: str, symbol: str) -> str:
    """The class quality (QUALITIES or "dim") of the text after the root, e.g. "m7b5" -> "dim"."""
    text = quality.replace("(", "").replace(")", "").replace(",", "").replace(" ", "")
    if text.startswith("-"):
        text = "m" + text[1:]                       # a leading "-" is minor (C-7); later, a flat (C7-9)
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKENS.match(text, pos)
        if m is None:
            raise UnknownChord(symbol, f"cannot read {text[pos:]!r}")
        tokens.append((_TOKEN_KIND.get(m.lastgroup, m.lastgroup), m.group(0)))
        pos = m.end()

    family = None
    number = None
    major_seventh = False                           # a major-seventh marker after the family (mM7, +M7)
    sus = False
    alterations: list[str] = []
    for kind, value in tokens:
        if kind in ("maj", "min", "dim", "hdim", "aug", "dom"):
            if family is None and number is None and not alterations and not sus:
                family = kind
            elif kind == "maj" and family in ("min", "aug") and number is None and not major_seventh:
                major_seventh = True
            elif kind == "aug" and number is not None:
                alterations.append("#5")             # C7aug, C7+
            else:
                raise UnknownChord(symbol, f"unexpected {value!r}")
        elif kind == "number":
            if number is not None:
                raise UnknownChord(symbol, f"two extensions ({number}, {value})")
            number = value
        elif kind == "sus":
            sus = True
        elif kind == "alt":
            alterations.append(value.replace("-", "b").replace("+", "#"))
        # "add" tokens never change the class

    if major_seventh:
        if number not in _SEVENTHS:
            raise UnknownChord(symbol, "a major-seventh marker needs 7, 9, 11 or 13")
        return "min" if family == "min" else "maj7"      # minor-major 7 folds to the minor triad
    if sus:
        if family in ("min", "dim", "hdim", "aug"):
            raise UnknownChord(symbol, "a suspended chord has no third to be minor, diminished or augmented")
        if number in _SEVENTHS:
            return "maj7" if family == "maj" else "7"
        return "maj"
    if family in ("dim", "hdim"):
        if number not in (None, "7"):
            raise UnknownChord(symbol, f"diminished chord with extension {number}")
        return "dim"
    if family == "min":
        if "b5" in alterations and number in (None, "7"):
            return "dim"                             # m7b5, mb5
        if number in (None, "6", "69"):
            return "min"
        if number in _SEVENTHS:
            return "m7"
        raise UnknownChord(symbol, f"minor chord with {number}")
    if family == "aug":
        if number is None:
            return "maj"
        if number in _SEVENTHS:
            return "7"
        raise UnknownChord(symbol, f"augmented chord with {number}")
    if family == "dom":
        if number in (None, *_SEVENTHS):
            return "7"
        raise UnknownChord(symbol, f"dominant chord with {number}")
    if family == "maj":
        if number is None:
            return "maj7" if quality.startswith("Δ") else "maj"
        if number in ("6", "69"):
            return "maj"
        if number in _SEVENTHS:
            return "maj7"
        raise UnknownChord(symbol, f"major chord with {number}")
    # no family: a bare number (or nothing)
    if number in _SEVENTHS:
        return "7"
    return "maj"                                     # C, C5, C6, C69, C2, C4, Cadd9, C(b5)


def _parse_harte(symbol: str, text: str) -> ParsedChord:
    root_text, _, rest = text.partition(":")
    root = _note_pc(root_text)
    if root is None:
        raise UnknownChord(symbol, f"no root note in {root_text!r}")
    rest, _, bass_text = rest.partition("/")
    shorthand = rest.split("(", 1)[0]
    if shorthand not in _HARTE:
        raise UnknownChord(symbol, f"unknown shorthand {shorthand!r}")
    bass = root
    if bass_text:
        m = _DEGREE.fullmatch(bass_text)
        if m and int(m.group(2)) in _DEGREE_SEMITONES:
            shift = m.group(1).count("#") - m.group(1).count("b")
            bass = (root + _DEGREE_SEMITONES[int(m.group(2))] + shift) % 12
        else:
            raise UnknownChord(symbol, f"cannot read the bass {bass_text!r}")
    return ParsedChord(root, _HARTE[shorthand], bass, symbol)


def parse_chord(symbol: str) -> ParsedChord:
    """Parse a chord symbol as written (see the module docstring). Raises UnknownChord."""
    if not isinstance(symbol, str):
        raise UnknownChord(symbol, "not a string")
    text = symbol.strip().translate(_UNICODE)
    if not text:
        raise UnknownChord(symbol, "empty")
    if text in NO_CHORD_SYMBOLS:
        return ParsedChord(None, "N", None, symbol)
    if ":" in text:
        return _parse_harte(symbol, text)
    m = _NOTE.match(text)
    if m is None:
        raise UnknownChord(symbol, "it does not start with a note name A-G")
    root = _note_pc(m.group(0))
    rest = text[m.end():]
    rest = re.sub(r"6/9(?=/|$)", "69", rest)         # C6/9 is a chord, not a slash chord
    bass = root
    if "/" in rest:
        rest, bass_text = rest.split("/", 1)
        bass = _note_pc(bass_text)
        if bass is None:
            raise UnknownChord(symbol, f"cannot read the bass {bass_text!r}")
    return ParsedChord(root, _fold_quality(rest, symbol), bass, symbol)


def chord_class(symbol: str) -> int:
    """The class index (0..63) of a chord symbol. Raises UnknownChord."""
    return parse_chord(symbol).chord_class
