"""From an audio file to its landmarks, streaming, in bounded memory.

This is what an indexing worker runs for each file: decode in chunks at the
fingerprint rate, pick peaks incrementally, pair them, and hash the file's
bytes so that an unchanged file is recognised later.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from tuneseek import audio
from tuneseek.errors import AudioError
from tuneseek.filefacts import FileFacts
from tuneseek.fingerprint.hashes import LandmarkStream
from tuneseek.fingerprint.params import DEFAULT, FingerprintParams
from tuneseek.fingerprint.peaks import Peaks, PeakStream

#: Fewer landmarks than this per minute of sound means there is nothing to recognise.
MIN_LANDMARKS_PER_MINUTE = 20
#: soxr quality used on both the index and the query side (the two must agree).
RESAMPLE_QUALITY = "LQ"


def content_hash(path: str) -> str:
    """SHA-256 of the file's bytes (hex, first 128 bits); identifies unchanged files whatever their name.

    SHA-256 rather than BLAKE2b: with the CPU's SHA instructions it runs at ~1.8 GB/s
    here against ~0.95, and every indexed file is hashed whole.
    """
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:32]


@dataclass(frozen=True)
class FileFingerprint(FileFacts):
    """Everything the library stores about one file: its facts and its landmarks."""

    n_frames: int
    hashes: np.ndarray  # uint32
    frames: np.ndarray  # uint32, anchor frame within the track


def check_peaks(path: str, peaks: Peaks, seconds: float) -> None:
    """Refuse audio with nothing to fingerprint (silence, near-silence, pure DC)."""
    _check_counts(path, len(peaks), peaks.loud_frames, seconds)


def _check_counts(path: str, n_peaks: int, loud_frames: int, seconds: float) -> None:
    """:func:`check_peaks` from the counts alone (a streamed track keeps no peaks)."""
    if loud_frames == 0:
        raise AudioError(path, "silent: no sound above the noise floor")
    if n_peaks < max(4, MIN_LANDMARKS_PER_MINUTE * seconds / 60):
        raise AudioError(path, f"too little to fingerprint: {n_peaks} spectral peaks in {seconds:.1f} s")


def fingerprint_file(path: str, *, params: FingerprintParams = DEFAULT) -> FileFingerprint:
    """Decode ``path`` in chunks and return its landmarks. Raises :class:`AudioError`.

    Peaks are paired as they come (:class:`LandmarkStream`) and not kept, so a file takes
    its landmarks' memory (8 bytes each, about 9 MB per audio hour of music) plus a few MB,
    however long it is.
    """
    path = os.path.abspath(path)
    info = audio.probe(path)
    try:
        st = os.stat(path)
        digest = content_hash(path)
    except OSError as e:
        raise AudioError(path, e.strerror or str(e)) from e
    peaks = PeakStream(params)
    pairs = LandmarkStream(params)
    found: list[tuple[np.ndarray, np.ndarray]] = []
    n_samples = n_peaks = n_frames = loud_frames = 0

    def take(new: Peaks) -> None:
        nonlocal n_peaks, n_frames, loud_frames
        n_peaks += len(new)
        n_frames += new.frames
        loud_frames += new.loud_frames
        found.append(pairs.feed(new))

    for chunk in audio.stream(path, params.sr, quality=RESAMPLE_QUALITY):
        n_samples += len(chunk)
        take(peaks.feed(chunk))
    take(peaks.finish())
    found.append(pairs.finish())
    seconds = n_samples / params.sr
    if n_samples < params.n_fft:
        raise AudioError(path, f"too short: {seconds:.2f} s of audio")
    _check_counts(path, n_peaks, loud_frames, seconds)
    return FileFingerprint(
        path=path,
        content_hash=digest,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        duration=seconds,
        sample_rate=info.sample_rate,
        channels=info.channels,
        title=info.title,
        artist=info.artist,
        n_frames=n_frames,
        hashes=np.concatenate([h for h, _ in found]),
        frames=np.concatenate([t for _, t in found]),
    )
