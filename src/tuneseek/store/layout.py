"""Making an empty library directory: its catalogue, then its manifest, safely against a racing process.

The manifest is written last: a directory with one is a library, and :func:`create_library` run by
two processes at once leaves one library, not two half ones.
"""

from __future__ import annotations

import time
from pathlib import Path

from tuneseek.errors import LibraryBusyError, LibraryError
from tuneseek.store import manifest
from tuneseek.store.catalog import CATALOG_NAME, Catalog
from tuneseek.store.landmarks import SEGMENTS_DIR
from tuneseek.store.lock import LOCK_NAME, WriterLock

#: What a library directory holds before its manifest, the last file created, exists.
OWN_NAMES = {manifest.MANIFEST_NAME, LOCK_NAME, SEGMENTS_DIR} | {
    CATALOG_NAME + suffix for suffix in ("", "-wal", "-shm", "-journal")
}
#: How long to wait for another process that is creating the same library.
CREATE_WAIT_SECONDS = 10.0


def create_library(root: Path, *, fingerprint: str, vectors: dict | None = None) -> None:
    """Make an empty library at ``root`` whose landmarks will be of version ``fingerprint`` (and whose
    vectors the store ``vectors`` holds, as the manifest records it; ``None``: FAISS in memory).

    Refuses a directory holding anything else (:class:`LibraryError`); waits for another process
    that is creating the same library.
    """
    strangers = (
        [p.name for p in root.iterdir() if not p.name.startswith(".") and p.name not in OWN_NAMES]
        if root.exists()
        else []
    )
    if strangers:
        raise LibraryError(root, "directory is not empty and is not a tuneseek library")
    try:
        root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + CREATE_WAIT_SECONDS
        while True:
            try:
                with WriterLock(root):
                    if not (root / manifest.MANIFEST_NAME).exists():
                        Catalog(root, create=True).close()
                        manifest.write_new(root, fingerprint, vectors)
                return
            except LibraryBusyError:
                # another process is creating it (or already writing to it): wait for its manifest
                if (root / manifest.MANIFEST_NAME).exists():
                    return
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    except PermissionError as e:
        raise LibraryError(root, f"cannot create: {e.strerror}") from e
