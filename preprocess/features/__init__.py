"""Feature definitions: pure functions from decoded audio / note arrays to the vectors the networks learn.

`spec` says what every vector holds and carries the version; the other modules compute them.
"""
