"""The one exception type for problems the user can fix (bad input, missing weights, bad config).

Workflow scripts and the console command print its message alone, without a traceback; any other
exception is a bug and keeps its traceback.
"""


class SynthsodError(Exception):
    """A problem with the user's input or setup, described in plain words (file and reason)."""
