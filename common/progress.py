"""A tiny progress protocol that core/ reports through and Processing feedback adapts to."""
from __future__ import annotations

from typing import Protocol

from .errors import Canceled


class Progress(Protocol):
    def set_progress(self, percent: float) -> None: ...
    def log(self, message: str) -> None: ...
    def is_canceled(self) -> bool: ...


class NullProgress:
    """Progress that reports nothing and is never canceled (scripts, tests)."""

    def set_progress(self, percent: float) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def is_canceled(self) -> bool:
        return False


class PrintProgress(NullProgress):
    """Progress for command-line use: log lines go to stdout."""

    def log(self, message: str) -> None:
        print(message, flush=True)


class SubProgress:
    """Maps 0–100 % of a sub-task onto [start, end] % of a parent progress."""

    def __init__(self, parent: Progress, start: float, end: float):
        self.parent, self.start, self.end = parent, start, end

    def set_progress(self, percent: float) -> None:
        self.parent.set_progress(self.start + (self.end - self.start) * percent / 100.0)

    def log(self, message: str) -> None:
        self.parent.log(message)

    def is_canceled(self) -> bool:
        return self.parent.is_canceled()


def check_canceled(progress: Progress) -> None:
    """Raise Canceled when the user asked to stop; call once per window/batch."""
    if progress.is_canceled():
        raise Canceled("Canceled by the user.")


def or_null(progress: Progress | None) -> Progress:
    return progress if progress is not None else NullProgress()
