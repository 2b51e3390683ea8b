"""The one exception type users see: a message that says what, where, and what to do."""


class ModelsatError(Exception):
    """An error caused by the user's input or environment; the CLI prints it without a traceback."""
