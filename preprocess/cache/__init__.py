"""The feature cache: HDF5 shards of per-network rows, a SQLite manifest, and the training reader.

- `layout`: how a network's rows are stored (the item's embedding once per item, compact targets)
  and decoded back into what the network sees; the cache format version.
- `shards`: `ItemResult` (what one item adds) and the shard file format, written whole and renamed.
- `manifest`: which items are done (in which shard), which failed and why; file hashes.
- `rows`: `Rows`, one network's rows as stored, the type the reader returns and the trainer uses.
- `reader`: a network's Rows for training, whole or in blocks (numpy, h5py and sqlite3 only).
- `stats`: the per-band mean and std of each network's training inputs (``stats.json``), computed
  after a preprocess run and read back for training.
- `writer`: the writing side: one writer per cache (`cache_lock`), shards written and committed
  (`ShardWriter`), the files on disk made to agree with the manifest (`clean_cache`).

See cache/README.md for the layout on disk.
"""
