"""The emotion embedding: range, exact inversion, the first half alone, smoothness, noise."""
from __future__ import annotations

import json

import numpy as np
import pytest

from preprocess.features import spec
from preprocess.features.embedding import EMBEDDING, decode, embed, lipschitz_bound

GRID = np.linspace(-1.0, 1.0, 121)        # steps of 1/60
V, A = np.meshgrid(GRID, GRID, indexing="ij")


@pytest.fixture(scope="module")
def grid_embedding():
    return embed(V, A)


def test_shape_dtype_and_range(grid_embedding):
    assert grid_embedding.shape == (121, 121, spec.EMBEDDING_SIZE)
    assert grid_embedding.dtype == np.float32
    assert grid_embedding.min() >= -1.0 and grid_embedding.max() <= 1.0
    # the values use the range: every entry swings across most of [-1, 1] over the square
    spread = grid_embedding.reshape(-1, 64).max(axis=0) - grid_embedding.reshape(-1, 64).min(axis=0)
    assert spread.min() > 0.7


def test_round_trip_on_a_dense_grid(grid_embedding):
    v, a = decode(grid_embedding)
    assert v.shape == a.shape == V.shape
    assert np.abs(v - V).max() < 0.02 and np.abs(a - A).max() < 0.02
    assert np.abs(v - V).max() < 1e-4 and np.abs(a - A).max() < 1e-4        # in fact exact


def test_first_32_values_alone_determine_valence_and_arousal(grid_embedding):
    v, a = decode(grid_embedding[..., : spec.DYNAMICS_INPUTS], first_half=True)
    assert np.abs(v - V).max() < 1e-4 and np.abs(a - A).max() < 1e-4
    # and no two distinct points share a first half: nearest other grid point is far in code space
    first = grid_embedding[::6, ::6, :32].reshape(-1, 32).astype(np.float64)
    points = np.stack([V[::6, ::6].ravel(), A[::6, ::6].ravel()], axis=1)
    code_gap = np.linalg.norm(first[:, None] - first[None], axis=-1)
    point_gap = np.linalg.norm(points[:, None] - points[None], axis=-1)
    off_diagonal = ~np.eye(len(points), dtype=bool)
    assert (code_gap[off_diagonal] / point_gap[off_diagonal]).min() > 0.5


def test_smooth_with_a_bounded_lipschitz_constant():
    rng = np.random.default_rng(7)
    p = rng.uniform(-1, 1, (4000, 2))
    step = rng.normal(size=(4000, 2))
    step *= rng.uniform(1e-4, 0.05, (4000, 1)) / np.linalg.norm(step, axis=1, keepdims=True)
    q = np.clip(p + step, -1, 1)
    de = np.linalg.norm(embed(q[:, 0], q[:, 1]).astype(np.float64) - embed(p[:, 0], p[:, 1]), axis=1)
    dp = np.linalg.norm(q - p, axis=1)
    ratio = de / dp
    bound = lipschitz_bound()
    assert bound == pytest.approx(np.pi / 2 * np.sqrt(1.5 * 204), rel=1e-9)
    assert bound < 30.0
    assert ratio.max() <= bound * (1 + 1e-3)
    # the local stretch is the same everywhere: small steps are all scaled by about `bound`
    small = dp < 2e-3
    assert np.allclose(ratio[small], bound, rtol=0.02)
    assert lipschitz_bound(first_half=True) == pytest.approx(np.pi / 2 * np.sqrt(204), rel=1e-9)


def test_decode_is_robust_to_noise_and_shrinkage():
    rng = np.random.default_rng(3)
    p = rng.uniform(-1, 1, (3000, 2))
    clean = embed(p[:, 0], p[:, 1])
    noisy = clean + rng.normal(0.0, 0.2, clean.shape)              # a network's imperfect output
    v, a = decode(noisy)
    err = np.hypot(v - p[:, 0], a - p[:, 1])
    assert np.median(err) < 0.015 and err.max() < 0.06
    v, a = decode(noisy[:, :32], first_half=True)
    err = np.hypot(v - p[:, 0], a - p[:, 1])
    assert np.median(err) < 0.02 and err.max() < 0.08
    # a network trained with MSE shrinks uncertain outputs toward zero: the direction still decodes
    v, a = decode(0.4 * clean)
    assert np.abs(v - p[:, 0]).max() < 0.01 and np.abs(a - p[:, 1]).max() < 0.01


def test_decode_stays_inside_the_square():
    rng = np.random.default_rng(11)
    v, a = decode(rng.uniform(-1, 1, (500, 64)))                    # vectors far from any code
    assert np.all(np.abs(v) <= 1.0) and np.all(np.abs(a) <= 1.0)


def test_definition_as_data_reproduces_embed():
    definition = json.loads(json.dumps(EMBEDDING))                  # what the exporter writes
    assert definition["size"] == 64 == len(definition["phase"])
    rng = np.random.default_rng(5)
    for v, a in rng.uniform(-1, 1, (50, 2)):
        by_formula = [
            np.sin(cv * v + ca * a + ph)
            for cv, ca, ph in zip(definition["valence_coefficient"], definition["arousal_coefficient"], definition["phase"])
        ]
        assert np.allclose(by_formula, embed(v, a), atol=1e-6)
    # the first half uses valence and arousal only, one each
    vc = np.array(definition["valence_coefficient"])
    ac = np.array(definition["arousal_coefficient"])
    assert np.all((vc[:16] != 0) & (ac[:16] == 0)) and np.all((vc[16:32] == 0) & (ac[16:32] != 0))


def test_known_values_and_determinism():
    e = embed(0.0, 0.0)
    assert np.allclose(e[0::2], 0.0) and np.allclose(e[1::2], 1.0)       # sin 0, cos 0
    e = embed(1.0, -1.0)
    assert e[0] == pytest.approx(1.0) and e[1] == pytest.approx(0.0, abs=1e-7)   # sin, cos of pi/2 * valence
    assert e[16] == pytest.approx(-1.0)                                   # sin of pi/2 * arousal
    assert np.array_equal(embed(0.3, -0.6), embed(0.3, -0.6))
    batch = embed(np.array([0.1, -0.5]), 0.25)                            # broadcasting
    assert batch.shape == (2, 64) and np.array_equal(batch[1], embed(-0.5, 0.25))


def test_bad_input_raises():
    with pytest.raises(ValueError, match="valence"):
        embed(1.5, 0.0)
    with pytest.raises(ValueError, match="arousal"):
        embed(0.0, np.nan)
    with pytest.raises(ValueError, match="64 values"):
        decode(np.zeros(63))
    with pytest.raises(ValueError, match="32 values"):
        decode(np.zeros(64), first_half=True)
    with pytest.raises(ValueError, match="NaN"):
        decode(np.full(64, np.nan))
