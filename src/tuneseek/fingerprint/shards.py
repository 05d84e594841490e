"""The landmark index split by track into shards, each held in memory by a Ray actor, queried in parallel.

A library too large for one machine's memory (or one core's lookups) is served in ``N`` shards:
the global frame axis, on which every track has its span, is cut at track boundaries into ``N``
ranges of about equal landmark counts, and shard ``i`` holds, of every segment, the postings whose
frame lies in its range. Tracks added later land in the last shard. The actors may run on other
machines: each receives its part of the segments through Ray's object store, so no filesystem is
shared; the library directory stays with the process that opened it, which answers the queries.

The answers are the unsharded library's, by construction, not by approximation: the query runs in
this process exactly as :meth:`LandmarkIndex.candidates` runs it, and only the reading of postings
(the lookup behind every hypothesis tried) is scattered. Each lookup is one round trip: the
stop-list needs each hash's postings summed over all shards, and this process keeps those sums
(one count per hash value, 16 MB) so that it can send the actors the decision with the hashes.
Each actor returns, per segment, the postings of its frame range in the segment's own order
(needle, then frame), already resolved to the library's track index and the frame within the
track (each actor holds its tracks' table), those of removed tracks left out; merging the shards'
parts of a segment by needle, shard after shard, restores the order an unsharded lookup reads them
in, so every later step sees the same hits in the same order.

The shards follow the catalogue: when another process (or this one) adds, removes or merges, the
next query sends the actors the new segments' parts, and segments merged away are dropped once no
query reading them is in flight. A lost actor (its node gone) is started again and given its
parts once; the query that met it is answered after that.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import numpy as np

from tuneseek.errors import LibraryError, UsageError
from tuneseek.executors import RaySession
from tuneseek.fingerprint import query
from tuneseek.fingerprint.index import LandmarkIndex, Tracks, View
from tuneseek.identifier import Candidate
from tuneseek.store.landmarks import Segment

#: past the last frame any library can hold (frames are 32-bit)
END_OF_AXIS = 1 << 32
#: hypotheses of a stage looked up in one round trip to the shards (see :func:`query.search`): a clip
#: of no library track tries all 30 of the wide stage's, in 4 round trips instead of 30
LOOKUP_BATCH = 8


class ShardActor:
    """One shard, in a Ray actor: its part of each segment, in memory, looked up on request."""

    def __init__(self) -> None:
        self.segments: dict[str, Segment] = {}
        self.tracks = Tracks.of(np.zeros(0, np.int64), np.zeros(0, np.int64))
        self.first = 0  # the library's index of this shard's first track

    def hold_tracks(self, first: int, bases: np.ndarray, ends: np.ndarray) -> None:
        """This shard's live tracks, the ``first`` of the library's (by base frame) and those after it."""
        self.first, self.tracks = first, Tracks.of(np.array(bases, np.int64), np.array(ends, np.int64))

    def load(self, name: str, hashes: np.ndarray, frames: np.ndarray) -> int:
        """Hold this shard's part of segment ``name``: postings sorted by (hash, frame)."""
        # copies: the shard owns its memory, and the object store is free for the next transfer
        self.segments[name] = Segment.of_postings(name, np.array(hashes, np.uint32), np.array(frames, np.uint32))
        return len(frames)

    def drop(self, names: Sequence[str]) -> None:
        """Forget segments merged away."""
        for name in names:
            self.segments.pop(name, None)

    def hits(
        self, names: Sequence[str], distinct: np.ndarray, inverse: np.ndarray, keep: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per segment of ``names``, :meth:`Segment.hits` of the needles in this shard resolved to the
        library's track indices and frames within them (:meth:`Tracks.resolve`), as 32-bit arrays."""
        out = []
        for name in names:
            qi, track, frame = self.tracks.resolve(*self.segments[name].hits(distinct, inverse, keep))
            out.append((qi.astype(np.int32), (track + self.first).astype(np.int32), frame.astype(np.int32)))
        return out

    def info(self) -> dict:
        """Where this shard runs and what it holds."""
        import ray

        return {
            "pid": os.getpid(),
            "node": ray.util.get_node_ip_address(),
            "segments": len(self.segments),
            "postings": sum(len(s) for s in self.segments.values()),
            "bytes": sum(
                s.frames.nbytes + sum(a.nbytes for a in (s.offsets, s.hashes) if a is not None)
                for s in self.segments.values()
            ),
        }


@dataclass(frozen=True)
class _State:
    """What the actors hold for one catalogue view: the view, its segments' names in order, and each hash
    value's postings summed over them (for the stop-list)."""

    view: View
    names: list[str]
    counts: np.ndarray | None


class _Gate:
    """Many queries at once, or one change to what the actors hold, never both (a readers-writer lock)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing)
            self._writing = True  # no new reader from here
            self._cond.wait_for(lambda: self._readers == 0)
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


def shard_bounds(view: View, shards: int) -> np.ndarray:
    """Where each shard's frame range starts, and the end of the last: ``shards + 1`` frames.

    Cuts fall at track bases, so that each shard holds about the same number of landmarks (the
    live tracks' counts, in frame order); a library of fewer tracks than shards leaves some empty.
    """
    cum = np.cumsum(view.counts)
    total = int(cum[-1]) if len(cum) else 0
    cuts = (
        [
            int(view.bases[min(int(np.searchsorted(cum, total * i / shards, side="right")), len(cum) - 1)])
            for i in range(1, shards)
        ]
        if len(cum)
        else [0] * (shards - 1)
    )
    return np.array([0, *cuts, END_OF_AXIS], np.int64)


class ShardedLandmarks:
    """Identification over a :class:`LandmarkIndex` whose postings are held by ``shards`` Ray actors.

    ``address`` None starts Ray on this machine; ``"auto"`` or ``"ray://host:port"`` places the actors
    on that cluster (spread over its nodes). Answers are those of ``index`` itself (see the module
    docstring). :meth:`close` ends the actors, and Ray when it was started here.
    """

    def __init__(self, index: LandmarkIndex, shards: int, *, address: str | None = None):
        if shards < 1:
            raise UsageError(f"shards must be at least 1, got {shards}")
        self.index = index
        self.count = shards
        self.sample_rate = index.sample_rate
        self._session = RaySession(address, purpose="sharded identification")
        self._ray = self._session.ray
        self._actor = self._ray.remote(ShardActor).options(num_cpus=0, scheduling_strategy="SPREAD")
        self._actors = [self._actor.remote() for _ in range(shards)]
        self._bounds: np.ndarray | None = None
        self._state: _State | None = None
        self._gate = _Gate()
        self._syncing = threading.Lock()
        self._reviving = threading.Lock()
        try:
            self._sync()
        except BaseException:
            self.close()
            raise

    # -- following the catalogue -----------------------------------------------------
    def _sync(self) -> None:
        """Bring what the actors hold up to the catalogue's current view."""
        view = self.index.view()
        if self._state is not None and self._state.view is view:
            return
        with self._syncing:
            view = self.index.view()
            old = self._state
            if old is not None and old.view is view:
                return
            if self._bounds is None and len(view.bases):
                self._bounds = shard_bounds(view, len(self._actors))
            names = list(view.segments) if self._bounds is not None else []
            held = set(old.names) if old is not None else set()
            self._load([view.segments[n] for n in names if n not in held])
            counts = sum(view.segments[n].hash_counts() for n in names) if names else None
            with self._gate.writing():  # no query reads the segments dropped, or the tracks replaced
                gone = sorted(held - set(names))
                self._ray.get([a.drop.remote(gone) for a in self._actors] + self._hold_tracks(view))
                self._state = _State(view, names, counts)

    def _hold_tracks(self, view: View, only: int | None = None) -> list:
        """Give each actor (or actor ``only``) its live tracks of ``view``; return the calls' references."""
        if self._bounds is None:
            return []
        cuts = np.searchsorted(view.bases, self._bounds)
        return [
            actor.hold_tracks.remote(int(cuts[i]), view.bases[cuts[i] : cuts[i + 1]], view.ends[cuts[i] : cuts[i + 1]])
            for i, actor in enumerate(self._actors)
            if only is None or i == only
        ]

    def _load(self, segments: Sequence[Segment], only: int | None = None) -> None:
        """Give each actor (or actor ``only``) its part of ``segments``."""
        refs = []
        for seg in segments:
            for i, actor in enumerate(self._actors):
                if only is None or i == only:
                    h, g = seg.postings_between(int(self._bounds[i]), int(self._bounds[i + 1]))
                    refs.append(actor.load.remote(seg.name, h, g.astype(np.uint32)))
        self._ray.get(refs)

    # -- identification ----------------------------------------------------------------
    def candidates(self, clip: np.ndarray, k: int = 5, *, name: str = "<samples>") -> list[Candidate]:
        """:meth:`LandmarkIndex.candidates`, with postings read from the shards."""
        return self._reading(
            lambda view, lookup: self.index.candidates_in(view, lookup, clip, k=k, name=name, batch=LOOKUP_BATCH)
        )

    def lined_up(
        self, clip: np.ndarray, placements: Sequence[tuple[int, float]], window: float, *, name: str = "<samples>"
    ) -> list[tuple[int, int]]:
        """:meth:`LandmarkIndex.lined_up`, with postings read from the shards."""
        return self._reading(
            lambda view, lookup: self.index.lined_up_in(view, lookup, clip, placements, window, name=name)
        )

    def _reading(self, ask: Callable[[View, query.Lookup], list]) -> list:
        """``ask(view, lookup)`` over the current shards, their postings read through ``lookup``."""
        self._sync()
        with self._gate.reading():
            state = self._state
            return ask(state.view, partial(state.view.lookup_with, hits=partial(self._hits, state)))

    def _hits(self, state: _State, distinct: np.ndarray, inverse: np.ndarray) -> tuple[np.ndarray, ...]:
        """:meth:`View.local_hits`, from the shards: the same postings in the same order."""
        keep = state.counts[distinct] <= state.view.stop
        parts = self._scatter(state, distinct, inverse, keep)
        merged = []
        for j in range(len(state.names)):
            qi, track, frame = (np.concatenate([p[j][k] for p in parts]) for k in range(3))
            order = np.argsort(qi, kind="stable")  # by needle; within one, shard after shard: frame order
            merged.append((qi[order], track[order], frame[order]))
        return tuple(np.concatenate([m[k] for m in merged]).astype(np.int64) for k in range(3))

    def _scatter(self, state: _State, *args) -> list:
        """Every actor's :meth:`ShardActor.hits`; actors found lost are started again, once."""
        lost = (self._ray.exceptions.RayActorError, self._ray.exceptions.ActorUnavailableError)
        try:
            return self._ray.get([a.hits.remote(state.names, *args) for a in self._actors])
        except lost:
            with self._reviving:
                for i, actor in enumerate(self._actors):
                    try:
                        self._ray.get(actor.info.remote())
                    except lost:
                        self._actors[i] = self._actor.remote()
                        self._load([state.view.segments[n] for n in state.names], only=i)
                        self._ray.get(self._hold_tracks(state.view, only=i))
        try:
            return self._ray.get([a.hits.remote(state.names, *args) for a in self._actors])
        except lost as e:
            raise LibraryError(self.index.root, f"a shard was lost and could not be started again: {e}") from None

    # -- about the shards ----------------------------------------------------------------
    def info(self) -> list[dict]:
        """Per shard: its number, frame range, and what its actor holds and where (pid, node)."""
        self._sync()
        found = self._ray.get([a.info.remote() for a in self._actors])
        bounds = self._bounds if self._bounds is not None else np.zeros(len(found) + 1, np.int64)
        view = self._state.view
        return [
            {
                "shard": i,
                "tracks": int(np.count_nonzero((view.bases >= bounds[i]) & (view.bases < bounds[i + 1]))),
                "first_frame": int(bounds[i]),
                **f,
            }
            for i, f in enumerate(found)
        ]

    def close(self) -> None:
        """End the actors, and Ray if it was started for them."""
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        self._session.close()
