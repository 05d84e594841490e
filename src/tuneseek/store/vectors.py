"""The vector-store seam, and its local implementation: cosine search over embeddings with FAISS.

A :class:`VectorStore` holds the vectors of one embedding space (a track's vector, or its
segments' vectors) under int64 ids: :meth:`~VectorStore.upsert`, :meth:`~VectorStore.delete`,
:meth:`~VectorStore.search`. The library keeps every vector in its catalogue too, written in
the same transaction as the track, with the sums a space's scoring needs
(:meth:`~tuneseek.store.catalog.Catalog.space_mean`): a store never recomputes anything from
all its vectors, so one held by a server (Milvus) can take the local one's place.

:class:`FaissStore` is the local store, in this process's memory, built from the catalogue
when a query first needs it. Vectors are L2-normalised on the way in, so an inner product is
a cosine. Search is exact (``IndexFlatIP``) up to ``exact_limit`` vectors, where exact search
is still fast, and uses an inverted-file index (``IndexIVFFlat``, about 4·√n lists,
``nprobe`` chosen so that recall@10 against exact search stays ≥ 0.95) above it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from tuneseek.errors import UsageError

#: up to this many vectors, search is exact
EXACT_LIMIT = 1_000_000
#: share of the inverted lists visited per query
IVF_PROBE_SHARE = 0.08


def _faiss():
    try:
        import faiss
    except ImportError:
        raise UsageError("vector search needs FAISS: pip install 'tuneseek[models]' (faiss-cpu)") from None
    return faiss


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


class VectorStore(Protocol):
    """Vectors of one embedding space under int64 ids, searchable by cosine similarity."""

    dim: int

    def __len__(self) -> int: ...

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add the vectors of ``ids``, replacing any they had."""

    def delete(self, ids: np.ndarray) -> None:
        """Forget the vectors of ``ids`` (ids it does not hold are ignored)."""

    def search(
        self, queries: np.ndarray, k: int = 10, *, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar ids per query row: ``(scores (n, k), ids (n, k))``, best first; missing ids are -1."""


class FaissStore:
    """Ids (int64) and their unit vectors in memory, searchable by cosine similarity with FAISS."""

    def __init__(self, dim: int, exact_limit: int = EXACT_LIMIT):
        self.dim = dim
        self.exact_limit = exact_limit
        self.ids = np.zeros(0, np.int64)
        self.vectors = np.zeros((0, dim), np.float32)
        self._index = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def exact(self) -> bool:
        return len(self) <= self.exact_limit

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add the vectors of ``ids``, replacing any they had."""
        ids = np.asarray(ids, np.int64)
        vectors = normalise(vectors)
        if vectors.shape != (len(ids), self.dim):
            raise UsageError(f"expected {len(ids)} vectors of {self.dim} dimensions, got {vectors.shape}")
        keep = ~np.isin(self.ids, ids)
        self.ids = np.concatenate([self.ids[keep], ids])
        self.vectors = np.concatenate([self.vectors[keep], vectors])
        self._index = None

    def delete(self, ids: np.ndarray) -> None:
        """Forget the vectors of ``ids``."""
        keep = ~np.isin(self.ids, np.asarray(ids, np.int64))
        self.ids, self.vectors = self.ids[keep], self.vectors[keep]
        self._index = None

    def _built(self):
        if self._index is None:
            faiss = _faiss()
            if self.exact:
                index = faiss.IndexFlatIP(self.dim)
            else:
                lists = int(4 * np.sqrt(len(self)))
                index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, lists, faiss.METRIC_INNER_PRODUCT)
                sample = np.random.default_rng(0).choice(len(self), min(len(self), 64 * lists), replace=False)
                index.train(self.vectors[np.sort(sample)])
                index.nprobe = max(1, int(np.ceil(IVF_PROBE_SHARE * lists)))
            index.add(self.vectors)
            self._index = index
        return self._index

    def search(
        self, queries: np.ndarray, k: int = 10, *, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar ids per query row: ``(scores (n, k), ids (n, k))``, best first.

        ``exclude`` ids (a query track itself) never appear; missing results are id -1.
        """
        q = normalise(np.atleast_2d(queries))
        if q.shape[1] != self.dim:
            raise UsageError(f"query vectors have {q.shape[1]} dimensions, the index {self.dim}")
        if len(self) == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        skip = np.zeros(0, np.int64) if exclude is None else np.asarray(exclude, np.int64)
        want = min(len(self), k + len(skip))
        scores, rows = self._built().search(q, want)
        ids = np.where(rows >= 0, self.ids[np.maximum(rows, 0)], -1)
        out_s = np.full((len(q), k), -np.inf, np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        for r in range(len(q)):
            ok = (ids[r] >= 0) & ~np.isin(ids[r], skip)
            s, i = scores[r][ok][:k], ids[r][ok][:k]
            out_s[r, : len(s)], out_i[r, : len(i)] = s, i
        return out_s, out_i
