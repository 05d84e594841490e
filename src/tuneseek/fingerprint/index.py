"""The landmark index as one object: segments on disk, the stop-list, lookup, per-track voting,
and the writes that put tracks in and take them out.

This is the landmark engine behind the :class:`~tuneseek.identifier.Identifier` seam:
:meth:`LandmarkIndex.add` indexes tracks inside the catalogue transaction that inserts them
(their landmarks land in one new segment, written aside and listed by that transaction),
:meth:`LandmarkIndex.remove` forgets them (their postings stay on disk, dead, until
:meth:`LandmarkIndex.compact`), and :meth:`LandmarkIndex.candidates` identifies a clip.

Postings are stored on one global frame axis (a track's base frame plus the landmark's
anchor frame, 4 bytes each), but every hit is credited to the track that *holds the
posting*, never to whatever lies at ``hit frame - clip frame`` on that axis: voting is
per track, in track frames, so a clip may start before its track (a negative offset)
or run past its end.

Readers in several threads share one index: what a query reads (the open segments and the
table of live tracks) is one immutable :class:`View`, rebuilt when the catalogue changes
and swapped in whole, so a query never sees half of an update.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from tuneseek.errors import LibraryError
from tuneseek.fingerprint import query
from tuneseek.fingerprint.extract import FileFingerprint, check_peaks
from tuneseek.fingerprint.hashes import HASH_SPACE
from tuneseek.fingerprint.params import DEFAULT, FINGERPRINT_VERSION, FingerprintParams
from tuneseek.identifier import Candidate
from tuneseek.store.catalog import Catalog
from tuneseek.store.landmarks import SEGMENTS_DIR, Segment, merge_segments, remove_unlisted, write_segment

#: Frames left empty between tracks on the global frame axis, so that a clip
#: overlapping a track's end can never vote for the next track.
TRACK_GAP_FRAMES = 4096
#: The live postings of sorted distinct hashes, given which of them each needle is: ``(needle index, track
#: index, frame within the track)`` per posting, in the order :meth:`View.local_hits` gives them.
Hits = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
#: frames per block of the table behind :meth:`LandmarkIndex.track_of` (2**12: 131 s)
BLOCK_BITS = 12


class SegmentMissing(Exception):
    """A listed segment's files are gone (merged away by another process since the list was read)."""

    def __init__(self, filename: str):
        self.filename = filename
        super().__init__(filename)


