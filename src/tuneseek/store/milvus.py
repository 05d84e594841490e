"""Vectors in Milvus (``--vectors milvus:...``): Milvus Lite in a local file, or any Milvus server.

One library's embedding spaces live in collections named ``PREFIX_SPACE_KIND_EPOCH`` (``PREFIX``
from the manifest, ``SPACE`` the space's name in hex, ``KIND`` ``t`` for track vectors or ``s``
for segment vectors, ids as in :mod:`tuneseek.similarity`: a track's id, or ``track << 20 | n``),
each with an int64 primary key ``id``, a float ``norm``, an int64 ``stamp`` and a float vector,
compared by inner product (``IP``) under a ``FLAT`` index up to a million vectors and ``HNSW``
above (:func:`index_for`).

**What a collection holds, and why (centring).** ``similar`` scores are cosines after subtracting
the library's mean vector ``m`` (see :mod:`tuneseek.similarity`), and ``m`` moves with every track
added or removed. A server-side index cannot subtract a moving vector from everything it holds,
and the score is no inner product of the raw vectors (each vector's length after centring,
``|v - m|``, divides it), so each collection is built for a *stored centre* ``m0``, the space's
mean when the collection was made, kept in the collection itself (the row with id -1, whose
presence also says the collection is complete). A vector ``v`` is stored as the unit vector
``u = (v - m0) / |v - m0|`` with ``norm = |v - m0|``, so that ``v = m0 + norm * u`` is known exactly.

A query is centred by the *current* mean ``m`` (the catalogue's, passed as the store's
``centre``) and normalised to ``q``. When ``m == m0`` (always so for a small library, which is
re-centred after every write, and for a space compared as it is), the IP search is the cosine
search itself, exact under ``FLAT``. When the mean has moved by ``d = m0 - m`` (|d| = δ),
candidates are fetched by IP with their stored ``u`` and ``norm`` and rescored exactly,
``s = (norm*u + d)·q / |norm*u + d|``; and the result is proved complete: a vector not fetched has
``u·q <= a`` (the lowest IP fetched), so if its norm is at least ρ its score is at most
``(a + δ/ρ) / (1 - δ/ρ)``. Choosing ρ so that this bound equals the k-th best exact score found,
the vectors of norm below ρ (few: centred vectors are seldom near the centre) are fetched by a
filter on ``norm`` and rescored too. If that proof needs too many rows, more candidates are
fetched; past Milvus's 16 384 results per search every vector is read (exact, slow). The
writer (:meth:`tuneseek.similarity.Spaces.settle`) re-centres a space, a fresh collection
filled from the catalogue under a new epoch and then swapped in whole, when the mean has moved by
more than :data:`RECENTRE_SHARE` of a typical vector's length (or at all, below
:data:`ALWAYS_RECENTRE` vectors), so the proof stays cheap; re-centring after growth by a fixed
share costs a constant number of rewrites per vector, and the FAISS store rebuilds from the
catalogue on every change anyway. Scores are therefore those of the in-memory FAISS store, and
so are results under ``FLAT`` (ties aside); under ``HNSW`` the candidates are as approximate as
the index.

**Writes and crashes.** The catalogue is the truth. The writer writes a track's vectors into
Milvus inside the catalogue transaction that stores them (:meth:`tuneseek.similarity.Spaces.sync`),
track row first with ``stamp`` -1, then its segments, then the track row again with its stamp (a
CRC of its track vector), so that a track row with the catalogue's stamp means the track is
complete in Milvus; removing deletes the segments before the track row. Whatever a crash
interrupts, the next writer (:meth:`~tuneseek.similarity.Spaces.reconcile`, at the start of every
write) compares the stamps of the track rows with the catalogue's and rewrites or deletes the
tracks that differ, in time proportional to the number of tracks; readers meanwhile skip any hit
whose track the catalogue no longer holds.

Milvus Lite lets one process at a time open its file; a library served by several processes
(``tuneseek serve --workers``) or indexed while another process queries it needs a Milvus server.
"""

from __future__ import annotations

