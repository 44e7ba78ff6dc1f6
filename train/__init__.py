"""Cache → trained networks: the five models, the training loop, checkpoints, history and evaluation.

Never imports librosa or reads raw data: a training run starts from the cache alone.
"""
