"""The landmark index as one object: segments on disk, the stop-list, lookup and per-track voting.

This is the landmark engine behind the :class:`~tuneseek.fingerprint.identifier.Identifier`
seam. The library hands it the catalogue's view (segment names and live tracks) with
:meth:`LandmarkIndex.refresh`, and asks it for :meth:`LandmarkIndex.candidates` of a
clip; writing a new segment and merging segments stay with the library, which owns the
catalogue transaction that makes them part of the index.

Postings are stored on one global frame axis (a track's base frame plus the landmark's
anchor frame, 4 bytes each), but every hit is credited to the track that *holds the
posting*, never to whatever lies at ``hit frame - clip frame`` on that axis: voting is
per track, in track frames, so a clip may start before its track (a negative offset)
or run past its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tuneseek.fingerprint import query
from tuneseek.fingerprint.extract import check_peaks
from tuneseek.fingerprint.hashes import HASH_SPACE
from tuneseek.fingerprint.params import DEFAULT, FingerprintParams
from tuneseek.identifier import Candidate
from tuneseek.store.landmarks import SEGMENTS_DIR, Segment


#: frames per block of the table behind :meth:`LandmarkIndex.track_of` (2**12: 131 s)
BLOCK_BITS = 12


class SegmentMissing(Exception):
    """A listed segment's files are gone (merged away by another process since the list was read)."""

    def __init__(self, filename: str):
        self.filename = filename
        super().__init__(filename)


