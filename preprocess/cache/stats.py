"""The per-band mean and standard deviation of each network's training inputs: computed once by
the preprocess job into ``<cache>/stats.json``, read back by the trainer, which folds them into
the network (its input_mean / input_std buffers; the exporter folds them into the first layer).

    write_input_stats("cache")                     # after a preprocess run (the job does it)
    mean, std = input_stats("cache", "melody")     # float32 [Din] each, or None when stale or absent

    moments = InputMoments()                       # the same statistics over any Rows blocks
    for block in blocks:
        moments.add_rows(block)
    mean, std = moments.mean_std()

The statistics are over the training split only, population std, accumulated block by block
(Chan et al.'s pairwise update of count, mean and sum of squared deviations, in float64), so a
cache bigger than memory costs one streamed pass. A band whose std is at most `STD_FLOOR` is
constant for the network's purposes and gets std 1 (standardising it subtracts the mean and
divides by nothing small). ``stats.json`` records the feature version and the cache identity
(`reader.cache_identity`) it was computed for; statistics of other content are never served.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from common.errors import KellyError
from preprocess.cache import reader
from preprocess.cache.manifest import current_feature_version
from preprocess.cache.rows import Rows
from preprocess.features import spec

STATS_NAME = "stats.json"
#: the smallest standard deviation a band keeps; at or below it the band's std is 1
STD_FLOOR = 1e-6


def floor_std(std: np.ndarray) -> np.ndarray:
    """`std` with every value at or below `STD_FLOOR` replaced by 1."""
    return np.where(std > STD_FLOOR, std, 1.0)


class InputMoments:
    """Count, mean and sum of squared deviations (M2) of a network's inputs band by band, merged
    block by block; float64."""

    def __init__(self):
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, count: int, mean: np.ndarray, m2: np.ndarray) -> None:
        """Merge a block's (count, mean [Din], M2 [Din])."""
        if count == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = count, mean, m2
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * count / total)
        self.count = total

    def add_rows(self, rows: Rows) -> None:
        """Merge the inputs of `rows` (`Rows.input_moments`: each distinct embedding once, weighted)."""
        self.add(*rows.input_moments())

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, population std floored by `floor_std`), float64 [Din] each; needs at least one row."""
        if self.count == 0:
            raise ValueError("no rows: the statistics are undefined")
        return self.mean, floor_std(np.sqrt(self.m2 / self.count))


def training_input_stats(cache_dir: Path, network: str) -> dict | None:
    """{"rows", "mean", "std"} of a network's training-split inputs, streamed block by block; None
    when the network has no training rows."""
    moments = InputMoments()
    try:
        for block in reader.iter_network_blocks(cache_dir, network):
            moments.add_rows(block.split_rows("train"))
    except KellyError:
        return None
    if moments.count == 0:
        return None
    mean, std = moments.mean_std()
    return {"rows": int(moments.count), "mean": [float(x) for x in mean], "std": [float(x) for x in std]}


def write_input_stats(cache_dir: Path) -> dict:
    """Compute `training_input_stats` for every network and write ``stats.json`` (atomically)."""
    identity = reader.cache_identity(cache_dir)
    networks = {}
    for network in spec.NETWORKS:
        stats = training_input_stats(cache_dir, network)
        if stats is not None:
            networks[network] = stats
    payload = {"feature_version": current_feature_version(), "identity": identity, "networks": networks}
    path = cache_dir / STATS_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)
    return payload


def stats_current(cache_dir: Path) -> bool:
    """Whether ``stats.json`` was computed for this cache's content and feature version."""
    try:
        stats = json.loads((cache_dir / STATS_NAME).read_text())
        return (stats.get("feature_version") == current_feature_version()
                and stats.get("identity") == reader.cache_identity(cache_dir))
    except (OSError, ValueError, KellyError):
        return False


def update_input_stats(cache_dir: Path) -> tuple[list[str], bool]:
    """Write ``stats.json`` unless it is current; returns (the networks it holds, whether it was
    computed now)."""
    if not stats_current(cache_dir):
        return sorted(write_input_stats(cache_dir)["networks"]), True
    return sorted(json.loads((cache_dir / STATS_NAME).read_text())["networks"]), False


def input_stats(cache_dir: str | Path, network: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-band (mean, std) of the network's training inputs, float32 [Din] each.

    None when the cache has no statistics for the network or they were computed for other content
    (the cache changed since; `kelly preprocess` recomputes them).
    """
    cache_dir = Path(cache_dir)
    reader.check_network(network)
    path = cache_dir / STATS_NAME
    if not path.is_file():
        return None
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KellyError(f"{path}: unreadable normalisation statistics ({exc}); run `kelly preprocess` again") from exc
    entry = stats.get("networks", {}).get(network)
    if entry is None or stats.get("feature_version") != current_feature_version():
        return None
    if stats.get("identity") != reader.cache_identity(cache_dir):
        return None
    return np.asarray(entry["mean"], dtype=np.float32), np.asarray(entry["std"], dtype=np.float32)
