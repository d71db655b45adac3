"""Typed errors raised by core/ and shown to people as-is by the Processing faces."""


class InputError(ValueError):
    """Bad input: the message names the file/band/layer and what was expected."""


class Canceled(RuntimeError):
    """The user canceled a long task; nothing half-written is left behind. The message may add what was kept."""

    DEFAULT = "Canceled by the user."

    def __init__(self, message: str = DEFAULT):
        super().__init__(message)
