"""Similar tracks: cosine search over the embeddings the library stores for each track.

The catalogue is the source of truth (vectors are stored with their tracks, in the same
transactions, and disappear with them); the searchable indexes are built from it in memory,
per embedding space, when a query first needs them:

* the **track index**: one vector per track (the mean of its segment vectors), id = track id;
* the **segment index**: one vector per 3.7 s segment, id = ``track id << SEGMENT_BITS | n``
  where segment ``n`` starts at ``n * hop`` seconds, so a hit names its track and its time.

Both are :class:`~tuneseek.store.vectors.VectorStore` objects: by default
:class:`~tuneseek.store.vectors.FaissStore` (exact up to a million vectors, inverted lists above),
built here from the catalogue; for a library whose manifest names Milvus,
:class:`~tuneseek.store.milvus.MilvusStore` collections that the writer keeps in step with the
catalogue (:meth:`Spaces.sync` inside its transactions, :meth:`Spaces.reconcile` after a crash,
:meth:`Spaces.settle` to re-centre; see :mod:`tuneseek.store.milvus` for how a store that
outlives the process handles the moving mean).

Vectors are compared after subtracting the library's mean vector (of the tracks, or of the
segments), which the catalogue keeps as running sums updated with every vector it stores
(:meth:`~tuneseek.store.catalog.Catalog.space_mean`), so no store has to recompute it. Embeddings such as musicnn's penultimate layer share a large common component, so
raw cosines between any two pieces of music crowd into 0.7-1.0 (and with untrained weights
into 0.999+); centring removes what all the library's music has in common and ranks by
what sets tracks apart. A joint text–audio space is the exception (``centred=False``): its
vectors were trained to be compared as they are, text against audio, by dot product.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from itertools import chain
from pathlib import Path

import numpy as np

from tuneseek.extractors import TEXT_AUDIO_SPACE
from tuneseek.store import manifest
from tuneseek.store.catalog import Catalog, Embedded
from tuneseek.store.lock import WriterLock
from tuneseek.store.vectors import FaissStore, VectorsSpec, VectorStore, choose_vectors

#: Bits of a segment id that number the segment within its track (about 1000 h at 3.7 s).
SEGMENT_BITS = 20
#: Segment hits fetched per result wanted, before grouping them by track.
HITS_PER_RESULT = 16
#: Tracks projected or reconciled per batch of store writes.
SYNC_BATCH = 256
#: Results fetched beyond those wanted from a store outside the process, for hits the catalogue has just dropped.
SPARE_HITS = 8


class SpaceIndex:
    """The track and segment indexes of one embedding space, as the catalogue held it when built."""

    def __init__(self, catalog: Catalog, space: str, *, centred: bool = True, vectors=None):
        self.catalog = catalog
        self.space = space
        self.centred = centred
        self.vectors = vectors  # a MilvusVectors holding the space, or None: FAISS built here
        self._tracks: VectorStore | None = None
        self._segments: VectorStore | None = None
        self._track_mean: np.ndarray | None = None
        self._segment_mean: np.ndarray | None = None
        self._hops: dict[int, float] = {}

    def _mean(self, kind: str, dim: int) -> np.ndarray:
        """The stored mean of the space's ``kind`` vectors, or zeros for a space compared as it is."""
        mean = self.catalog.space_mean(self.space, kind) if self.centred else None
        return np.zeros(dim, np.float32) if mean is None else mean

    def _load(self, segments: bool) -> None:
        """Build the track store (unless built), and the segment store too when ``segments``."""
        if self.vectors is not None:
            self._open(segments)
            return
        ids, vectors, seg_ids, seg_vectors = [], [], [], []
        with self.catalog.snapshot():
            for e in self.catalog.embeddings(self.space, segments=segments):
                ids.append(e.track_id)
                vectors.append(e.track_vector)
                self._hops[e.track_id] = e.hop
                if segments:
                    seg_ids.append((np.int64(e.track_id) << SEGMENT_BITS) + np.arange(len(e.segments), dtype=np.int64))
                    seg_vectors.append(e.segments)
            if not ids:
                return
            dim = len(vectors[0])
            track_mean, segment_mean = self._mean("track", dim), self._mean("segment", dim)
        if self._tracks is None:
            self._track_mean = track_mean
            self._tracks = FaissStore(dim, centre=track_mean)
            self._tracks.upsert(np.array(ids, np.int64), np.stack(vectors))
        if segments:
            self._segment_mean = segment_mean
            self._segments = FaissStore(dim, centre=segment_mean)
            self._segments.upsert(np.concatenate(seg_ids), np.concatenate(seg_vectors))

    def _open(self, segments: bool) -> None:
        """Open the space's collections in Milvus, scored after subtracting the catalogue's current means."""
        with self.catalog.snapshot():
            if self._tracks is None and (store := self.vectors.open(self.space, "track")) is not None:
                self._track_mean = self._mean("track", store.dim)
                self._tracks = store.at(self._track_mean)
            if segments and (store := self.vectors.open(self.space, "segment")) is not None:
                self._segment_mean = self._mean("segment", store.dim)
                self._segments = store.at(self._segment_mean)

    def _hop(self, track_id: int) -> float | None:
        """Seconds between a track's segments; ``None`` when the catalogue no longer holds it in this space."""
        if track_id not in self._hops:
            stored = next(self.catalog.embeddings(self.space, track_id=track_id, segments=False), None)
            if stored is None:
                return None
            self._hops[track_id] = stored.hop
        return self._hops[track_id]

    def _search(self, kind: str, query: np.ndarray, k: int, exclude: set[int]):
        """``(scores, ids)`` of one query in the ``kind`` store; a store in Milvus that a re-centring
        writer replaced since it was opened is opened again."""
        skip = np.array(sorted(exclude), np.int64)
        try:
            return getattr(self, kind).search(query, k, exclude=skip)
        except Exception:
            if self.vectors is None:
                raise
            self._tracks = self._segments = None
            return getattr(self, kind).search(query, k, exclude=skip)

    @property
    def tracks(self) -> VectorStore | None:
        if self._tracks is None:
            self._load(segments=False)
        return self._tracks

    @property
    def segments(self) -> VectorStore | None:
        if self._segments is None:
            self._load(segments=True)
        return self._segments

    def __len__(self) -> int:
        return 0 if self.tracks is None else len(self.tracks)

    def by_track(self, query: np.ndarray, k: int, exclude: set[int]) -> list[tuple[int, float, None]]:
        """``(track id, cosine, None)`` of the ``k`` tracks whose vectors are nearest ``query``."""
        if self.tracks is None:
            return []
        if self.vectors is None:
            scores, ids = self._search("tracks", query, k, exclude)
            return [(int(i), float(s), None) for s, i in zip(scores[0], ids[0]) if i >= 0]
        scores, ids = self._search("tracks", query, k + SPARE_HITS, exclude)
        found = [
            (int(i), float(s), None) for s, i in zip(scores[0], ids[0]) if i >= 0 and self._hop(int(i)) is not None
        ]
        return found[:k]

    def by_segment(self, query: np.ndarray, k: int, exclude: set[int]) -> list[tuple[int, float, float]]:
        """``(track id, cosine, segment start)`` of the ``k`` tracks holding the segments nearest ``query``.

        Each track counts once, with its best segment. Segment hits are fetched in growing
        batches until ``k`` distinct tracks are found or the index is exhausted.
        """
        index = self.segments
        if index is None:
            return []
        want = min(len(index), HITS_PER_RESULT * k)
        while True:
            scores, ids = self._search("segments", query, want, set())
            best: dict[int, tuple[float, float]] = {}
            for score, sid in zip(scores[0], ids[0]):
                if sid < 0:
                    break
                track_id, n = int(sid >> SEGMENT_BITS), int(sid & ((1 << SEGMENT_BITS) - 1))
                if track_id not in exclude and track_id not in best and (hop := self._hop(track_id)) is not None:
                    best[track_id] = (float(score), n * hop)
            if len(best) >= k or want >= len(index):
                break
            want = min(len(index), 4 * want)
        return [(tid, score, time) for tid, (score, time) in list(best.items())[:k]]


