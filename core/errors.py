"""Typed errors raised by core/ and shown to people as-is by the Processing faces."""


class InputError(ValueError):
    """Bad input: the message names the file/band/layer and what was expected."""


class Canceled(RuntimeError):
    """The user canceled a long task; nothing half-written is left behind."""
