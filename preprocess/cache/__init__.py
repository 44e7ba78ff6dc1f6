"""The feature cache: HDF5 shards of per-network rows, a SQLite manifest, and the training reader.

- `shards`: `ItemResult` (what one item adds) and the shard file format, written whole and renamed.
- `manifest`: which items are done (in which shard), which failed and why; file hashes.
- `reader`: numpy arrays per network for training (numpy, h5py and sqlite3 only).

See cache/README.md for the layout on disk.
"""
