"""One writer at a time: an advisory ``flock`` on a file in the library.

Readers never take it (SQLite in WAL mode and immutable index segments let them
read while a writer works). The lock dies with its process, so a ``kill -9``
never leaves a library locked. Every writer takes it before changing anything, so a library
the user cannot write (another user's, or on a read-only mount) is refused here, in one line.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from tuneseek.errors import LibraryBusyError, LibraryError

LOCK_NAME = "writer.lock"


class WriterLock:
    """Exclusive, non-blocking writer lock; use as a context manager."""

    def __init__(self, root: Path):
        self.root = root
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`LibraryBusyError` (another writer holds it) or
        :class:`LibraryError` (the library cannot be written: no permission, read-only file system)."""
        try:
            fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            if isinstance(e, PermissionError) or e.errno == errno.EROFS:
                raise LibraryError(self.root, f"read-only: cannot write here ({e.strerror}: {LOCK_NAME})") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LibraryBusyError(
                self.root, f"another tuneseek process (pid {holder}) is writing to it; try again when it has finished"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
