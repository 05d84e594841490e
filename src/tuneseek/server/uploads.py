"""Uploaded audio: streamed to a temporary file under a size limit, its kind told by its bytes.

A client's file name and content type say nothing trustworthy, so the first bytes decide: a
container the decoders read gets the matching suffix (some decoders go by it), anything else is
refused before a decoder sees it. A clip to identify goes to a temporary file, always deleted
(:func:`saved`); a file to add to the library is kept under a name made of its content
(:func:`kept`), never the name the client gave.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import UploadFile

from tuneseek.server.problems import Problem

#: Bytes read from the upload at a time.
CHUNK = 1 << 20
#: Enough of the start of a file to recognise its container.
SNIFF_BYTES = 16


def sniff(head: bytes) -> str | None:
    """The file suffix of the audio container that starts with ``head``, or ``None`` for anything else."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return ".wav"
    if head[:4] == b"fLaC":
        return ".flac"
    if head[:4] == b"OggS":
        return ".ogg"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return ".aiff"
    if head[4:8] == b"ftyp":
        return ".m4a"
    if head[:4] == b"\x1aE\xdf\xa3":
        return ".webm"  # Matroska / WebM: what a browser's MediaRecorder makes
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return ".mp3"  # an ID3 tag, or an MPEG audio frame's sync word
    return None


def _sniffed(upload: UploadFile) -> tuple[bytes, str]:
    """The upload's first bytes and the suffix of its container; :class:`Problem` 400 or 415 otherwise."""
    head = upload.file.read(SNIFF_BYTES)
    if not head:
        raise Problem(400, f"{upload.filename or 'the upload'}: empty file")
    suffix = sniff(head)
    if suffix is None:
        raise Problem(
            415,
            f"{upload.filename or 'the upload'}: not an audio file this server reads "
            "(WAV, FLAC, Ogg, MP3, AAC/M4A, AIFF, WebM)",
        )
    return head, suffix


def _copy(upload: UploadFile, head: bytes, out, limit_bytes: int) -> str:
    """Write the upload (its ``head`` already read) to ``out``; its SHA-256; :class:`Problem` 413 past the limit."""
    digest = hashlib.sha256(head)
    out.write(head)
    size = len(head)
    while chunk := upload.file.read(CHUNK):
        size += len(chunk)
        if size > limit_bytes:
            raise Problem(413, f"upload larger than {limit_bytes / 1e6:g} MB")
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest()


def spooled(upload: UploadFile, limit_bytes: int) -> str:
    """The upload copied to a temporary file of its sniffed kind: its path, for the caller to delete
    when done (a job reading it after the request has been answered); nothing is left when refused.

    Raises :class:`Problem` 400 for an empty upload, 413 beyond ``limit_bytes``, 415 for bytes
    that are not a known audio container.
    """
    head, suffix = _sniffed(upload)
    fd, path = tempfile.mkstemp(prefix="tuneseek-upload-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            _copy(upload, head, out, limit_bytes)
    except BaseException:
        os.unlink(path)
        raise
    return path


@contextmanager
def saved(upload: UploadFile, limit_bytes: int) -> Iterator[str]:
    """The upload as a temporary file (:func:`spooled`), deleted on leaving."""
    path = spooled(upload, limit_bytes)
    try:
        yield path
    finally:
        os.unlink(path)


def kept(upload: UploadFile, limit_bytes: int, folder: Path) -> Path:
    """The upload stored for good in ``folder``, named by its content (the same audio uploaded twice is
    one file), checked as :func:`saved` checks it; nothing is left behind when it is refused."""
    head, suffix = _sniffed(upload)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _copy(upload, head, out, limit_bytes)
        final = folder / f"{digest[:32]}{suffix}"
        os.replace(tmp, final)
        return final
    except BaseException:
        os.unlink(tmp)
        raise