def plane(vectors: np.ndarray) -> np.ndarray:
    """``(n, 2)`` coordinates of ``vectors`` on their two principal axes, for a map of a library.

    PCA by one thin SVD (NumPy, milliseconds for a hundred thousand tracks): a map a server draws
    on request must not wait for t-SNE, nor need scikit-learn installed beside it.
    """
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2), np.float32)
    centred = vectors - vectors.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ axes[:2].T
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    # a principal axis has no sign of its own: fix it, so that the same library draws the same map
    return (xy * np.where(xy[np.abs(xy).argmax(axis=0), [0, 1]] < 0, -1, 1)).astype(np.float32)


class Spaces:
    """The searchable stores of every embedding space, built on first use and dropped whenever the
    catalogue's generation moves (a track added or removed, by this process or another). Safe to
    share between threads: a query holds on to the :class:`SpaceIndex` it got.

    With ``spec`` naming Milvus, the stores are collections there, and the writer keeps them in
    step with the catalogue: :meth:`sync` inside each transaction that changes tracks' vectors,
    :meth:`reconcile` before each write (what a crash left half-done), :meth:`settle` after it
    (re-centring). With FAISS these do nothing: its stores are built from the catalogue."""

    def __init__(self, catalog: Catalog, *, spec: VectorsSpec | None = None, where: str | Path = ""):
        self.catalog = catalog
        self.spec = spec or VectorsSpec()
        self.vectors = None
        if self.spec.store == "milvus":
            from tuneseek.store.milvus import MilvusVectors  # pymilvus is loaded only for a library that uses it

            self.vectors = MilvusVectors(self.spec, where)
        self._by_name: dict[str, SpaceIndex] = {}
        self._generation: int | None = None
        self._lock = threading.Lock()
        self._marked_changing = False  # whether this writer has marked the store as being changed

    @staticmethod
    def check(spec: VectorsSpec, root: Path) -> None:
        """Refuse (one line) a store a new library at ``root`` could not open; FAISS always opens."""
        if spec.store == "milvus":
            from tuneseek.store.milvus import MilvusVectors

            MilvusVectors.check(spec, root)

    @staticmethod
    def record_new(root: Path, wanted: VectorsSpec | None) -> dict | None:
        """What the manifest of a new library at ``root`` records of the store ``wanted`` (``None``: FAISS,
        nothing), once that store is known to open: a library never records a store it cannot open."""
        wanted = wanted and choose_vectors(root, VectorsSpec(), wanted)[0]
        if wanted is None or wanted.store == "faiss":
            return None
        Spaces.check(wanted, root)
        return wanted.to_manifest(root)

    def move_in(self, root: Path) -> None:
        """Record this store in the manifest of the library at ``root`` and fill it from the catalogue: the
        library's vectors move from FAISS (which keeps nothing outside the catalogue) into Milvus."""
        with WriterLock(root):
            manifest.set_vectors(root, self.spec.to_manifest(root))
            self.reconcile()
            self.settle()

    @staticmethod
    def centred(space: str) -> bool:
        """Whether ``space`` is compared after subtracting its mean (every space but the joint text–audio one)."""
        return space != TEXT_AUDIO_SPACE

    def get(self, space: str) -> SpaceIndex:
        """The stores of ``space``: centred, except the joint text–audio space (see the module docstring)."""
        generation = self.catalog.generation()
        with self._lock:
            if generation != self._generation:
                self._by_name, self._generation = {}, generation
            if space not in self._by_name:
                self._by_name[space] = SpaceIndex(
                    self.catalog, space, centred=self.centred(space), vectors=self.vectors
                )
            return self._by_name[space]

    def close(self) -> None:
        if self.vectors is not None:
            self.vectors.close()

    # -- the writer's side (it holds the writer lock) ------------------------------------------
    def sync(self, track_ids: Iterable[int]) -> None:
        """Make the store hold what the catalogue holds for ``track_ids`` (their vectors in every space,
        or nothing): called inside the catalogue transaction that changed them, so that a store that
        fails fails the transaction."""
        ids = sorted(set(int(t) for t in track_ids))
        if self.vectors is None or not ids:
            return
        for space in sorted(set(self.catalog.spaces()) | self.vectors.spaces()):
            stored = [e for t in ids if (e := next(self.catalog.embeddings(space, track_id=t), None)) is not None]
            self._put(space, stored)
            held = {e.track_id for e in stored}
            self._remove(space, [t for t in ids if t not in held])

    def reconcile(self) -> None:
        """Repair what a crash between the catalogue and the store left: every space's tracks whose stored
        stamp differs from the catalogue's vectors are rewritten, tracks the catalogue lost are deleted,
        collections a re-centring left half-made are dropped. Time grows with tracks, not segments; and
        nothing is read when the store was left in step at the catalogue's current generation."""
        if self.vectors is None:
            return
        from tuneseek.store.milvus import KINDS, stamp_of

        generation = self.catalog.generation()
        if self.vectors.synced() == generation:  # nothing written since the last writer left it in step
            return
        catalogued = set(self.catalog.spaces())
        for space in sorted(catalogued | self.vectors.spaces()):
            for kind in KINDS:
                self.vectors.sweep(space, kind)
            if space not in catalogued:
                self.vectors.drop_space(space)
                continue
            tracks, segments = self.vectors.open(space, "track"), self.vectors.open(space, "segment")
            if tracks is None or segments is None:
                for kind in KINDS:
                    self._rebuild(space, kind)
                continue
            want = {e.track_id: stamp_of(e.track_vector) for e in self.catalog.embeddings(space, segments=False)}
            have = tracks.stamps()
            redo = [t for t, stamp in want.items() if have.get(t) != stamp]
            for start in range(0, len(redo), SYNC_BATCH):
                self._put(
                    space, [next(self.catalog.embeddings(space, track_id=t)) for t in redo[start : start + SYNC_BATCH]]
                )
            self._remove(space, [t for t in have if t not in want])
        self._mark(generation)
        self._forget()

    def settle(self) -> None:
        """After a write: re-centre the collections whose stored centre the space's mean has left
        (see :mod:`tuneseek.store.milvus`), or whose index no longer fits their size."""
        if self.vectors is None:
            return
        from tuneseek.store.milvus import ALWAYS_RECENTRE, RECENTRE_SHARE, index_for

        for space in self.catalog.spaces():
            for kind in ("track", "segment"):
                store = self.vectors.open(space, kind)
                if store is None:
                    continue
                centre = self._centre(space, kind, store.dim)
                moved = float(np.linalg.norm(centre.astype(np.float64) - store.stored_centre))
                n = len(store)
                if (moved > 0 and (n <= ALWAYS_RECENTRE or moved > RECENTRE_SHARE * store.typical_norm)) or (
                    index_for(n) != store.index
                ):
                    self._rebuild(space, kind, n)
        # every change since the last mark went through sync (a failed one fails its write before here)
        self._mark(self.catalog.generation())
        self._forget()

    def _mark(self, generation: int | None) -> None:
        """Record in the store that it is in step with the catalogue at ``generation`` (``None``: that it
        may not be, written before this writer's first change to it, so that a crash forces a full reconcile)."""
        self.vectors.set_synced(-1 if generation is None else generation)
        self._marked_changing = generation is None

    def _changing(self) -> None:
        if not self._marked_changing:
            self._mark(None)

    def _forget(self) -> None:
        """Drop the stores this process opened: the writer has just replaced some."""
        with self._lock:
            self._by_name, self._generation = {}, None

    def _centre(self, space: str, kind: str, dim: int) -> np.ndarray:
        """What a store of ``space`` subtracts: its mean as the catalogue holds it now, or zeros."""
        mean = self.catalog.space_mean(space, kind) if self.centred(space) else None
        return np.zeros(dim, np.float32) if mean is None else mean

    def _writable(self, space: str, dim: int):
        """The space's track and segment collections, made (empty, stored for the current mean) when missing."""
        stores = []
        for kind in ("track", "segment"):
            store = self.vectors.open(space, kind)
            if store is None:
                store = self.vectors.seal(
                    self.vectors.create(space, kind, dim=dim, centre=self._centre(space, kind, dim)), 0.0
                )
            stores.append(store)
        return stores

    def _put(self, space: str, stored: list[Embedded]) -> None:
        """Write tracks' vectors: each track row first marked pending, then its segments, then the row
        with its stamp (so a row with the catalogue's stamp means a complete track)."""
        if not stored:
            return
        from tuneseek.store.milvus import PENDING, stamp_of

        self._changing()
        tracks, segments = self._writable(space, len(stored[0].track_vector))
        ids = np.array([e.track_id for e in stored], np.int64)
        vectors = np.stack([e.track_vector for e in stored])
        tracks.upsert(ids, vectors, stamps=PENDING)
        segments.delete_ranges(_segment_range(t) for t in ids)
        seg_ids = [(np.int64(e.track_id) << SEGMENT_BITS) + np.arange(len(e.segments), dtype=np.int64) for e in stored]
        stamps = np.array([stamp_of(v) for v in vectors], np.int64)
        if sum(len(x) for x in seg_ids):
            segments.upsert(
                np.concatenate(seg_ids),
                np.concatenate([e.segments for e in stored]),
                stamps=np.repeat(stamps, [len(e.segments) for e in stored]),
            )
        tracks.upsert(ids, vectors, stamps=stamps)

    def _remove(self, space: str, track_ids: list[int]) -> None:
        """Delete tracks' vectors from the space's collections: segments first, then the track row."""
        tracks = self.vectors.open(space, "track") if track_ids else None
        if tracks is None:
            return
        held = sorted(tracks.present(track_ids))
        if not held:
            return
        self._changing()
        segments = self.vectors.open(space, "segment")
        if segments is not None:
            segments.delete_ranges(_segment_range(t) for t in held)
        tracks.delete(held)

    def _rebuild(self, space: str, kind: str, expected: int = 0) -> None:
        """A fresh collection of the space's ``kind`` vectors from the catalogue, stored for the current
        mean and swapped in whole when complete (readers keep using the old one until then)."""
        from tuneseek.store.milvus import stamp_of

        with self.catalog.snapshot():
            stored = self.catalog.embeddings(space, segments=kind == "segment")
            first = next(stored, None)
            if first is None:
                return
            dim = len(first.track_vector)
            self._changing()
            store = self.vectors.create(space, kind, dim=dim, centre=self._centre(space, kind, dim), expected=expected)
            norms, batch, rows = [], [], 0
            for e in chain([first], stored):
                batch.append(e)
                rows += len(e.segments) if kind == "segment" else 1
                if rows >= 4096:
                    norms.append(self._write_all(store, kind, batch, stamp_of))
                    batch, rows = [], 0
            if batch:
                norms.append(self._write_all(store, kind, batch, stamp_of))
        norms = np.concatenate(norms) if norms else np.zeros(0)
        self.vectors.seal(store, float(np.median(norms)) if len(norms) else 0.0)

    @staticmethod
    def _write_all(store, kind: str, batch: list[Embedded], stamp_of) -> np.ndarray:
        """Write a batch of tracks' ``kind`` vectors into a collection being built; their centred lengths."""
        stamps = np.array([stamp_of(e.track_vector) for e in batch], np.int64)
        if kind == "track":
            ids, vectors = np.array([e.track_id for e in batch], np.int64), np.stack([e.track_vector for e in batch])
        else:
            ids = np.concatenate(
                [(np.int64(e.track_id) << SEGMENT_BITS) + np.arange(len(e.segments), dtype=np.int64) for e in batch]
            )
            vectors = np.concatenate([e.segments for e in batch])
            stamps = np.repeat(stamps, [len(e.segments) for e in batch])
        if len(ids) == 0:
            return np.zeros(0)
        store.upsert(ids, vectors, stamps=stamps)
        return np.linalg.norm(vectors.astype(np.float64) - store.stored_centre, axis=1)


def _segment_range(track_id: int) -> tuple[int, int]:
    """The ids of a track's segments: ``[track << SEGMENT_BITS, (track + 1) << SEGMENT_BITS)``."""
    return int(track_id) << SEGMENT_BITS, (int(track_id) + 1) << SEGMENT_BITS