@dataclass(frozen=True)
class Tracks:
    """Live tracks on the global frame axis, ordered by base frame: which holds a frame, and where in it."""

    bases: np.ndarray
    ends: np.ndarray
    block_track: np.ndarray  # the last track starting before each block of 2**BLOCK_BITS frames

    @classmethod
    def of(cls, bases: np.ndarray, ends: np.ndarray) -> Tracks:
        blocks = (int(ends.max(initial=0)) >> BLOCK_BITS) + 1
        block_track = np.searchsorted(bases, np.arange(blocks, dtype=np.int64) << BLOCK_BITS, side="right") - 1
        return cls(bases, ends, block_track)

    def track_of(self, frames: np.ndarray) -> np.ndarray:
        """Index (into these tracks) of the track holding each global frame, or -1.

        A table of the last track starting before each block of 2**BLOCK_BITS frames gives
        the answer in one read for nearly every frame (a binary search over the tracks for
        each of a query's hundred thousand hits was a tenth of its time); the few frames of
        a block where a track starts step on to it.
        """
        bases, ends = self.bases, self.ends
        if len(bases) == 0:
            return np.full(len(frames), -1, np.int64)
        block = np.minimum(frames >> BLOCK_BITS, len(self.block_track) - 1)
        idx = self.block_track[block]
        nxt = np.minimum(idx + 1, len(bases) - 1)
        step = (idx + 1 < len(bases)) & (frames >= bases[nxt])
        while step.any():
            idx = idx + step
            nxt = np.minimum(idx + 1, len(bases) - 1)
            step = (idx + 1 < len(bases)) & (frames >= bases[nxt])
        ok = (idx >= 0) & (frames < ends[np.maximum(idx, 0)])
        return np.where(ok, idx, -1)

    def resolve(self, qi: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Postings ``(needle index, global frame)`` as ``(needle index, track index, frame within the
        track)``, in the same order, those of no live track (a removed one) left out."""
        track = self.track_of(frames)
        live = track >= 0
        qi, frames, track = qi[live], frames[live], track[live]
        return qi, track, frames - self.bases[track]


@dataclass(frozen=True)
class View:
    """What queries read, as the catalogue held it at one moment: open segments and the live tracks.

    Tracks are ordered by base frame; ``bases``/``ends`` delimit each on the global frame axis.
    """

    version: int  # the catalogue's generation it was built from
    segments: dict[str, Segment]
    bases: np.ndarray
    ends: np.ndarray
    ids: np.ndarray
    counts: np.ndarray  # landmarks per track
    tracks: Tracks
    hours: float  # audio in the live tracks
    stop: float  # postings above which a hash is stop-listed

    @classmethod
    def build(
        cls, root: Path, version: int, names: list[str], tracks: list, opened: dict[str, Segment], fps: float
    ) -> View:
        """The view of segments ``names`` and live ``tracks`` (objects with ``id``, ``base_frame``,
        ``n_frames``, ``n_landmarks``), reusing segments already ``opened``.

        Raises :class:`SegmentMissing` when a listed segment cannot be opened.
        """
        try:
            segments = {name: opened.get(name) or Segment(root / SEGMENTS_DIR / name) for name in names}
        except FileNotFoundError as e:
            raise SegmentMissing(e.filename) from e
        ordered = sorted(tracks, key=lambda t: t.base_frame)
        bases = np.array([t.base_frame for t in ordered], np.int64)
        ends = np.array([t.base_frame + t.n_frames for t in ordered], np.int64)
        postings = sum(len(seg) for seg in segments.values())
        return cls(
            version,
            segments,
            bases,
            ends,
            np.array([t.id for t in ordered], np.int64),
            np.array([t.n_landmarks for t in ordered], np.int64),
            Tracks.of(bases, ends),
            float((ends - bases).sum()) / fps / 3600,
            max(query.MIN_STOP, query.STOP_RATIO * postings / HASH_SPACE),
        )

    def track_of(self, frames: np.ndarray) -> np.ndarray:
        """Index (into the live tracks, by base frame) of the track holding each global frame, or -1."""
        return self.tracks.track_of(frames)

    @cached_property
    def _by_id(self) -> np.ndarray:
        return np.argsort(self.ids, kind="stable")

    def index_of(self, track_ids: Sequence[int]) -> np.ndarray:
        """Index (into the live tracks, by base frame) of each track id, or -1 for one not live."""
        ids = np.asarray(track_ids, np.int64)
        if len(self.ids) == 0:
            return np.full(len(ids), -1, np.int64)
        found = self._by_id[np.minimum(np.searchsorted(self.ids, ids, sorter=self._by_id), len(self.ids) - 1)]
        return np.where(self.ids[found] == ids, found, -1)

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every live posting of ``hashes``, less the stop-listed hashes.

        Returns ``(query index, track index, frame within that track)`` per posting;
        postings of removed tracks (kept on disk until the next compact) are left out.
        """
        return self.lookup_with(hashes, self.local_hits)

    def lookup_with(self, hashes: np.ndarray, hits: Hits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`lookup`, reading the postings through ``hits`` (this process's segments, or shards')."""
        if not self.segments or len(self.bases) == 0:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        # each distinct hash is sought once, in ascending order: a clip's shifted analyses repeat
        # most hashes, and NumPy's binary search runs several times faster on sorted needles
        distinct, inverse = np.unique(hashes, return_inverse=True)
        return hits(distinct, inverse)

    def local_hits(self, distinct: np.ndarray, inverse: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The live postings of needles ``distinct[inverse]`` in this process's segments, resolved to tracks."""
        parts = self.segment_hits(distinct, inverse)
        qi, frames = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return self.tracks.resolve(qi, frames)

    def segment_hits(self, distinct: np.ndarray, inverse: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per segment, in order, the postings of needles ``distinct[inverse]`` whose hash is not stop-listed
        (see :meth:`Segment.hits`). A hash is stop-listed by its postings summed over all segments."""
        segments = list(self.segments.values())
        ranges = [seg.ranges(distinct) for seg in segments]
        keep = sum(end - start for start, end in ranges) <= self.stop
        return [seg.hits(distinct, inverse, keep, ranges=r) for seg, r in zip(segments, ranges)]

    def located(self, pile: query.Pile, fps: float, seconds: float) -> Candidate:
        """The public candidate of a pile: its track's catalogue id, times in seconds."""
        return pile.located(
            int(self.ids[pile.track]), fps, seconds, int(self.ends[pile.track] - self.bases[pile.track])
        )


class LandmarkIndex:
    """Landmark identification over the memory-mapped segments of one library directory.

    The catalogue says which segments and which tracks are live; the index follows it,
    re-reading its view whenever another connection (or this one, through :meth:`add`,
    :meth:`remove` or :meth:`compact`) has changed it.
    """

    name = "landmarks"
    version = FINGERPRINT_VERSION

    def __init__(self, root: Path, catalog: Catalog, *, params: FingerprintParams = DEFAULT):
        self.root = root
        self.catalog = catalog
        self.params = params
        self.sample_rate = params.sr
        self._view: View | None = None
        self._lock = threading.Lock()  # one thread rebuilds the view at a time
        self._last = threading.local()  # the last clip each thread analysed, and its analyses (see _analysed)

    # -- the catalogue's view ---------------------------------------------------------
    def view(self) -> View:
        """The current view, rebuilt first if the catalogue changed since it was built."""
        version = self.catalog.generation()
        view = self._view
        if view is not None and view.version == version:
            return view
        with self._lock:
            view = self._view
            if view is not None and view.version == version:
                return view
            opened = view.segments if view is not None else {}
            fps = self.params.frames_per_second
            for _ in range(3):
                with self.catalog.snapshot():
                    names = self.catalog.segments()
                    tracks = self.catalog.tracks()
                try:
                    view = View.build(self.root, version, names, tracks, opened, fps)
                    break
                except SegmentMissing as e:
                    missing = e.filename  # merged away since we read the list? read it again
            else:
                raise LibraryError(
                    self.root, f"index segment file missing or damaged ({missing}); re-index this library"
                )
            self._view = view
            return view

    def close(self) -> None:
        """Forget the open segments (before they are merged away or the library closes)."""
        self._view = None

    @property
    def hours(self) -> float:
        """Hours of audio in the live tracks."""
        return self.view().hours

    # -- writing (inside the catalogue transaction of the caller) ------------------------
    def add(self, tracks: Sequence[tuple[int, FileFingerprint]]) -> None:
        """Index catalogue tracks just inserted in the caller's open transaction, from their fingerprints.

        Their landmarks go to one new segment, complete on disk before the transaction lists
        it; each track is given its place on the global frame axis. A process killed before
        the commit leaves an unlisted segment, swept by the next writer.
        """
        if not tracks:
            return
        base = self.catalog.next_base_frame()
        hashes, frames = [], []
        for track_id, fp in tracks:
            self.catalog.place_track(track_id, base, fp.n_frames, len(fp.hashes))
            hashes.append(fp.hashes)
            frames.append(fp.frames.astype(np.int64) + base)
            base += fp.n_frames + TRACK_GAP_FRAMES
        h, g = np.concatenate(hashes), np.concatenate(frames)
        if g.size and g.max() >= 2**32:
            raise LibraryError(self.root, "frame address space is full; run `tuneseek compact`")
        if len(h):
            self.catalog.add_segment(write_segment(self.root, h, g), len(h))
        self.catalog.reserve_frames(base)

    def remove(self, track_ids: Sequence[int]) -> None:
        """Forget tracks the caller's transaction deletes from the catalogue: nothing to do here, as their
        postings die with their rows (queries skip them) and :meth:`compact` drops them from disk."""

    def sweep(self) -> None:
        """Delete segment files no transaction listed (a writer killed mid-add); call holding the writer lock."""
        remove_unlisted(self.root, set(self.catalog.segments()))

    def compact(self) -> None:
        """Merge all segments into one, dropping postings of removed tracks; call holding the writer lock."""
        self.sweep()
        self._merge(self.catalog.segments())

    def merge_small(self, most: int) -> None:
        """When there are more than ``most`` segments, merge all but the largest into one."""
        sizes = self.catalog.segment_sizes()
        if len(sizes) > most:
            self._merge(sorted(sizes, key=sizes.get)[:-1])

    def _merge(self, names: list[str]) -> None:
        """Replace segments ``names`` by one holding their live postings."""
        if not names:
            return
        view = self.view()
        segments = [view.segments[name] for name in names]
        new, postings = merge_segments(self.root, segments, lambda frames: view.track_of(frames) >= 0)
        with self.catalog.transaction():
            for name in names:
                self.catalog.drop_segment(name)
            if postings:
                self.catalog.add_segment(new, postings)
        self.close()
        self.sweep()

    # -- identification ---------------------------------------------------------------
    def candidates(self, clip: np.ndarray, k: int = 5, *, name: str = "<samples>") -> list[Candidate]:
        """Up to ``k`` tracks ``clip`` (mono, at :attr:`sample_rate`) may come from, best first.

        Each names its track by catalogue id; an empty list means "no match". Raises
        :class:`AudioError` (naming the clip ``name``) when the clip holds nothing to
        fingerprint.
        """
        view = self.view()
        return self.candidates_in(view, view.lookup, clip, k=k, name=name)

    def candidates_in(
        self,
        view: View,
        lookup: query.Lookup,
        clip: np.ndarray,
        *,
        k: int = 5,
        name: str = "<samples>",
        batch: int = 1,
    ) -> list[Candidate]:
        """:meth:`candidates` over ``view``, reading postings through ``lookup`` (this process's
        :meth:`View.lookup`, or one that asks the shards holding them: :mod:`tuneseek.fingerprint.shards`),
        ``batch`` hypotheses per call (see :func:`query.search`)."""
        pairs, unshifted, peaks = self._analysed(clip)
        seconds = len(clip) / self.params.sr
        check_peaks(name, peaks, seconds)
        piles = self._search(lookup, view.hours, clip, pairs, unshifted, k=k, exhaustive=False, batch=batch)
        return [view.located(p, self.params.frames_per_second, seconds) for p in piles]

    def _analysed(self, clip: np.ndarray):
        """The clip's peak analyses (:func:`query.clip_analyses`), kept for the last clip this thread analysed:
        the fused engine asks :meth:`candidates` and then :meth:`lined_up` of one clip, and the analysis is the
        larger part of a short clip's landmark query (about 40 ms of a 10 s clip's). Known by the clip's
        bytes, so a clip changed in place is analysed again; the arrays kept are read-only."""
        samples = np.ascontiguousarray(clip)
        key = (hashlib.blake2b(samples.view(np.uint8), digest_size=16).digest(), samples.dtype.str, self.params)
        last = getattr(self._last, "analysis", None)
        if last is not None and last[0] == key:
            return last[1]
        found = query.clip_analyses(samples, params=self.params)
        for part in found:
            for array in vars(part).values():
                if isinstance(array, np.ndarray):
                    array.flags.writeable = False
        self._last.analysis = (key, found)
        return found

    def lined_up(
        self, clip: np.ndarray, placements: Sequence[tuple[int, float]], window: float, *, name: str = "<samples>"
    ) -> list[tuple[int, int]]:
        """For each ``(track id, offset in seconds)`` another engine proposes for ``clip``: ``(here, elsewhere)``,
        the most landmark hits lined up with that track within ``window`` seconds of that offset, and the most
        at any other offset within :data:`query.ELSEWHERE_SECONDS` of it, under any of the search's speed,
        tempo and pitch hypotheses (:func:`query.lined_up`); ``(0, 0)`` for a track not indexed. Raises
        as :meth:`candidates` does."""
        view = self.view()
        return self.lined_up_in(view, view.lookup, clip, placements, window, name=name)

    def lined_up_in(
        self,
        view: View,
        lookup: query.Lookup,
        clip: np.ndarray,
        placements: Sequence[tuple[int, float]],
        window: float,
        *,
        name: str = "<samples>",
    ) -> list[tuple[int, int]]:
        """:meth:`lined_up` over ``view``, reading postings through ``lookup`` (see :meth:`candidates_in`)."""
        pairs, unshifted, peaks = self._analysed(clip)
        check_peaks(name, peaks, len(clip) / self.params.sr)
        fps = self.params.frames_per_second
        index = view.index_of([t for t, _ in placements])
        frames = np.round(np.array([o for _, o in placements], np.float64) * fps).astype(np.int64)
        counts = np.zeros((len(placements), 2), np.int64)
        live = index >= 0
        counts[live] = query.lined_up(
            pairs,
            unshifted,
            lookup,
            index[live],
            frames[live],
            round(window * fps),
            round(query.ELSEWHERE_SECONDS * fps),
        )
        return [(int(a), int(b)) for a, b in counts]

    def evidence(self, clip: np.ndarray) -> list[tuple[int, query.Pile]]:
        """Every pile verification judges for ``clip``, of every stage, with its track id: for calibration."""
        view = self.view()
        pairs, unshifted, _ = query.clip_analyses(clip, params=self.params)
        piles = self._search(view.lookup, view.hours, clip, pairs, unshifted, k=5, exhaustive=True)
        return [(int(view.ids[p.track]), p) for p in piles]

    def _search(
        self,
        lookup: query.Lookup,
        hours: float,
        clip: np.ndarray,
        pairs,
        unshifted,
        k: int,
        exhaustive: bool,
        batch: int = 1,
    ) -> list[query.Pile]:
        return query.search(
            pairs,
            lookup,
            k=k,
            fps=self.params.frames_per_second,
            clip_seconds=len(clip) / self.params.sr,
            exhaustive=exhaustive,
            wide_pairs=unshifted,
            audible=query.audible_frames(clip, params=self.params),
            library_hours=hours,
            batch=batch,
        )

    # -- tracks against each other ------------------------------------------------------
    def track_landmarks(self, batch: int = 4_000_000) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Each live track's own landmarks ``(track id, hashes, anchor frames in the track)``, in frame order.

        Tracks are read in batches of about ``batch`` postings, one pass over each
        segment per batch, so memory stays bounded whatever the library's size.
        """
        v = self.view()
        i = 0
        while i < len(v.bases):
            j = i + 1
            while j < len(v.bases) and v.counts[i : j + 1].sum() <= batch:
                j += 1
            parts = [seg.postings_between(int(v.bases[i]), int(v.ends[j - 1])) for seg in v.segments.values()]
            h = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.uint32)
            g = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
            order = np.argsort(g, kind="stable")
            h, g = h[order], g[order]
            cuts = np.searchsorted(g, np.concatenate([v.bases[i:j], v.ends[j - 1 : j]]))
            for n in range(j - i):
                a, b = cuts[n], cuts[n + 1]
                # frames between a track's end and the next base belong to no track (the gap)
                inside = g[a:b] < v.ends[i + n]
                yield int(v.ids[i + n]), h[a:b][inside], g[a:b][inside] - v.bases[i + n]
            i = j

    def landmark_candidates(self, hashes: np.ndarray, anchor: np.ndarray, seconds: float, k: int) -> list[Candidate]:
        """Tracks that hold the same audio as a stretch of indexed landmarks (anchors from the stretch's start)."""
        view = self.view()
        piles = query.match_landmarks(
            hashes, anchor, view.lookup, k, self.params.frames_per_second, seconds, library_hours=view.hours
        )
        return [view.located(p, self.params.frames_per_second, seconds) for p in piles]
