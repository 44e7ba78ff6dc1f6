"""Datasets → feature cache: readers, feature definitions, the HDF5 cache and the `preprocess` job.

Importing this package is cheap: heavy libraries (librosa, symusic, h5py) are imported by the
modules that use them, so `train` can read the cache without pulling in audio code.
"""
