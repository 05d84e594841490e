"""The vector-store seam, its local implementation (cosine search with FAISS), and which store a library uses.

A :class:`VectorStore` holds the vectors of one embedding space (a track's vector, or its
segments' vectors) under int64 ids: :meth:`~VectorStore.upsert`, :meth:`~VectorStore.delete`,
:meth:`~VectorStore.search`. A store is made for a *centre*, the vector it subtracts from what
it holds and from each query before comparing them by cosine (the space's mean, which the
catalogue keeps as sums written with the vectors, :meth:`~tuneseek.store.catalog.Catalog.space_mean`;
zero for a space compared as it is): a store never recomputes anything from all its vectors,
so one held by a server (:class:`~tuneseek.store.milvus.MilvusStore`) can take the local one's place.

:class:`FaissStore` is the local store, in this process's memory, built from the catalogue
when a query first needs it. Vectors are centred and L2-normalised on the way in, so an inner
product is a cosine. Search is exact (``IndexFlatIP``) up to ``exact_limit`` vectors, where exact search
is still fast, and uses an inverted-file index (``IndexIVFFlat``, about 4·√n lists,
``nprobe`` chosen so that recall@10 against exact search stays ≥ 0.95) above it.

:class:`CompressedFaissStore` holds vectors compressed instead, for a learned fingerprint's segments in a
large library: product-quantised codes of 16 bytes a vector and their ids, inside one FAISS index
(a rotation, inverted lists, ``IVFPQ``), no float32 copy. Its scores are approximate: a caller
that needs exact ones re-ranks a longer list of the ids it returns (as the learned fingerprint does with
the rows it holds anyway, see :mod:`tuneseek.fingerprint.learned`).

Which store holds a library's vectors is :class:`VectorsSpec` (``faiss``, the default, or
``milvus:URI``), recorded in its manifest.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from tuneseek.errors import LibraryError, UsageError
from tuneseek.store.manifest import MANIFEST_NAME

#: up to this many vectors, search is exact
EXACT_LIMIT = 1_000_000
#: share of the inverted lists visited per query
IVF_PROBE_SHARE = 0.08
#: bytes of a compressed vector's code (one byte per sub-quantiser of 8 bits). On 2 M learned-fingerprint
#: segments (``benchmarks/ivfpq.py``) a store held 35 bytes a segment (code, id, lists) and, its shortlist of
#: 64 re-ranked exactly, kept 99.4 % of exact search's 8 nearest.
PQ_BYTES = 16
#: share of a compressed store's inverted lists (about √n of them) a query visits, and the fewest it visits.
#: Measured on 2 M learned-fingerprint segments (1414 lists, a shortlist of 64 re-ranked exactly): recall@8
#: against exact search 0.986 visiting 1 % of the lists, 0.993 at 2 %, 0.994 at 3 %, 0.995 at 6 %, for 5.6,
#: 9.8, 12.8 and 23.5 ms of search a clip (``benchmarks/ivfpq.py``, one core).
PQ_PROBE_SHARE = 0.03
PQ_PROBE_MIN = 16
#: FAISS's k-means wants this many training vectors per centroid (it warns below)
_PER_CENTROID = 39


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
    """Vectors of one embedding space under int64 ids, searchable by cosine similarity after
    subtracting the store's ``centre`` from both sides."""

    dim: int
    centre: np.ndarray

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
    """Ids (int64) and their centred unit vectors in memory, searchable by cosine similarity with FAISS."""

    def __init__(self, dim: int, *, exact_limit: int = EXACT_LIMIT, centre: np.ndarray | None = None):
        self.dim = dim
        self.exact_limit = exact_limit
        self.centre = np.zeros(dim, np.float32) if centre is None else np.asarray(centre, np.float32)
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
        vectors = np.atleast_2d(np.asarray(vectors, np.float32))
        if vectors.shape != (len(ids), self.dim):
            raise UsageError(f"expected {len(ids)} vectors of {self.dim} dimensions, got {vectors.shape}")
        vectors = normalise(vectors - self.centre)
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
        q = np.atleast_2d(np.asarray(queries, np.float32))
        if q.shape[1] != self.dim:
            raise UsageError(f"query vectors have {q.shape[1]} dimensions, the index {self.dim}")
        q = normalise(q - self.centre)
        if len(self) == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        skip = np.zeros(0, np.int64) if exclude is None else np.asarray(exclude, np.int64)
        scores, rows = self._built().search(q, min(len(self), k + len(skip)))
        return _best(scores, np.where(rows >= 0, self.ids[np.maximum(rows, 0)], -1), k, skip)


