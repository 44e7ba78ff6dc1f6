"""The ground every stage stands on: the user-facing error, file writing, folder locks.

It imports no stage (preprocess, train, export, kelly), and every stage may import it.
"""
