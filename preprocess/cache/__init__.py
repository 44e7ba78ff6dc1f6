"""The feature cache: HDF5 shards of per-network rows, a SQLite manifest, and the training reader.

- `layout`: how a network's rows are stored (the item's embedding once per item, compact targets)
  and decoded back into what the network sees; the cache format version.
- `shards`: `ItemResult` (what one item adds) and the shard file format, written whole and renamed.
- `manifest`: which items are done (in which shard), which failed and why; file hashes.
- `rows`: `Rows`, one network's rows as stored, the type the reader returns and the trainer uses.
- `reader`: a network's Rows for training, whole or in blocks (numpy, h5py and sqlite3 only).

See cache/README.md for the layout on disk.
"""
