"""Errors a person can act on.

Every error names the thing it is about (a file, a library) and the reason, so
that the command line can print it as one line without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class TuneseekError(Exception):
    """Base class of every error tuneseek raises on purpose."""


class AudioError(TuneseekError):
    """A file could not be turned into usable audio (missing, corrupt, silent, too short...)."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LibraryError(TuneseekError):
    """The library directory cannot be used as asked (wrong format, locked, unknown track...)."""

    def __init__(self, where: str | Path, reason: str):
        self.where = str(where)
        self.reason = reason
        super().__init__(f"library {self.where}: {reason}")


class TrackNotFound(LibraryError):
    """No track of the library has that id or path."""


class LibraryBusyError(LibraryError):
    """Another process holds the library's writer lock."""


class FormatVersionError(LibraryError):
    """The library on disk was written by another, incompatible version of tuneseek."""


class UsageError(TuneseekError):
    """A request that cannot be carried out as given (bad option value, bad degradation spec...)."""


class DatasetError(TuneseekError):
    """A training dataset cannot be read as asked (missing file, malformed row, empty split...)."""

    def __init__(self, where: str | Path, reason: str):
        self.where = str(where)
        self.reason = reason
        super().__init__(f"{self.where}: {reason}")


class ModelError(TuneseekError):
    """A model's weights are missing, corrupt, of the wrong shape, or cannot be fetched.

    ``where`` (a file, a wheel, a model name) is put in front of the reason when given.
    """

    def __init__(self, reason: str, where: str | Path | None = None):
        self.where = None if where is None else str(where)
        self.reason = reason
        super().__init__(reason if where is None else f"{self.where}: {reason}")


class WorkersLost(TuneseekError):
    """Worker processes died under a running job (killed, out of memory, or they could not start)."""
