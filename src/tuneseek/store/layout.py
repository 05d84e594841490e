"""A library directory: making an empty one (its catalogue, then its manifest, safely against a racing
process), and measuring what one holds.

The manifest is written last: a directory with one is a library, and :func:`create_library` run by
two processes at once leaves one library, not two half ones.
"""

from __future__ import annotations

import time
from pathlib import Path

from tuneseek.errors import LibraryBusyError, LibraryError
from tuneseek.results import LibraryStats
from tuneseek.store import manifest
from tuneseek.store.catalog import CATALOG_NAME, Catalog
from tuneseek.store.landmarks import SEGMENTS_DIR, files_size, segment_size
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
                        manifest.write_new(root, fingerprint=fingerprint, vectors=vectors)
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


def library_stats(root: Path, catalog: Catalog, *, embedded_space: str) -> LibraryStats:
    """How big the library at ``root`` is and what it holds, its catalogue read in one snapshot;
    ``embedded`` counts the tracks with vectors in ``embedded_space`` (musicnn's, named by the engine)."""
    with catalog.snapshot():
        tracks = catalog.tracks()
        sizes = catalog.segment_sizes()
        tagged, embedded = catalog.count_tagged(), catalog.count_embedded(embedded_space)
        spaces = {space: catalog.count_embedded(space) for space in catalog.spaces()}
        models = catalog.models()
        fingerprints = {ex: catalog.fingerprint_size(ex) for ex, m in models.items() if m["role"] == "fingerprint"}
    return LibraryStats(
        path=str(root),
        tracks=len(tracks),
        audio_hours=sum(t.duration for t in tracks) / 3600,
        landmarks=sum(t.n_landmarks for t in tracks),
        segments=len(sizes),
        index_bytes=sum(segment_size(root, s) for s in sizes),
        catalog_bytes=files_size(root.glob(CATALOG_NAME + "*")),
        tagged=tagged,
        embedded=embedded,
        spaces=spaces,
        models={ex: m["folder"] for ex, m in models.items()},
        fingerprints=fingerprints,
    )