import binascii
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuneseek.errors import LibraryError, UsageError
from tuneseek.store.vectors import EXACT_LIMIT, VectorsSpec, normalise

#: The id of the row that holds a collection's stored centre (and marks the collection complete).
STATE_ID = -1
#: ``stamp`` of a track row while its segments are being written.
PENDING = -1
#: The most results one Milvus search returns.
MAX_TOPK = 16384
#: Rows of small norm fetched at most to prove a result complete, before fetching more candidates.
SMALL_LIMIT = 4096
#: Rows sent to Milvus per call.
BATCH = 4096
#: Below this many vectors a space is re-centred whenever its mean moves (the rewrite is cheap).
ALWAYS_RECENTRE = 20_000
#: Above it, when the mean has moved by this share of the median centred vector's length.
RECENTRE_SHARE = 0.01
#: Candidates fetched at least when the mean has moved (a wider gap below the k-th score proves more).
MIN_CANDIDATES = 256
#: HNSW above :data:`~tuneseek.store.vectors.EXACT_LIMIT` vectors.
HNSW_BUILD = {"M": 16, "efConstruction": 200}
#: Seconds to wait for a Milvus server before giving up.
CONNECT_TIMEOUT = 10.0

KINDS = {"track": "t", "segment": "s"}
#: Connections of this process to each Milvus Lite file.
_lite_users: dict[str, int] = {}


def _pymilvus():
    try:
        import pymilvus
    except ImportError:
        raise UsageError("vectors in Milvus need pymilvus and milvus-lite: pip install 'tuneseek[scale]'") from None
    return pymilvus


def index_for(n: int) -> str:
    """The index a collection of ``n`` vectors gets: exact search up to a million, HNSW above."""
    return "FLAT" if n <= EXACT_LIMIT else "HNSW"


def stamp_of(track_vector: np.ndarray) -> int:
    """What a track row carries to say which vectors it holds: a CRC of its track vector (float32)."""
    return binascii.crc32(np.ascontiguousarray(track_vector, "<f4").tobytes())


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "message", "") or error).strip() or type(error).__name__
    return text.splitlines()[0]


