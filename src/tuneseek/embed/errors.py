"""The error raised when a pretrained model cannot be obtained, read, converted or loaded.

Kept in its own small module (not in :mod:`tuneseek.errors`) so the model engines can grow
without touching the core's error list; it is still a :class:`~tuneseek.errors.TuneseekError`,
so the command line prints it as one line, without a traceback.
"""

from __future__ import annotations

from pathlib import Path

from tuneseek.errors import TuneseekError


class ModelError(TuneseekError):
    """A model's weights are missing, corrupt, of the wrong shape, or cannot be fetched.

    ``where`` (a file, a wheel, a model name) is put in front of the reason when given.
    """

    def __init__(self, reason: str, where: str | Path | None = None):
        self.where = None if where is None else str(where)
        self.reason = reason
        super().__init__(reason if where is None else f"{self.where}: {reason}")
