"""User-facing errors.

Anything the user can fix (a bad value, a missing or malformed file) raises
:class:`NmlabError` with a one-line message that names the field. The CLI turns it into
``nmlab <command>: error: <message>`` on stderr and exit status 2, without a traceback.
"""


class NmlabError(ValueError):
    """A problem with the user's input: one line, naming the field or file."""

    def __init__(self, message: str):
        # Keep it one line whatever the caller passed in.
        super().__init__(" ".join(str(message).split()))
