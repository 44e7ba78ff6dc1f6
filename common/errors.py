"""The one exception type the command line turns into a readable message and a non-zero exit."""


class KellyError(Exception):
    """A user-facing error: the message names the file (or setting) and what is wrong with it."""
