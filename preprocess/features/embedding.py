"""The 64-value emotion embedding: a fixed, smooth, invertible code for (valence, arousal).

Every value is a sinusoid of one "axis" of the valence/arousal plane (Fourier features):

    axes (each in [-1, 1] on the square):  valence v,  arousal a,
                                           energy  (v + a) / 2,  tension (a - v) / 2
    for axis x and k = 1..8, w_k = k * pi / 2:   sin(w_k * x), cos(w_k * x)

    e[0:16]   valence   e[16:32]  arousal        <- the DynamicsEngine's 32 inputs
    e[32:48]  energy    e[48:64]  tension        (the circumplex's diagonals, after Thayer)

In one line, which is what the plugin reproduces from `EMBEDDING` (written into model metadata):

    e[i] = sin(valence_coefficient[i] * valence + arousal_coefficient[i] * arousal + phase[i])

with phase 0 (sine) or pi/2 (cosine). Properties this gives:
- range [-1, 1]; smooth, with Lipschitz constant `lipschitz_bound()` ~ 27.5 (Euclidean norms:
  a step of 0.01 in (v, a) moves the 64-vector by at most 0.275);
- each sine/cosine pair has constant length, so the map stretches every small step by the same
  factor, in every direction, all over the square (J^T J = 27.5^2 I): an error in embedding
  space weighs the same wherever a clip's emotion lies and whichever way it points;
- k = 1 (a half turn over [-1, 1]) makes each axis injective, so the first 32 values alone
  determine (valence, arousal), and so does the whole vector.

`decode` inverts it by least squares (a grid search over the square, then Gauss-Newton steps kept
inside it), so a network's noisy or shrunken output decodes to the nearest point of the code,
not to whatever two entries happen to say.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from preprocess.features import spec

EMBEDDING_SIZE: int = spec.EMBEDDING_SIZE
FIRST_HALF: int = spec.DYNAMICS_INPUTS

_AXES = {                            # axis name: (weight of valence, weight of arousal)
    "valence": (1.0, 0.0),
    "arousal": (0.0, 1.0),
    "energy": (0.5, 0.5),
    "tension": (-0.5, 0.5),
}
_HARMONICS = tuple(range(1, 9))      # k: angular frequency k * pi / 2 per unit of the axis


def _tables() -> tuple[list[float], list[float], list[float]]:
    valence_coefficient, arousal_coefficient, phase = [], [], []
    for wv, wa in _AXES.values():
        for k in _HARMONICS:
            w = k * math.pi / 2.0
            for ph in (0.0, math.pi / 2.0):          # sin, then cos
                valence_coefficient.append(w * wv)
                arousal_coefficient.append(w * wa)
                phase.append(ph)
    return valence_coefficient, arousal_coefficient, phase


_VC, _AC, _PH = _tables()

#: The definition as data: the exporter writes this into each model's metadata.
EMBEDDING = {
    "name": "kelly-emotion-embedding-1",
    "size": EMBEDDING_SIZE,
    "inputs": ["valence", "arousal"],
    "input_range": [-1.0, 1.0],
    "formula": "e[i] = sin(valence_coefficient[i] * valence + arousal_coefficient[i] * arousal + phase[i])",
    "axes": {name: list(weights) for name, weights in _AXES.items()},
    "harmonics": list(_HARMONICS),
    "angular_frequency": "k * pi / 2 radians per unit of the axis",
    "layout": "for axis in (valence, arousal, energy, tension): for k in 1..8: sin, cos",
    "first_half": "e[0:32] (valence and arousal) alone determine (valence, arousal); the DynamicsEngine gets them",
    "valence_coefficient": _VC,
    "arousal_coefficient": _AC,
    "phase": _PH,
}

_COEF = np.array([_VC, _AC], dtype=np.float64)      # [2, 64]
_PHASE = np.array(_PH, dtype=np.float64)            # [64]


def _check_size(n: int, first_half: bool) -> int:
    want = FIRST_HALF if first_half else EMBEDDING_SIZE
    if n != want:
        raise ValueError(f"an embedding{' first half' if first_half else ''} has {want} values, got {n}")
    return want


def embed(valence, arousal) -> np.ndarray:
    """float32 [..., 64] for valence, arousal in [-1, 1] (arrays broadcast together).

    Raises ValueError for NaN or values outside [-1, 1].
    """
    v = np.asarray(valence, dtype=np.float64)
    a = np.asarray(arousal, dtype=np.float64)
    v, a = np.broadcast_arrays(v, a)
    for name, x in (("valence", v), ("arousal", a)):
        if not np.isfinite(x).all():
            raise ValueError(f"{name} holds NaN or Inf")
        if x.size and (x.min() < -1.0 - 1e-6 or x.max() > 1.0 + 1e-6):
            raise ValueError(f"{name} must be in [-1, 1], got values in [{x.min()}, {x.max()}]")
    angle = v[..., None] * _COEF[0] + a[..., None] * _COEF[1] + _PHASE
    return np.sin(angle).astype(np.float32)


def lipschitz_bound(first_half: bool = False) -> float:
    """The Lipschitz constant L: ||embed(p) - embed(q)|| <= L * ||p - q|| (Euclidean norms).

    Each sine/cosine pair shares its coefficients c, and cos^2 + sin^2 = 1, so J^T J (J the
    Jacobian [64, 2]) is the constant matrix sum over pairs of c c^T; for this table it is
    s^2 times the identity, s = (pi / 2) * sqrt(1.5 * 204) ~ 27.48 (first half: sqrt(204) * pi / 2
    ~ 22.43). The map is a uniform local stretch by s, and L = s.
    """
    coef = _COEF[:, :FIRST_HALF] if first_half else _COEF
    gram = 0.5 * coef @ coef.T                       # the pairs' sum of c c^T: each c appears twice
    return float(np.sqrt(np.linalg.eigvalsh(gram).max()))


@functools.lru_cache(maxsize=2)
def _grid(first_half: bool, points: int = 41):
    axis = np.linspace(-1.0, 1.0, points)
    gv, ga = np.meshgrid(axis, axis, indexing="ij")
    gv, ga = gv.ravel(), ga.ravel()
    codes = embed(gv, ga).astype(np.float64)
    if first_half:
        codes = codes[:, :FIRST_HALF]
    return gv, ga, codes, np.sum(codes**2, axis=1)


def decode(embedding, first_half: bool = False, iterations: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """(valence, arousal), each [...], the least-squares point of the square for embedding [..., 64].

    With first_half=True the input is [..., 32] (the first 32 values) and only those are fitted.
    The fit: the best point of a 41 x 41 grid over [-1, 1]^2, then Gauss-Newton steps clipped to
    the square. Exact (to about 1e-6) on embed's output; on a noisy vector, the nearest code point.
    """
    e = np.asarray(embedding, dtype=np.float64)
    if e.ndim == 0:
        raise ValueError("decode expects an array [..., 64] (or [..., 32] with first_half=True)")
    n = _check_size(e.shape[-1], first_half)
    if not np.isfinite(e).all():
        raise ValueError("the embedding holds NaN or Inf")
    lead = e.shape[:-1]
    flat = e.reshape(-1, n)
    gv, ga, codes, code_norms = _grid(first_half)
    v = np.empty(flat.shape[0])
    a = np.empty(flat.shape[0])
    for start in range(0, flat.shape[0], 1024):
        block = flat[start:start + 1024]
        best = np.argmin(code_norms[None, :] - 2.0 * block @ codes.T, axis=1)
        v[start:start + 1024] = gv[best]
        a[start:start + 1024] = ga[best]
    coef = _COEF[:, :n]
    phase = _PHASE[:n]
    for _ in range(iterations):
        angle = v[:, None] * coef[0] + a[:, None] * coef[1] + phase
        residual = np.sin(angle) - flat                     # [N, n]
        slope = np.cos(angle)
        jv, ja = slope * coef[0], slope * coef[1]           # d e / d v, d e / d a
        # solve the 2x2 normal equations per row (with a tiny ridge for safety)
        hvv = np.sum(jv * jv, axis=1) + 1e-9
        haa = np.sum(ja * ja, axis=1) + 1e-9
        hva = np.sum(jv * ja, axis=1)
        gvv = np.sum(jv * residual, axis=1)
        gaa = np.sum(ja * residual, axis=1)
        det = hvv * haa - hva * hva
        step_v = (haa * gvv - hva * gaa) / det
        step_a = (hvv * gaa - hva * gvv) / det
        v = np.clip(v - step_v, -1.0, 1.0)
        a = np.clip(a - step_a, -1.0, 1.0)
    return v.reshape(lead), a.reshape(lead)