@dataclass
class MilvusStore:
    """One collection: the vectors of one space and kind, stored for ``stored_centre`` and compared
    after subtracting ``centre`` (see the module docstring). A :class:`~tuneseek.store.vectors.VectorStore`."""

    client: object
    name: str
    dim: int
    stored_centre: np.ndarray
    typical_norm: float
    index: str
    centre: np.ndarray = None  # the scoring centre: the space's current mean
    _count: int | None = field(default=None, repr=False)
    _small: tuple[float, list[dict]] | None = field(default=None, repr=False)  # rows of norm < rho, read once

    def __post_init__(self):
        self.stored_centre = np.asarray(self.stored_centre, np.float32)
        self.centre = self.stored_centre if self.centre is None else np.asarray(self.centre, np.float32)

    def at(self, centre: np.ndarray) -> MilvusStore:
        """The same collection, scored after subtracting ``centre``."""
        return MilvusStore(self.client, self.name, self.dim, self.stored_centre, self.typical_norm, self.index, centre)

    def __len__(self) -> int:
        if self._count is None:
            rows = self.client.query(self.name, filter="id >= 0", output_fields=["count(*)"])
            self._count = int(rows[0]["count(*)"])
        return self._count

    # -- writing ---------------------------------------------------------------------
    def upsert(self, ids: np.ndarray, vectors: np.ndarray, *, stamps: np.ndarray | int = 0) -> None:
        """Store the vectors of ``ids`` (raw, as the catalogue holds them), replacing any they had."""
        ids = np.asarray(ids, np.int64)
        v = np.atleast_2d(np.asarray(vectors, np.float32))
        if v.shape != (len(ids), self.dim):
            raise UsageError(f"expected {len(ids)} vectors of {self.dim} dimensions, got {v.shape}")
        stamps = np.broadcast_to(np.asarray(stamps, np.int64), ids.shape)
        centred = v.astype(np.float64) - self.stored_centre
        norms = np.linalg.norm(centred, axis=1)
        units = normalise(centred)
        for start in range(0, len(ids), BATCH):
            rows = [
                {"id": int(i), "norm": float(n), "stamp": int(s), "vector": u}
                for i, n, s, u in zip(
                    ids[start : start + BATCH],
                    norms[start : start + BATCH],
                    stamps[start : start + BATCH],
                    units[start : start + BATCH],
                )
            ]
            self.client.upsert(self.name, rows)
        self._count, self._small = None, None

    def delete(self, ids: np.ndarray) -> None:
        """Forget the vectors of ``ids`` (ids it does not hold are ignored)."""
        ids = [int(i) for i in np.asarray(ids, np.int64)]
        for start in range(0, len(ids), BATCH):
            self.client.delete(self.name, ids=ids[start : start + BATCH])
        self._count, self._small = None, None

    def delete_ranges(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Forget every id in the half-open ranges ``[lo, hi)`` (a track's segments)."""
        ranges = list(ranges)
        for start in range(0, len(ranges), 64):
            expr = " or ".join(f"(id >= {lo} and id < {hi})" for lo, hi in ranges[start : start + 64])
            self.client.delete(self.name, filter=expr)
        self._count, self._small = None, None

    # -- reading ---------------------------------------------------------------------
    def stamps(self) -> dict[int, int]:
        """``{id: stamp}`` of every row."""
        return {int(r["id"]): int(r["stamp"]) for r in self._scan(["stamp"])}

    def present(self, ids: Iterable[int]) -> set[int]:
        """Those of ``ids`` this collection holds."""
        ids = [int(i) for i in ids]
        found: set[int] = set()
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            rows = self.client.query(self.name, filter=f"id in {chunk}", output_fields=["id"], limit=len(chunk))
            found.update(int(r["id"]) for r in rows)
        return found

    def _scan(self, fields: list[str], expr: str = "id >= 0") -> Iterator[dict]:
        it = self.client.query_iterator(self.name, batch_size=BATCH, filter=expr, output_fields=fields)
        try:
            while rows := it.next():
                yield from rows
        finally:
            it.close()

    def search(
        self, queries: np.ndarray, k: int = 10, *, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar ids per query row: ``(scores (n, k), ids (n, k))``, best first.

        ``exclude`` ids never appear; missing results are id -1. Exact under a ``FLAT`` index (see
        the module docstring), whatever the distance between the stored centre and ``centre``.
        """
        q = np.atleast_2d(np.asarray(queries, np.float32))
        if q.shape[1] != self.dim:
            raise UsageError(f"query vectors have {q.shape[1]} dimensions, the index {self.dim}")
        q = normalise(q - self.centre)
        skip = set() if exclude is None else {int(i) for i in np.asarray(exclude, np.int64)}
        out_s = np.full((len(q), k), -np.inf, np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        for r, row in enumerate(q):
            found = self._search_one(row, k, skip)
            out_s[r, : len(found)] = [s for s, _ in found]
            out_i[r, : len(found)] = [i for _, i in found]
        return out_s, out_i

    def _search_one(self, q: np.ndarray, k: int, skip: set[int]) -> list[tuple[float, int]]:
        n = len(self)
        if n == 0:
            return []
        d = self.stored_centre.astype(np.float64) - self.centre
        delta = float(np.linalg.norm(d))
        need = k + len(skip)
        want = min(n, need if delta == 0 else max(4 * need, MIN_CANDIDATES))
        while True:
            if want > MAX_TOPK:
                return self._exhaustive(q, d, k, skip)
            hits = self._ann(q, want, fetch=delta > 0)
            if delta == 0:
                return _best((float(h["distance"]), int(h["id"])) for h in hits if int(h["id"]) not in skip)[:k]
            scores = self._exact(q, d, hits)
            found = [(s, int(h["id"])) for s, h in zip(scores, hits) if int(h["id"]) not in skip]
            if len(hits) >= n or len(hits) < want:
                return _best(found)[:k]
            best = _best(found)
            lowest_ip = float(hits[-1]["distance"])
            kth = best[k - 1][0] if len(best) >= k else -np.inf
            if kth > 0 and kth > lowest_ip:
                # vectors not fetched, of norm >= rho, score at most kth: fetch (and rescore) those below rho
                rho = delta * (1 + kth) / (kth - lowest_ip)
                small = self._below(rho)
                if small is not None:
                    seen = {i for _, i in found}
                    extra = [h for h in small if int(h["id"]) not in seen and int(h["id"]) not in skip]
                    found += [(s, int(h["id"])) for s, h in zip(self._exact(q, d, extra), extra)]
                    return _best(found)[:k]
            want = min(n, 4 * want) if want < n else want + 1

    def _below(self, rho: float) -> list[dict] | None:
        """The rows whose norm is below ``rho`` (read once per store object, then reused for any smaller
        ``rho``), or ``None`` when there are more than :data:`SMALL_LIMIT`."""
        cached = self._small
        if cached is None or rho > cached[0]:
            rows = self.client.query(
                self.name, filter=f"id >= 0 and norm < {rho!r}", output_fields=["norm", "vector"], limit=SMALL_LIMIT + 1
            )
            if len(rows) > SMALL_LIMIT:
                return None
            self._small = cached = (rho, rows)
        return [r for r in cached[1] if r["norm"] < rho]

    def _ann(self, q: np.ndarray, limit: int, fetch: bool) -> list[dict]:
        """The ``limit`` rows of highest inner product with ``q`` (stored unit vectors), best first."""
        params = {"metric_type": "IP", "params": {"ef": max(64, limit)} if self.index == "HNSW" else {}}
        result = self.client.search(
            self.name,
            data=[q.tolist()],
            limit=limit,
            filter="id >= 0",
            output_fields=["norm", "vector"] if fetch else [],
            search_params=params,
            anns_field="vector",
        )
        return [
            {"id": h["id"], "distance": h["distance"], **(h.get("entity") or {})} for h in (result[0] if result else [])
        ]

    @staticmethod
    def _exact(q: np.ndarray, d: np.ndarray, rows: list[dict]) -> np.ndarray:
        """Cosines between ``q`` and the rows' vectors centred by the scoring centre: ``norm * u + d``."""
        if not rows:
            return np.zeros(0)
        u = np.array([r["vector"] for r in rows], np.float64)
        x = np.array([r["norm"] for r in rows], np.float64)[:, None] * u + d
        lengths = np.linalg.norm(x, axis=1)
        return np.where(lengths > 0, x @ q / np.where(lengths > 0, lengths, 1), 0.0)

    def _exhaustive(self, q: np.ndarray, d: np.ndarray, k: int, skip: set[int]) -> list[tuple[float, int]]:
        """Every vector read and scored (when the candidates Milvus can return cannot prove the result)."""
        best: list[tuple[float, int]] = []
        chunk: list[dict] = []
        for row in self._scan(["norm", "vector"]):
            if int(row["id"]) not in skip:
                chunk.append(row)
            if len(chunk) == BATCH:
                best = _best(best + list(zip(self._exact(q, d, chunk), (int(r["id"]) for r in chunk))))[:k]
                chunk = []
        return _best(best + list(zip(self._exact(q, d, chunk), (int(r["id"]) for r in chunk))))[:k]


def _best(pairs: Iterable[tuple[float, int]]) -> list[tuple[float, int]]:
    """``(score, id)`` pairs, highest score first (ties by id, as exact search lists them)."""
    return sorted(((float(s), int(i)) for s, i in pairs), key=lambda p: (-p[0], p[1]))


class MilvusVectors:
    """The collections of one library in one Milvus (a Lite file or a server): opening, making and
    replacing them. Readers call :meth:`open`; the writer :meth:`create`, :meth:`seal` and :meth:`sweep`."""

    def __init__(self, spec: VectorsSpec, where: str | Path):
        self.spec = spec
        self.where = where
        self.prefix = spec.prefix or "tuneseek"
        pymilvus = _pymilvus()
        if spec.lite:
            try:
                import milvus_lite  # noqa: F401
            except ImportError:
                raise UsageError(
                    "a Milvus Lite file needs milvus-lite: pip install 'tuneseek[scale]' (or give milvus:http://HOST:PORT)"
                ) from None
            if not Path(spec.uri).parent.is_dir():
                raise LibraryError(where, f"vectors in {spec}: no folder {Path(spec.uri).parent}")
        logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)  # a Lite server's note
        try:
            # no keepalive pings to a Lite server in this very process (it answers them with GOAWAY, which
            # grpc then logs on stderr); a remote server keeps pymilvus's
            options = {"grpc_options": {"grpc.keepalive_permit_without_calls": 0}} if spec.lite else {}
            self.client = pymilvus.MilvusClient(uri=spec.uri, timeout=CONNECT_TIMEOUT, **options)
            self.client.list_collections()
        except Exception as e:  # pymilvus raises its own errors, grpc's, or OSError
            self._release()
            raise LibraryError(where, f"cannot open the vector store {spec}: {_first_line(e)}") from None
        if spec.lite:
            _lite_users[spec.uri] = _lite_users.get(spec.uri, 0) + 1
        self._pymilvus = pymilvus
        self._loaded: set[str] = set()
        self._closed = False

    @classmethod
    def check(cls, spec: VectorsSpec, root: Path) -> None:
        """Refuse, before a library at ``root`` is made to use it, a store that cannot be opened: the
        extra missing, a folder missing, a server that does not answer. (A Lite file to be made in the
        library directory itself needs only the extra.)"""
        if spec.lite and Path(spec.uri).parent == Path(root):
            _pymilvus()
            try:
                import milvus_lite  # noqa: F401
            except ImportError:
                cls(spec, root)  # says what to install
            return
        cls(spec, root).close()

    def close(self) -> None:
        """Close the connection; the last one of this process to a Milvus Lite file stops its server
        (and so lets another process open the file)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        try:
            self.client.close()
        except Exception:
            pass
        if self.spec.lite:
            _lite_users[self.spec.uri] -= 1
            if _lite_users[self.spec.uri] == 0:
                self._release()

    def _release(self) -> None:
        if self.spec.lite and not _lite_users.get(self.spec.uri):
            try:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.spec.uri)
            except Exception:
                pass

    # -- names ---------------------------------------------------------------------------
    def _base(self, space: str, kind: str) -> str:
        return f"{self.prefix}_{space.encode().hex()}_{KINDS[kind]}_"

    def _epochs(self, space: str, kind: str) -> list[tuple[int, str]]:
        """``(epoch, collection)`` of a space's kind, newest first."""
        base = self._base(space, kind)
        found = [(int(n[len(base) :]), n) for n in self.client.list_collections() if re.fullmatch(rf"{base}\d+", n)]
        return sorted(found, reverse=True)

    def spaces(self) -> set[str]:
        """The spaces that have collections here."""
        found = set()
        for name in self.client.list_collections():
            m = re.fullmatch(rf"{re.escape(self.prefix)}_([0-9a-f]+)_[ts]_\d+", name)
            if m:
                found.add(bytes.fromhex(m.group(1)).decode())
        return found

    # -- reading ---------------------------------------------------------------------------
    def _state(self, name: str) -> dict | None:
        """The state row of a collection (its stored centre), or ``None`` while it is incomplete."""
        if name not in self._loaded:
            self.client.load_collection(name)
            self._loaded.add(name)
        rows = self.client.get(name, ids=[STATE_ID], output_fields=["norm", "stamp", "vector"])
        return rows[0] if rows else None

    def open(self, space: str, kind: str, *, centre: np.ndarray | None = None) -> MilvusStore | None:
        """The newest complete collection of ``space``'s ``kind`` vectors, scored after subtracting
        ``centre`` (default: its stored centre), or ``None`` when it has none."""
        for _, name in self._epochs(space, kind):
            try:
                state = self._state(name)
            except Exception:  # dropped by the writer since it was listed
                continue
            if state is not None:
                vector = np.asarray(state["vector"], np.float32)
                index = "HNSW" if int(state["stamp"]) == 1 else "FLAT"
                return MilvusStore(self.client, name, len(vector), vector, float(state["norm"]), index, centre)
        return None

    # -- writing (the writer only) ---------------------------------------------------------------
    def create(self, space: str, kind: str, *, dim: int, centre: np.ndarray, expected: int = 0) -> MilvusStore:
        """A new, empty, incomplete collection for ``space``'s ``kind`` vectors, stored for ``centre``,
        indexed for ``expected`` vectors; :meth:`seal` completes it."""
        epochs = self._epochs(space, kind)
        name = f"{self._base(space, kind)}{(epochs[0][0] + 1) if epochs else 1}"
        DataType = self._pymilvus.DataType
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("norm", DataType.FLOAT)
        schema.add_field("stamp", DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        index = index_for(expected)
        params = self.client.prepare_index_params()
        params.add_index(
            field_name="vector", index_type=index, metric_type="IP", params=HNSW_BUILD if index == "HNSW" else {}
        )
        self.client.create_collection(name, schema=schema, consistency_level="Strong")
        # not waited for: waiting asks for a timestamp Milvus Lite does not give (and the collection is empty)
        self.client.create_index(name, params, sync=False)
        self.client.load_collection(name)
        self._loaded.add(name)
        return MilvusStore(self.client, name, dim, centre, 0.0, index)

    def seal(self, store: MilvusStore, typical_norm: float) -> MilvusStore:
        """Complete a collection made by :meth:`create` (its state row written last), and drop the
        older collections of its space and kind: readers use it from now on."""
        row = {
            "id": STATE_ID,
            "norm": float(typical_norm),
            "stamp": 1 if store.index == "HNSW" else 0,
            "vector": store.stored_centre.astype(np.float32),
        }
        self.client.upsert(store.name, [row])
        self.client.flush(store.name)
        store.typical_norm = float(typical_norm)
        base = store.name.rsplit("_", 1)[0] + "_"
        for name in self.client.list_collections():
            if name.startswith(base) and name != store.name and re.fullmatch(rf"{re.escape(base)}\d+", name):
                self.drop(name)
        return store

    def sweep(self, space: str, kind: str) -> None:
        """Drop what a writer interrupted left: collections newer than the newest complete one, and older ones."""
        current = self.open(space, kind)
        for _, name in self._epochs(space, kind):
            if current is None or name != current.name:
                self.drop(name)

    def synced(self) -> int | None:
        """The catalogue generation the store was last known to match (see :meth:`set_synced`), or ``None``."""
        name = f"{self.prefix}_sync"
        if not self.client.has_collection(name):
            return None
        if name not in self._loaded:
            self.client.load_collection(name)
            self._loaded.add(name)
        rows = self.client.get(name, ids=[0], output_fields=["stamp"])
        return int(rows[0]["stamp"]) if rows else None

    def set_synced(self, generation: int) -> None:
        """Record that the store matches the catalogue at ``generation`` (a writer that has just synced,
        reconciled or settled): the next writer's reconcile is skipped while the catalogue stays there."""
        name = f"{self.prefix}_sync"
        if not self.client.has_collection(name):
            DataType = self._pymilvus.DataType
            schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("stamp", DataType.INT64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs one; unused
            self.client.create_collection(name, schema=schema, consistency_level="Strong")
            params = self.client.prepare_index_params()
            params.add_index(field_name="vector", index_type="FLAT", metric_type="IP", params={})
            self.client.create_index(name, params, sync=False)
            self.client.load_collection(name)
            self._loaded.add(name)
        self.client.upsert(name, [{"id": 0, "stamp": int(generation), "vector": [0.0, 0.0]}])

    def drop_space(self, space: str) -> None:
        for kind in KINDS:
            for _, name in self._epochs(space, kind):
                self.drop(name)

    def drop(self, name: str) -> None:
        self.client.drop_collection(name)
        self._loaded.discard(name)
