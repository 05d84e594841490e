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