class LandmarkIndex:
    """Landmark identification over the memory-mapped segments of one library directory."""

    name = "landmarks"

    def __init__(self, root: Path, params: FingerprintParams = DEFAULT):
        self.root = root
        self.params = params
        self.sample_rate = params.sr
        self._segments: dict[str, Segment] = {}
        self._bases = np.zeros(0, np.int64)
        self._ends = np.zeros(0, np.int64)
        self._ids = np.zeros(0, np.int64)
        self._counts = np.zeros(0, np.int64)
        self._block_track = np.zeros(1, np.int64)
        self.hours = 0.0  # audio in the live tracks
        self._stop = float(query.MIN_STOP)

    # -- the catalogue's view ---------------------------------------------------------
    def refresh(self, segment_names: list[str], tracks: list) -> None:
        """Use these segments and these live tracks (objects with ``id``, ``base_frame``, ``n_frames``).

        Raises :class:`SegmentMissing` when a listed segment cannot be opened.
        """
        try:
            self._segments = {
                name: self._segments.get(name) or Segment(self.root / SEGMENTS_DIR / name) for name in segment_names
            }
        except FileNotFoundError as e:
            raise SegmentMissing(e.filename) from e
        ordered = sorted(tracks, key=lambda t: t.base_frame)
        self._bases = np.array([t.base_frame for t in ordered], np.int64)
        self._ends = np.array([t.base_frame + t.n_frames for t in ordered], np.int64)
        self._ids = np.array([t.id for t in ordered], np.int64)
        self._counts = np.array([t.n_landmarks for t in ordered], np.int64)
        self.hours = float((self._ends - self._bases).sum()) / self.params.frames_per_second / 3600
        blocks = (int(self._ends.max(initial=0)) >> BLOCK_BITS) + 1
        self._block_track = np.searchsorted(self._bases, np.arange(blocks, dtype=np.int64) << BLOCK_BITS,
                                            side="right") - 1
        postings = sum(len(seg) for seg in self._segments.values())
        self._stop = max(query.MIN_STOP, query.STOP_RATIO * postings / HASH_SPACE)

    def clear(self) -> None:
        """Forget the open segments (before they are merged away or the library closes)."""
        self._segments.clear()

    @property
    def segments(self) -> dict[str, Segment]:
        return self._segments

    # -- lookup -----------------------------------------------------------------------
    def track_of(self, frames: np.ndarray) -> np.ndarray:
        """Index (into the live tracks, by base frame) of the track holding each global frame, or -1.

        A table of the last track starting before each block of 2**BLOCK_BITS frames gives
        the answer in one read for nearly every frame (a binary search over the tracks for
        each of a query's hundred thousand hits was a tenth of its time); the few frames of
        a block where a track starts step on to it.
        """
        if len(self._bases) == 0:
            return np.full(len(frames), -1, np.int64)
        block = np.minimum(frames >> BLOCK_BITS, len(self._block_track) - 1)
        idx = self._block_track[block]
        nxt = np.minimum(idx + 1, len(self._bases) - 1)
        step = (idx + 1 < len(self._bases)) & (frames >= self._bases[nxt])
        while step.any():
            idx = idx + step
            nxt = np.minimum(idx + 1, len(self._bases) - 1)
            step = (idx + 1 < len(self._bases)) & (frames >= self._bases[nxt])
        ok = (idx >= 0) & (frames < self._ends[np.maximum(idx, 0)])
        return np.where(ok, idx, -1)

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every live posting of ``hashes``, less the stop-listed hashes.

        Returns ``(query index, track index, frame within that track)`` per posting;
        postings of removed tracks (kept on disk until the next compact) are left out.
        """
        segments = list(self._segments.values())
        if not segments or len(self._bases) == 0:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        # each distinct hash is sought once, in ascending order: a clip's shifted analyses repeat
        # most hashes, and NumPy's binary search runs several times faster on sorted needles
        distinct, inverse = np.unique(hashes, return_inverse=True)
        ranges = [(start[inverse], end[inverse]) for start, end in (seg.ranges(distinct) for seg in segments)]
        keep = sum(end - start for start, end in ranges) <= self._stop
        parts = [seg.gather(start, np.where(keep, end - start, 0)) for seg, (start, end) in zip(segments, ranges)]
        qi, frames = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        track = self.track_of(frames)
        live = track >= 0
        qi, frames, track = qi[live], frames[live], track[live]
        return qi, track, frames - self._bases[track]

    def live_postings(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The ``(hash, global frame)`` postings of segment ``name`` that belong to live tracks."""
        h, g = self._segments[name].all_postings()
        keep = self.track_of(g.astype(np.int64)) >= 0
        return h[keep], g[keep]

    # -- identification ---------------------------------------------------------------
    def candidates(self, clip: np.ndarray, k: int = 5, name: str = "<samples>") -> list[Candidate]:
        """Up to ``k`` tracks ``clip`` (mono, at :attr:`sample_rate`) may come from, best first.

        Each names its track by catalogue id; an empty list means "no match". Raises
        :class:`AudioError` (naming the clip ``name``) when the clip holds nothing to
        fingerprint.
        """
        pairs, unshifted, peaks = query.clip_analyses(clip, self.params)
        seconds = len(clip) / self.params.sr
        check_peaks(name, peaks, seconds)
        piles = self._search(clip, pairs, unshifted, k=k, exhaustive=False)
        return [self._located(p, seconds) for p in piles]

    def evidence(self, clip: np.ndarray) -> list[tuple[int, query.Pile]]:
        """Every pile verification judges for ``clip``, of every stage, with its track id: for calibration."""
        pairs, unshifted, _ = query.clip_analyses(clip, self.params)
        return [(int(self._ids[p.track]), p) for p in self._search(clip, pairs, unshifted, k=5, exhaustive=True)]

    def _search(self, clip: np.ndarray, pairs, unshifted, k: int, exhaustive: bool) -> list[query.Pile]:
        return query.search(pairs, self.lookup, k=k, fps=self.params.frames_per_second,
                            clip_seconds=len(clip) / self.params.sr, exhaustive=exhaustive, wide_pairs=unshifted,
                            audible=query.audible_frames(clip, self.params), library_hours=self.hours)

    def _located(self, pile: query.Pile, seconds: float) -> Candidate:
        """The public candidate of a pile: its track's catalogue id, times in seconds."""
        return pile.located(int(self._ids[pile.track]), self.params.frames_per_second, seconds,
                            int(self._ends[pile.track] - self._bases[pile.track]))

    # -- tracks against each other ------------------------------------------------------
    def track_landmarks(self, batch: int = 4_000_000) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Each live track's own landmarks ``(track id, hashes, anchor frames in the track)``, in frame order.

        Tracks are read in batches of about ``batch`` postings, one pass over each
        segment per batch, so memory stays bounded whatever the library's size.
        """
        i = 0
        while i < len(self._bases):
            j = i + 1
            while j < len(self._bases) and self._counts[i:j + 1].sum() <= batch:
                j += 1
            parts = [seg.postings_between(int(self._bases[i]), int(self._ends[j - 1])) for seg in self._segments.values()]
            h = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.uint32)
            g = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
            order = np.argsort(g, kind="stable")
            h, g = h[order], g[order]
            cuts = np.searchsorted(g, np.concatenate([self._bases[i:j], self._ends[j - 1 : j]]))
            for n in range(j - i):
                a, b = cuts[n], cuts[n + 1]
                # frames between a track's end and the next base belong to no track (the gap)
                inside = g[a:b] < self._ends[i + n]
                yield int(self._ids[i + n]), h[a:b][inside], g[a:b][inside] - self._bases[i + n]
            i = j

    def landmark_candidates(self, hashes: np.ndarray, anchor: np.ndarray, seconds: float, k: int) -> list[Candidate]:
        """Tracks that hold the same audio as a stretch of indexed landmarks (anchors from the stretch's start)."""
        piles = query.match_landmarks(hashes, anchor, self.lookup, k, self.params.frames_per_second, seconds,
                                      self.hours)
        return [self._located(p, seconds) for p in piles]
