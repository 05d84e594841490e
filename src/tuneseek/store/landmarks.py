"""The landmark index: hash -> postings, in immutable segments on disk.

A posting is one landmark of one track, stored as a *global frame*: the
track's base frame (given by the catalogue) plus the landmark's anchor frame.
Tracks sit end to end on that one axis, so a posting needs 4 bytes and a hit's
global frame minus the clip's anchor frame names track and offset together.

A segment is a directory written aside and renamed into place, holding the
postings sorted by hash (``frames.npy``, memory-mapped) and the hashes in
whichever of two forms is smaller on disk:

- *bucketed* (up to ~8 M postings): the low 8 bits of each posting's hash
  (``low.npy``, one byte each) and where each value of the high 13 bits starts
  (``buckets.npy``); the full sorted hashes are rebuilt in memory on open and
  searched with ``searchsorted`` — 5 bytes a posting on disk;
- *CSR*: where each hash's run starts (``offsets.npy``, ``HASH_SPACE + 1``
  entries, memory-mapped), so a lookup is two reads — 4 bytes a posting plus a
  fixed 8 MB.

New tracks land in new segments; ``merge`` rewrites several into one and drops
postings of removed tracks.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tuneseek.fileio import fsync_dir

SEGMENTS_DIR = "landmarks"
#: Hashes are below this (the landmark hashes' 21 bits: :data:`tuneseek.fingerprint.hashes.HASH_BITS`).
HASH_SPACE = 1 << 21
LOW_BITS = 8
N_BUCKETS = HASH_SPACE >> LOW_BITS
#: bucketed segments larger than this get a CSR table in memory when opened
IN_MEMORY_CSR_POSTINGS = 100_000


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


class Segment:
    """One immutable segment: memory-mapped from its directory, or held in memory (:meth:`of_postings`)."""

    def __init__(self, path: Path):
        self.path = path
        self.name = path.name
        # a plain ndarray view of the map: indexing a np.memmap costs more than the lookup
        self.frames = np.load(path / "frames.npy", mmap_mode="r").view(np.ndarray)
        if (path / "offsets.npy").exists():
            self.offsets = np.load(path / "offsets.npy", mmap_mode="r").view(np.ndarray)
            self.hashes = None
        else:
            buckets = np.load(path / "buckets.npy")
            high = np.repeat(np.arange(N_BUCKETS, dtype=np.uint32), np.diff(buckets))
            self.offsets, self.hashes = _search_table((high << LOW_BITS) | np.load(path / "low.npy"))

    @classmethod
    def of_postings(cls, name: str, hashes: np.ndarray, frames: np.ndarray) -> Segment:
        """A segment held in memory, from postings sorted by (hash, frame): a shard's part of segment ``name``."""
        seg = cls.__new__(cls)
        seg.path, seg.name, seg.frames = None, name, frames
        seg.offsets, seg.hashes = _search_table(hashes)
        return seg

    def __len__(self) -> int:
        return len(self.frames)

    def ranges(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and end (exclusive) of each hash's run of postings."""
        if self.offsets is not None:
            return self.offsets[hashes].astype(np.int64), self.offsets[hashes + 1].astype(np.int64)
        return (
            np.searchsorted(self.hashes, hashes, side="left"),
            np.searchsorted(self.hashes, hashes, side="right"),
        )

    def gather(self, start: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The postings of runs ``start[i] : start[i] + counts[i]``: ``(i, global frame)`` per posting."""
        total = int(counts.sum())
        qi = np.repeat(np.arange(len(start)), counts)
        first = np.cumsum(counts) - counts
        pos = np.repeat(start - first, counts) + np.arange(total)
        return qi, self.frames[pos].astype(np.int64)

    def hits(
        self, distinct: np.ndarray, inverse: np.ndarray, keep: np.ndarray, *, ranges: tuple | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The postings of needles ``distinct[inverse]`` (sorted distinct hashes, and which one each needle
        is), leaving out the hashes ``keep`` is false for: ``(needle index, global frame)`` per posting,
        in needle order and, within a needle, in the segment's order. ``ranges`` are ``distinct``'s
        :meth:`ranges` when the caller has them already."""
        start, end = ranges if ranges is not None else self.ranges(distinct)
        return self.gather(start[inverse], np.where(keep, end - start, 0)[inverse])

    def hash_counts(self) -> np.ndarray:
        """Postings of each hash value (``HASH_SPACE`` counts)."""
        if self.offsets is not None:
            return np.diff(np.asarray(self.offsets)).astype(np.int64)
        return np.bincount(self.hashes, minlength=HASH_SPACE).astype(np.int64)

    def postings_between(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``(hash, global frame)`` postings whose frame lies in ``[lo, hi)``: one pass over the frames."""
        pos = np.flatnonzero((self.frames >= lo) & (self.frames < hi))
        if self.hashes is not None:
            h = np.asarray(self.hashes[pos])
        else:  # the run holding each position: the last start at or before it
            h = (np.searchsorted(np.asarray(self.offsets), pos, side="right") - 1).astype(np.uint32)
        return h, self.frames[pos].astype(np.int64)

    def postings_of_hashes(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``(hash, global frame)`` postings of the hashes in ``[lo, hi)``, in the segment's order:
        one contiguous run, as postings are sorted by hash."""
        if self.offsets is not None:
            a, b = int(self.offsets[lo]), int(self.offsets[hi])
            h = np.repeat(np.arange(lo, hi, dtype=np.uint32), np.diff(np.asarray(self.offsets[lo : hi + 1])))
        else:
            a, b = np.searchsorted(self.hashes, [lo, hi])
            h = np.asarray(self.hashes[a:b])
        return h, np.asarray(self.frames[a:b])


def _search_table(hashes: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(offsets, hashes)`` to look sorted ``hashes`` up by: binary search over millions of hashes misses
    the cache at every step, so a large segment gets a CSR table in memory (8 MB: each lookup two reads)."""
    if len(hashes) > IN_MEMORY_CSR_POSTINGS:
        return _run_starts(hashes, HASH_SPACE), None
    return None, hashes


def _run_starts(sorted_keys: np.ndarray, n_keys: int) -> np.ndarray:
    """CSR table: where each key's run starts in ``sorted_keys`` (plus the total at the end)."""
    starts = np.zeros(n_keys + 1, np.uint32)
    np.cumsum(np.bincount(sorted_keys, minlength=n_keys), out=starts[1:])
    return starts


def write_segment(root: Path, hashes: np.ndarray, frames: np.ndarray, *, layout: str | None = None) -> str:
    """Write postings as a new segment under ``root/landmarks``; return its name.

    ``layout`` is "csr" or "bucketed"; by default, whichever is smaller.
    The segment is complete and durable before its directory gets its final
    name; it becomes part of the index only once the catalogue lists it.
    """
    # by hash, then frame: the same postings make the same bytes however they were batched or merged
    # (a library indexed anywhere, in any order of commits, compacts to the same files)
    order = np.argsort((hashes.astype(np.uint64) << 32) | frames.astype(np.uint64), kind="stable")
    counts = np.bincount(hashes, minlength=HASH_SPACE)
    with _SegmentWriter(root) as out:
        out.append(frames[order].astype(np.uint32))
        return out.finish(counts, layout)


#: a merge reads and sorts about this many postings at a time
MERGE_CHUNK_POSTINGS = 4_000_000


def merge_segments(root: Path, segments: list[Segment], live: Callable[[np.ndarray], np.ndarray]) -> tuple[str, int]:
    """Write one new segment holding the postings of ``segments`` whose global frames ``live`` keeps (a mask);
    return its name and how many postings it holds (0: nothing written, name empty).

    The segments are read range of hashes by range of hashes (each holds its postings sorted by hash),
    so memory stays near :data:`MERGE_CHUNK_POSTINGS` postings whatever their size: merging everything
    at once held about 56 bytes a posting, 4 GB for a 100 h library. The bytes are those
    :func:`write_segment` writes for the same postings.
    """
    total = sum(len(seg) for seg in segments)
    step = max(1, HASH_SPACE * MERGE_CHUNK_POSTINGS // max(total, 1))
    counts = np.zeros(HASH_SPACE, np.int64)
    with _SegmentWriter(root) as out:
        for lo in range(0, HASH_SPACE, step):
            hi = min(lo + step, HASH_SPACE)
            parts = [seg.postings_of_hashes(lo, hi) for seg in segments]
            h = np.concatenate([p[0] for p in parts])
            g = np.concatenate([p[1] for p in parts]).astype(np.int64)
            keep = live(g)
            h, g = h[keep], g[keep]
            order = np.argsort((h.astype(np.uint64) << 32) | g.astype(np.uint64), kind="stable")
            out.append(g[order].astype(np.uint32))
            counts[lo:hi] = np.bincount(h - lo, minlength=hi - lo) if len(h) else 0
        n = int(counts.sum())
        return (out.finish(counts), n) if n else ("", 0)


class _SegmentWriter:
    """A segment written aside: frames appended in order, then the hash table from each hash's count.

    :meth:`finish` makes it durable and gives it its name; leaving the ``with`` block without it
    removes what was written.
    """

    def __init__(self, root: Path):
        self.seg_root = root / SEGMENTS_DIR
        self.seg_root.mkdir(exist_ok=True)
        self.name = f"seg-{time.time_ns():x}-{os.getpid()}"
        self.tmp = self.seg_root / f".tmp-{self.name}"
        self.tmp.mkdir()
        self.frames = open(self.tmp / "frames.raw", "wb")
        self.n = 0

    def __enter__(self) -> _SegmentWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.frames.close()
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def append(self, frames: np.ndarray) -> None:
        self.frames.write(np.ascontiguousarray(frames, np.uint32).tobytes())
        self.n += len(frames)

    def finish(self, counts: np.ndarray, layout: str | None = None) -> str:
        """Write the hash table for postings ``counts`` per hash (in the order appended), rename into place."""
        self.frames.close()
        raw = self.tmp / "frames.raw"
        with open(self.tmp / "frames.npy", "wb") as f, open(raw, "rb") as src:
            header = {"descr": np.dtype(np.uint32).str, "fortran_order": False, "shape": (self.n,)}
            np.lib.format.write_array_header_1_0(f, header)
            shutil.copyfileobj(src, f, 1 << 24)
            f.flush()
            os.fsync(f.fileno())
        raw.unlink()
        n = self.n
        if layout is None:
            layout = "csr" if 4 * n + 4 * (HASH_SPACE + 1) < 5 * n + 4 * (N_BUCKETS + 1) else "bucketed"
        starts = np.zeros(HASH_SPACE + 1, np.uint32)
        np.cumsum(counts, out=starts[1:])
        if layout == "csr":
            _save(self.tmp / "offsets.npy", starts)
        else:
            _save(self.tmp / "buckets.npy", starts[:: 1 << LOW_BITS])
            low = (np.arange(HASH_SPACE, dtype=np.uint32) & ((1 << LOW_BITS) - 1)).astype(np.uint8)
            _save(self.tmp / "low.npy", np.repeat(low, counts))
        fsync_dir(self.tmp)
        os.rename(self.tmp, self.seg_root / self.name)
        fsync_dir(self.seg_root)
        return self.name


def segment_size(root: Path, name: str) -> int:
    """Bytes on disk of one segment; 0 for one another process merged away since it was listed."""
    return files_size((root / SEGMENTS_DIR / name).glob("*"))


def files_size(paths) -> int:
    """Bytes on disk of the files among ``paths``, skipping any removed meanwhile.

    Another process may delete what was just listed (a merged-away segment, the WAL file SQLite
    removes when its last connection closes): a size report must not fail for it.
    """
    total = 0
    for p in paths:
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            continue
    return total


def remove_unlisted(root: Path, keep: set[str]) -> None:
    """Delete segment directories the catalogue does not list (left by an interrupted write)."""
    seg_root = root / SEGMENTS_DIR
    if not seg_root.exists():
        return
    for d in seg_root.iterdir():
        if d.name not in keep:
            shutil.rmtree(d, ignore_errors=True)
