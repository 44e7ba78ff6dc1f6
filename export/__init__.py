"""Trained networks → RTNeural JSON, and the proof that it computes what PyTorch computes."""
