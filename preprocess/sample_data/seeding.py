"""Independent, reproducible random streams: one per (seed, name), so adding an item moves no other."""
from __future__ import annotations

import hashlib

import numpy as np


def rng_for(seed: int, *names: object) -> np.random.Generator:
    """A generator determined by `seed` and the names (e.g. "deam", 12); stable across runs and platforms."""
    digest = hashlib.sha256(":".join(str(n) for n in (seed, *names)).encode("utf-8")).digest()
    return np.random.default_rng([int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)])