def _best(scores: np.ndarray, ids: np.ndarray, k: int, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` of each row's ``(scores, ids)`` that are neither missing (-1) nor in ``skip``,
    padded with ``(-inf, -1)``: what :meth:`VectorStore.search` gives."""
    out_s = np.full((len(ids), k), -np.inf, np.float32)
    out_i = np.full((len(ids), k), -1, np.int64)
    for r in range(len(ids)):
        ok = (ids[r] >= 0) & ~np.isin(ids[r], skip)
        s, i = scores[r][ok][:k], ids[r][ok][:k]
        out_s[r, : len(s)], out_i[r, : len(i)] = s, i
    return out_s, out_i


def _lists(size: int) -> int:
    """The inverted lists of a compressed store sized for ``size`` vectors: about √size, and no more than
    FAISS's k-means has vectors for."""
    return max(1, min(int(np.sqrt(size)), size // _PER_CENTROID))


class CompressedFaissStore:
    """Ids (int64) and their centred unit vectors as product-quantised codes in one FAISS index,
    searchable by approximate cosine similarity; no float32 copy is kept.

    The index (a rotation, about √n inverted lists, and ``subquantisers`` codes of 8 bits a vector for its
    residual from its list's centroid; a query visits a share ``probe`` of the lists) is trained once, on
    a sample of at most ``max(64·lists, 65536)`` of the n vectors it is sized for (:meth:`sample`): by
    :meth:`train`, which a caller holding many vectors calls first with the sample alone, so that no more
    than it and the vectors of one upsert are ever held in float32; or else on the vectors it holds when
    it is first searched, which until then an upsert only collects (as float32). Once trained, an upsert
    removes the ids' old codes and adds new ones, a delete removes codes: neither re-trains nor rebuilds,
    and nothing re-trains it later (a store that grows far past the size it was trained at keeps its lists,
    which grow longer). :meth:`copy` carries the codes and their training to another store.

    The rotation turns the vectors onto their principal axes and deals those round the sub-quantisers, so
    that each codes an equal share of the variance (a learned fingerprint's segments put nearly all of it
    in a few axes, which plain product quantisation would leave to one or two sub-quantisers); see
    ``benchmarks/ivfpq.py`` for how it compares with none and with FAISS's trained rotation (``OPQ``).

    A store trained on fewer than ``39·256`` vectors (only a store forced onto a small collection) has
    coarser codes: fewer bits, as FAISS's k-means wants 39 vectors per centroid.
    """

    def __init__(
        self,
        dim: int,
        *,
        centre: np.ndarray | None = None,
        subquantisers: int = PQ_BYTES,
        probe: float = PQ_PROBE_SHARE,
    ):
        if dim % subquantisers:
            raise UsageError(f"{dim} dimensions do not split into {subquantisers} sub-quantisers")
        self.dim = dim
        self.subquantisers = subquantisers
        self.probe = probe  # share of the lists a query visits (at least PQ_PROBE_MIN), read at each search
        self.centre = np.zeros(dim, np.float32) if centre is None else np.asarray(centre, np.float32)
        self.trained_size = 0  # the vectors it was trained for; 0 until trained
        self._index = None  # the trained FAISS index
        self._pending = FaissStore(dim)  # what was upserted before the index was trained

    def __len__(self) -> int:
        return len(self._pending) if self._index is None else int(self._index.ntotal)

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add the vectors of ``ids``, replacing any they had."""
        ids = np.asarray(ids, np.int64)
        vectors = np.atleast_2d(np.asarray(vectors, np.float32))
        if vectors.shape != (len(ids), self.dim):
            raise UsageError(f"expected {len(ids)} vectors of {self.dim} dimensions, got {vectors.shape}")
        vectors = vectors - self.centre
        if self._index is None:
            self._pending.upsert(ids, vectors)
            return
        self.delete(ids)
        self._index.add_with_ids(normalise(vectors), ids)

    def delete(self, ids: np.ndarray) -> None:
        """Forget the vectors of ``ids``."""
        ids = np.asarray(ids, np.int64)
        if self._index is None:
            self._pending.delete(ids)
        elif len(ids):
            self._index.remove_ids(_faiss().IDSelectorBatch(ids))

    def copy(self) -> CompressedFaissStore:
        """Another store holding the same codes under the same training (the index cloned: nothing is
        re-trained or re-encoded), to change while this one still answers."""
        other = CompressedFaissStore(self.dim, centre=self.centre, subquantisers=self.subquantisers, probe=self.probe)
        if self._index is None:
            other._pending.upsert(self._pending.ids, self._pending.vectors)
        else:
            other._index, other.trained_size = _faiss().clone_index(self._index), self.trained_size
        return other

    @staticmethod
    def sample(size: int) -> np.ndarray:
        """Which of ``size`` vectors (positions, ascending) a store sized for them trains on: at most
        ``max(64·lists, 65536)`` drawn at random (seeded, so the same ``size`` draws the same ones)."""
        lists = _lists(size)
        return np.sort(np.random.default_rng(0).choice(size, min(size, max(64 * lists, 1 << 16)), replace=False))

    def train(self, sample: np.ndarray, *, size: int | None = None) -> None:
        """Train the index on ``sample`` (vectors as :meth:`upsert` takes them: the :meth:`sample` positions of
        the ``size`` vectors it is sized for, ``len(sample)`` by default), before the bulk of them is upserted,
        so that they need not be collected first; any already collected are encoded now. A store is trained
        once: training it again is a :class:`UsageError`."""
        if self._index is not None:
            raise UsageError("this compressed store is already trained")
        sample = np.atleast_2d(np.asarray(sample, np.float32))
        if sample.shape[1:] != (self.dim,) or not len(sample):
            raise UsageError(f"expected training vectors of {self.dim} dimensions, got {sample.shape}")
        self._train(normalise(sample - self.centre), len(sample) if size is None else size)

    def _train(self, sample: np.ndarray, size: int) -> None:
        """Train on ``sample`` (centred unit vectors) for ``size`` vectors, then encode those collected."""
        faiss = _faiss()
        lists = _lists(size)
        bits = int(np.clip(np.log2(max(size, 2) / _PER_CENTROID), 1, 8))
        ivf = faiss.IndexIVFPQ(
            faiss.IndexFlatIP(self.dim), self.dim, lists, self.subquantisers, bits, faiss.METRIC_INNER_PRODUCT
        )
        axes = np.linalg.eigh(sample.T.astype(np.float64) @ sample)[1][:, ::-1]  # by falling variance
        dealt = axes[:, np.argsort(np.arange(self.dim) % self.subquantisers, kind="stable")]
        rotation = faiss.LinearTransform(self.dim, self.dim, False)
        faiss.copy_array_to_vector(np.ascontiguousarray(dealt.T, np.float32).ravel(), rotation.A)
        rotation.is_trained = True
        index = faiss.IndexPreTransform(rotation, ivf)
        index.train(sample)
        pending = self._pending
        if len(pending):
            index.add_with_ids(pending.vectors, pending.ids)
        self._index, self._pending, self.trained_size = index, FaissStore(self.dim), size

    def _built(self):
        if self._index is None:
            pending = self._pending
            self._train(pending.vectors[self.sample(len(pending))], len(pending))
        return self._index

    def search(
        self, queries: np.ndarray, k: int = 10, *, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar ids per query row by approximate cosine: ``(scores (n, k), ids (n, k))``,
        best first by the approximate scores. ``exclude`` ids never appear; missing results are id -1."""
        q = np.atleast_2d(np.asarray(queries, np.float32))
        if q.shape[1] != self.dim:
            raise UsageError(f"query vectors have {q.shape[1]} dimensions, the index {self.dim}")
        if len(self) == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        skip = np.zeros(0, np.int64) if exclude is None else np.asarray(exclude, np.int64)
        faiss, index = _faiss(), self._built()
        lists = faiss.extract_index_ivf(index).nlist
        visit = faiss.SearchParametersIVF(nprobe=min(lists, max(PQ_PROBE_MIN, int(np.ceil(self.probe * lists)))))
        scores, ids = index.search(
            normalise(q - self.centre),
            min(len(self), k + len(skip)),
            params=faiss.SearchParametersPreTransform(index_params=visit),
        )
        return _best(scores, ids, k, skip)


#: The name of a Milvus Lite file that ``milvus`` alone puts in the library directory.
LITE_FILE = "vectors.db"
_SERVER = re.compile(r"^(https?|tcp|grpc)://[^/\s:]+(:\d+)?/?$")


@dataclass(frozen=True)
class VectorsSpec:
    """Which store holds a library's vectors: ``faiss`` (in each process's memory, built from the
    catalogue; the default), or ``milvus`` at ``uri`` (a Milvus Lite file, absolute, or a server's
    address) under collections named from ``prefix``."""

    store: str = "faiss"
    uri: str | None = None
    prefix: str | None = None

    def __str__(self) -> str:
        return self.store if self.uri is None else f"{self.store}:{self.uri}"

    @property
    def lite(self) -> bool:
        """Whether the store is a Milvus Lite file (one process at a time may open it)."""
        return self.store == "milvus" and not _SERVER.match(self.uri or "")

    def same_place(self, other: VectorsSpec) -> bool:
        return (self.store, self.uri) == (other.store, other.uri)

    @classmethod
    def parse(cls, text: str, root: Path) -> VectorsSpec:
        """What a person asked for (``--vectors``): ``faiss``; ``milvus`` (a Milvus Lite file in the
        library directory, ``root``); ``milvus:FILE.db`` (a Milvus Lite file, relative to the current
        directory); ``milvus:http://HOST:PORT`` (a Milvus server). Anything else is a one-line :class:`UsageError`."""
        text = text.strip()
        store, _, uri = text.partition(":")
        if store == "faiss" and not uri:
            return cls()
        if store == "milvus":
            if not uri:
                return cls("milvus", str(Path(root).absolute() / LITE_FILE))
            if _SERVER.match(uri):
                return cls("milvus", uri.rstrip("/"))
            if "://" not in uri and uri.endswith(".db"):
                return cls("milvus", os.path.abspath(os.path.expanduser(uri)))
        raise UsageError(
            f"--vectors {text!r}: expected faiss, milvus (a Milvus Lite file in the library), "
            "milvus:FILE.db (a Milvus Lite file) or milvus:http://HOST:PORT (a Milvus server)"
        )

    def to_manifest(self, root: Path) -> dict:
        """What the manifest records: a Lite file inside the library relative to it (the library may move)."""
        uri = self.uri
        if self.lite and uri is not None:
            inside = Path(uri).resolve().is_relative_to(Path(root).resolve())
            uri = os.path.relpath(Path(uri).resolve(), Path(root).resolve()) if inside else uri
        return {"store": self.store, "uri": uri, "prefix": self.prefix}

    @classmethod
    def from_manifest(cls, data: dict, root: Path) -> VectorsSpec:
        """The store a library's manifest records (``faiss`` when it records none)."""
        found = data.get("vectors")
        if found is None:
            return cls()
        if not isinstance(found, dict) or found.get("store") not in ("faiss", "milvus"):
            raise LibraryError(root, f"the manifest names an unknown vector store: {found!r}")
        uri = found.get("uri")
        if found["store"] == "milvus" and uri and not _SERVER.match(uri) and not os.path.isabs(uri):
            uri = str(Path(root).absolute() / uri)
        return cls(found["store"], uri, found.get("prefix"))


def choose_vectors(root: Path, recorded: VectorsSpec, wanted: VectorsSpec | None) -> tuple[VectorsSpec, bool]:
    """The store a library uses, from what its manifest records and what was asked for; and whether the
    vectors move there now (from FAISS, which keeps nothing outside the catalogue, into Milvus: the
    caller records it and fills the store). Asking for another store than a recorded Milvus is a
    one-line :class:`LibraryError`."""
    if wanted is None or wanted.same_place(recorded):
        return recorded, False
    if recorded.store == "faiss":
        return VectorsSpec(wanted.store, wanted.uri, f"tuneseek_{secrets.token_hex(4)}"), True
    raise LibraryError(
        root,
        f"its vectors are kept in {recorded} (as its {MANIFEST_NAME} says), not {wanted}: leave out --vectors",
    )
