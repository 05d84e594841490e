"""The library manifest: a small JSON file that says what a directory holds.

It carries the on-disk format version and the fingerprint version, so that a
library written by another tuneseek is detected and refused with a clear
message instead of being misread; and, when its vectors are held by a store of
their own (Milvus), which one (``"vectors"``: see :class:`tuneseek.store.vectors.VectorsSpec`).
Without that key the vectors are searched in memory with FAISS, built from the catalogue.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tuneseek.errors import FormatVersionError, LibraryError
from tuneseek.fileio import atomic_write_bytes

MANIFEST_NAME = "tuneseek.json"
FORMAT_NAME = "tuneseek-library"
FORMAT_VERSION = 1


def write_new(root: Path, *, fingerprint: str, vectors: dict | None = None) -> dict:
    """Write a fresh manifest for an empty library at ``root`` whose landmarks are of version ``fingerprint``
    (and whose vectors are held by the store ``vectors`` describes, when given)."""
    data = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if vectors is not None:
        data["vectors"] = vectors
    _write(root, data)
    return data


def set_vectors(root: Path, vectors: dict) -> dict:
    """Record which store holds the library's vectors (the caller holds the writer lock)."""
    data = json.loads((root / MANIFEST_NAME).read_text())
    data["vectors"] = vectors
    _write(root, data)
    return data


def _write(root: Path, data: dict) -> None:
    atomic_write_bytes(root / MANIFEST_NAME, json.dumps(data, indent=2).encode() + b"\n")


def read(root: Path, fingerprint: str) -> dict:
    """Read and check the manifest of the library at ``root``, refusing landmarks of another version than ``fingerprint``."""
    path = root / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LibraryError(root, f"not a tuneseek library (no {MANIFEST_NAME})") from None
    except (OSError, ValueError) as e:
        raise LibraryError(root, f"unreadable manifest {MANIFEST_NAME}: {e}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise LibraryError(root, f"not a tuneseek library ({MANIFEST_NAME} is not ours)")
    version = data.get("version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        hint = "upgrade tuneseek to open it" if newer else "re-index the music into a new library"
        raise FormatVersionError(
            root, f"library format version {version!r}, this tuneseek reads version {FORMAT_VERSION}: {hint}"
        )
    if data.get("fingerprint") != fingerprint:
        raise FormatVersionError(
            root,
            f"fingerprints of kind {data.get('fingerprint')!r}, this tuneseek makes {fingerprint!r}: "
            "re-index the music into a new library",
        )
    return data
