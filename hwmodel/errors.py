"""User-facing errors.

Anything the user can fix (a bad value, a missing or malformed file) raises
:class:`NmlabError` with a one-line message that names the field. The CLI turns it into
``nmlab <command>: error: <message>`` on stderr and exit status 2, without a traceback.
"""

#: Longest message kept whole; a longer one (a value quoted in full) keeps its head and tail.
MAX_MESSAGE_CHARS = 1000


class NmlabError(ValueError):
    """A problem with the user's input: one line, naming the field or file."""

    def __init__(self, message: str):
        # Keep it one line whatever the caller passed in, and short: the field comes first.
        text = " ".join(str(message).split())
        if len(text) > MAX_MESSAGE_CHARS:
            head, tail = MAX_MESSAGE_CHARS - 200, 150
            text = f"{text[:head]} [... {len(text) - head - tail:,} characters cut ...] {text[-tail:]}"
        super().__init__(text)
