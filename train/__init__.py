"""Cache → trained networks: the five models, the training loop, checkpoints, history and evaluation.

Never imports librosa or reads raw data: a training run starts from the cache alone. From
`preprocess` it imports only the cache's reading side (`preprocess.cache`: reader, rows, layout,
stats) and the feature definition (`preprocess.features.spec`, and `preprocess.features.embedding`,
whose formula is part of what the vectors mean); tests/test_dependencies.py checks it.
"""
