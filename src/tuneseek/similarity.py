"""Similar tracks: cosine search over the embeddings the library stores for each track.

The catalogue is the source of truth (vectors are stored with their tracks, in the same
transactions, and disappear with them); the searchable indexes are built from it in memory,
per embedding space, when a query first needs them:

* the **track index**: one vector per track (the mean of its segment vectors), id = track id;
* the **segment index**: one vector per 3.7 s segment, id = ``track id << SEGMENT_BITS | n``
  where segment ``n`` starts at ``n * hop`` seconds, so a hit names its track and its time.

Both are :class:`~tuneseek.store.vectors.VectorStore` objects (:class:`~tuneseek.store.vectors.FaissStore`
here: exact up to a million vectors, inverted lists above).

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

import numpy as np

from tuneseek.extractors import TEXT_AUDIO_SPACE
from tuneseek.store.catalog import Catalog
from tuneseek.store.vectors import FaissStore, VectorStore

#: Bits of a segment id that number the segment within its track (about 1000 h at 3.7 s).
SEGMENT_BITS = 20
#: Segment hits fetched per result wanted, before grouping them by track.
HITS_PER_RESULT = 16


class SpaceIndex:
    """The track and segment indexes of one embedding space, as the catalogue held it when built."""

    def __init__(self, catalog: Catalog, space: str, centred: bool = True):
        self.catalog = catalog
        self.space = space
        self.centred = centred
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
            self._tracks = FaissStore(dim)
            self._tracks.upsert(np.array(ids, np.int64), np.stack(vectors) - self._track_mean)
        if segments:
            self._segment_mean = segment_mean
            self._segments = FaissStore(dim)
            self._segments.upsert(np.concatenate(seg_ids), np.concatenate(seg_vectors) - self._segment_mean)

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
        scores, ids = self.tracks.search(query - self._track_mean, k, exclude=np.array(sorted(exclude), np.int64))
        return [(int(i), float(s), None) for s, i in zip(scores[0], ids[0]) if i >= 0]

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
            scores, ids = index.search(query - self._segment_mean, want)
            best: dict[int, tuple[float, float]] = {}
            for score, sid in zip(scores[0], ids[0]):
                if sid < 0:
                    break
                track_id, n = int(sid >> SEGMENT_BITS), int(sid & ((1 << SEGMENT_BITS) - 1))
                if track_id not in exclude and track_id not in best:
                    best[track_id] = (float(score), n * self._hops[track_id])
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
    share between threads: a query holds on to the :class:`SpaceIndex` it got."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._by_name: dict[str, SpaceIndex] = {}
        self._generation: int | None = None
        self._lock = threading.Lock()

    def get(self, space: str) -> SpaceIndex:
        """The stores of ``space``: centred, except the joint text–audio space (see the module docstring)."""
        generation = self.catalog.generation()
        with self._lock:
            if generation != self._generation:
                self._by_name, self._generation = {}, generation
            if space not in self._by_name:
                self._by_name[space] = SpaceIndex(self.catalog, space, centred=space != TEXT_AUDIO_SPACE)
            return self._by_name[space]
