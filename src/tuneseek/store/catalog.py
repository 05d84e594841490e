"""The catalogue: tracks, index segments, extractor versions, tags and embeddings, in SQLite.

WAL mode lets any number of readers query while one writer works; every
change a writer makes is one transaction, so a killed process leaves the
catalogue as it was after the last completed add.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneseek.errors import LibraryError
from tuneseek.filefacts import FileFacts

CATALOG_NAME = "catalog.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS tracks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    path         TEXT NOT NULL UNIQUE,
    content_hash TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    duration     REAL NOT NULL,
    sample_rate  INTEGER NOT NULL,
    channels     INTEGER NOT NULL,
    title        TEXT,
    artist       TEXT,
    base_frame   INTEGER NOT NULL,
    n_frames     INTEGER NOT NULL,
    n_landmarks  INTEGER NOT NULL,
    added_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tracks_hash ON tracks(content_hash);
CREATE TABLE IF NOT EXISTS segments (
    name        TEXT PRIMARY KEY,
    n_postings  INTEGER NOT NULL,
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS extractors (
    track_id   INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    version    TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (track_id, name)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vocabularies (
    name   TEXT PRIMARY KEY,
    labels TEXT NOT NULL                 -- JSON list, in the order of the probabilities
);
CREATE TABLE IF NOT EXISTS tags (
    track_id   INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    vocabulary TEXT NOT NULL REFERENCES vocabularies(name),
    probs      BLOB NOT NULL,            -- float32, one per label
    PRIMARY KEY (track_id, vocabulary)
);
CREATE TABLE IF NOT EXISTS embeddings (
    track_id     INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    space        TEXT NOT NULL,
    dim          INTEGER NOT NULL,
    window       REAL NOT NULL,          -- seconds of audio per segment vector
    hop          REAL NOT NULL,          -- segment i starts at i * hop seconds
    track_vector BLOB NOT NULL,          -- float32 (dim,)
    segments     BLOB NOT NULL,          -- float16 (n, dim)
    PRIMARY KEY (track_id, space)
);
CREATE TABLE IF NOT EXISTS space_sums (  -- what scoring a space needs, kept with its vectors
    space TEXT NOT NULL,
    kind  TEXT NOT NULL,                 -- 'track' or 'segment'
    n     INTEGER NOT NULL,              -- vectors summed
    total BLOB NOT NULL,                 -- float64 (dim,): their sum, so their mean is total / n
    PRIMARY KEY (space, kind)
);
CREATE TABLE IF NOT EXISTS fingerprint_vectors (  -- a learned fingerprint's segment vectors
    track_id INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    model    TEXT NOT NULL,              -- the identifier's name ("fingerprint:RUN")
    version  TEXT NOT NULL,              -- the model version that computed them
    dim      INTEGER NOT NULL,
    hop      REAL NOT NULL,              -- segment i starts at i * hop seconds
    vectors  BLOB NOT NULL,              -- float16 (n, dim); all-zero rows: inaudible segments
    PRIMARY KEY (track_id, model)
);
"""

#: Tables the first catalogue format lacked: the absence of any means the schema needs upgrading.
_LATER_TABLES = ("space_sums", "fingerprint_vectors")


@dataclass(frozen=True)
class Track(FileFacts):
    """A track of the library, as the catalogue knows it: its file's facts and where it lies in the index."""

    id: int
    base_frame: int
    n_frames: int
    n_landmarks: int
    added_at: float

    @property
    def name(self) -> str:
        """What to call the track: its title (and artist) if tagged, else its file name."""
        if self.title:
            return f"{self.artist} - {self.title}" if self.artist else self.title
        return Path(self.path).name


_COLUMNS = ", ".join(Track.__dataclass_fields__)


@dataclass(frozen=True)
class Embedded:
    """A track's stored vectors in one embedding space."""

    track_id: int
    window: float
    hop: float
    track_vector: np.ndarray  # (dim,)
    segments: np.ndarray  # (n, dim); segment i covers [i * hop, i * hop + window) seconds


class Catalog:
    """Thin typed access to ``catalog.sqlite``."""

    def __init__(self, root: Path, create: bool):
        self.root = root
        self.path = root / CATALOG_NAME
        if not create and not self.path.exists():
            raise LibraryError(root, f"{CATALOG_NAME} is missing")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        db = self.db
        try:
            if create or not all(self._has_table(t) for t in _LATER_TABLES):
                db.executescript(SCHEMA)  # additive: a library made before gains the new tables
                self._backfill_space_sums()
        except sqlite3.DatabaseError as e:
            raise LibraryError(root, f"{CATALOG_NAME} is unreadable: {e}") from e

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection: each thread reads its own snapshots, as SQLite's WAL mode allows."""
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA foreign_keys=ON")
            except sqlite3.DatabaseError as e:
                raise LibraryError(self.root, f"{CATALOG_NAME} is unreadable: {e}") from e
            self._local.db = db
            with self._guard:
                self._connections.append(db)
        return db

    def close(self) -> None:
        with self._guard:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    def _has_table(self, name: str) -> bool:
        return (
            self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None
        )

    def transaction(self) -> _Transaction:
        """A write transaction (takes SQLite's write lock at once)."""
        return _Transaction(self.db, "BEGIN IMMEDIATE")

    def snapshot(self) -> _Transaction:
        """A read transaction: several reads that see one committed state."""
        return _Transaction(self.db, "BEGIN")

    # -- tracks ------------------------------------------------------------
    def tracks(self) -> list[Track]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM tracks ORDER BY id").fetchall()
        return [Track(*r) for r in rows]

    def track(self, track_id: int) -> Track | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM tracks WHERE id=?", (track_id,)).fetchone()
        return Track(*row) if row else None

    def track_by_path(self, path: str) -> Track | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM tracks WHERE path=?", (path,)).fetchone()
        return Track(*row) if row else None

    def tracks_by_hash(self, content_hash: str) -> list[Track]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM tracks WHERE content_hash=?", (content_hash,)).fetchall()
        return [Track(*r) for r in rows]

    def tracks_by_size(self, size: int) -> list[Track]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM tracks WHERE size=?", (size,)).fetchall()
        return [Track(*r) for r in rows]

    def next_base_frame(self) -> int:
        """First free frame on the global axis (never reused, so stale postings can't alias)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='next_base_frame'").fetchone()
        return int(row[0]) if row else 0

    def insert_track(self, facts: dict) -> int:
        """Insert a track from its file's facts, not yet placed in the landmark index (see :meth:`place_track`);
        call inside a transaction."""
        fields = dict(facts, base_frame=-1, n_frames=0, n_landmarks=0, added_at=time.time())
        cols = [c for c in Track.__dataclass_fields__ if c != "id"]
        cur = self.db.execute(
            f"INSERT INTO tracks ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [fields[c] for c in cols],
        )
        return int(cur.lastrowid)

    def place_track(self, track_id: int, base_frame: int, n_frames: int, n_landmarks: int) -> None:
        """Where a track's landmarks lie on the global frame axis (from :meth:`next_base_frame`)."""
        self.db.execute(
            "UPDATE tracks SET base_frame=?, n_frames=?, n_landmarks=? WHERE id=?",
            (base_frame, n_frames, n_landmarks, track_id),
        )

    def reserve_frames(self, end: int) -> None:
        """Frames below ``end`` are taken: :meth:`next_base_frame` answers at least ``end`` from now on."""
        self.db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('next_base_frame', ?)", (str(max(self.next_base_frame(), end)),)
        )

    def delete_track(self, track_id: int) -> None:
        """Delete a track with its tags, vectors and versions; call inside a transaction."""
        for space in [r[0] for r in self.db.execute("SELECT space FROM embeddings WHERE track_id=?", (track_id,))]:
            self._sum_stored(space, track_id, -1)
        self.db.execute("DELETE FROM tracks WHERE id=?", (track_id,))

    def update_path(self, track_id: int, path: str, mtime_ns: int) -> None:
        self.db.execute("UPDATE tracks SET path=?, mtime_ns=? WHERE id=?", (path, mtime_ns, track_id))

    def touch(self, track_id: int, mtime_ns: int) -> None:
        self.db.execute("UPDATE tracks SET mtime_ns=? WHERE id=?", (mtime_ns, track_id))

    # -- extractor versions ---------------------------------------------------
    def set_extractor(self, track_id: int, name: str, version: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO extractors VALUES (?, ?, ?, ?)", (track_id, name, version, time.time()))

    def extractors(self, track_id: int | None = None) -> dict[int, dict[str, str]]:
        """``{track id: {extractor: version}}`` for one track or (``None``) for all."""
        sql, args = "SELECT track_id, name, version FROM extractors", ()
        if track_id is not None:
            sql, args = sql + " WHERE track_id=?", (track_id,)
        out: dict[int, dict[str, str]] = {}
        for tid, name, version in self.db.execute(sql, args):
            out.setdefault(tid, {})[name] = version
        return out

    # -- trained models ---------------------------------------------------------
    def models(self) -> dict[str, dict[str, str]]:
        """``{extractor: {"folder": run folder, "role": "tagger" | "embedder"}}``: the trained models
        the library runs on every track besides the pretrained ones."""
        row = self.db.execute("SELECT value FROM meta WHERE key='models'").fetchone()
        return json.loads(row[0]) if row else {}

    def set_models(self, models: dict[str, dict[str, str]]) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('models', ?)", (json.dumps(models, sort_keys=True),))

    # -- tags -----------------------------------------------------------------
    def set_vocabulary(self, name: str, labels: list[str]) -> None:
        self.db.execute("INSERT OR REPLACE INTO vocabularies VALUES (?, ?)", (name, json.dumps(list(labels))))

    def vocabularies(self) -> dict[str, list[str]]:
        return {name: json.loads(labels) for name, labels in self.db.execute("SELECT name, labels FROM vocabularies")}

    def set_tags(self, track_id: int, vocabulary: str, probs: np.ndarray) -> None:
        blob = np.ascontiguousarray(probs, dtype="<f4").tobytes()
        self.db.execute("INSERT OR REPLACE INTO tags VALUES (?, ?, ?)", (track_id, vocabulary, blob))

    def tags(self, track_id: int) -> dict[str, np.ndarray]:
        """``{vocabulary: probabilities}`` of one track."""
        rows = self.db.execute("SELECT vocabulary, probs FROM tags WHERE track_id=?", (track_id,))
        return {v: np.frombuffer(blob, "<f4") for v, blob in rows}

    def all_tags(self, vocabulary: str) -> tuple[np.ndarray, np.ndarray]:
        """``(track ids (n,), probabilities (n, labels))`` of every track tagged in ``vocabulary``."""
        rows = self.db.execute(
            "SELECT track_id, probs FROM tags WHERE vocabulary=? ORDER BY track_id", (vocabulary,)
        ).fetchall()
        ids = np.array([r[0] for r in rows], np.int64)
        probs = np.stack([np.frombuffer(r[1], "<f4") for r in rows]) if rows else np.zeros((0, 0), np.float32)
        return ids, probs

    def count_tagged(self) -> int:
        return int(self.db.execute("SELECT COUNT(DISTINCT track_id) FROM tags").fetchone()[0])

    # -- embeddings -------------------------------------------------------------
    def spaces(self) -> list[str]:
        """The embedding spaces that hold vectors."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT space FROM embeddings ORDER BY space")]

    def count_embedded(self, space: str) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM embeddings WHERE space=?", (space,)).fetchone()[0])

    def set_embedding(
        self, track_id: int, space: str, window: float, hop: float, track_vector: np.ndarray, segments: np.ndarray
    ) -> None:
        """Store a track's vector and its segment vectors (kept as float16: half the size, cosines within 1e-3),
        and keep the space's sums (:meth:`space_mean`) in step; call inside a transaction."""
        dim = len(track_vector)
        if segments.ndim != 2 or segments.shape[1] != dim:
            raise ValueError(f"segments of shape {segments.shape} do not match a {dim}-d track vector")
        self._sum_stored(space, track_id, -1)
        vector, segments = np.asarray(track_vector, "<f4"), np.ascontiguousarray(segments, "<f2")
        self.db.execute(
            "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?, ?, ?)",
            (track_id, space, dim, window, hop, vector.tobytes(), segments.tobytes()),
        )
        self._add_to_sums(space, vector[None], segments, +1)  # as stored: the sums take away exactly this later

    def space_mean(self, space: str, kind: str) -> np.ndarray | None:
        """The mean of the ``kind`` ("track" or "segment") vectors of ``space`` as stored, or ``None`` when it has none."""
        row = self.db.execute("SELECT n, total FROM space_sums WHERE space=? AND kind=?", (space, kind)).fetchone()
        if row is None or row[0] == 0:
            return None
        return (np.frombuffer(row[1], "<f8") / row[0]).astype(np.float32)

    def _sum_stored(self, space: str, track_id: int, sign: int) -> None:
        """Add (``sign`` +1) or take away (-1) one track's stored vectors, if it has any, from the sums of ``space``."""
        stored = next(self.embeddings(space, track_id=track_id), None)
        if stored is not None:
            self._add_to_sums(space, stored.track_vector[None], stored.segments, sign)

    def _add_to_sums(self, space: str, track_vectors: np.ndarray, segments: np.ndarray, sign: int) -> None:
        """Add (``sign`` +1) or take away (-1) a track's vector and segment vectors from the sums of ``space``."""
        for kind, vectors in (("track", track_vectors), ("segment", segments)):
            row = self.db.execute("SELECT n, total FROM space_sums WHERE space=? AND kind=?", (space, kind)).fetchone()
            n, total = (row[0], np.frombuffer(row[1], "<f8")) if row else (0, np.zeros(vectors.shape[1]))
            total = total + sign * vectors.astype(np.float64).sum(axis=0)
            self.db.execute(
                "INSERT OR REPLACE INTO space_sums VALUES (?, ?, ?, ?)",
                (space, kind, n + sign * len(vectors), total.astype("<f8").tobytes()),
            )

    def _backfill_space_sums(self) -> None:
        """Sum the vectors of a library made before the sums were kept (once, when the table appears)."""
        with self.transaction():
            if self.db.execute("SELECT 1 FROM space_sums").fetchone() is not None:
                return
            for track_id, space in self.db.execute("SELECT track_id, space FROM embeddings").fetchall():
                self._sum_stored(space, track_id, +1)

    def embeddings(self, space: str, *, track_id: int | None = None, segments: bool = True) -> Iterator[Embedded]:
        """The stored vectors of ``space``: of one track, or of every track in id order.

        ``segments=False`` reads the track vectors only (a small fraction of the bytes), and
        leaves :attr:`Embedded.segments` empty.
        """
        cols = "track_id, dim, window, hop, track_vector, " + ("segments" if segments else "NULL")
        sql, args = f"SELECT {cols} FROM embeddings WHERE space=?", (space,)
        if track_id is not None:
            sql, args = sql + " AND track_id=?", (space, track_id)
        rows = self.db.execute(sql + " ORDER BY track_id", args)
        for tid, dim, window, hop, vec, segs in rows if track_id is None else rows.fetchall():
            seg = (
                np.frombuffer(segs, "<f2").reshape(-1, dim).astype(np.float32)
                if segs is not None
                else np.zeros((0, dim), np.float32)
            )
            yield Embedded(tid, window, hop, np.frombuffer(vec, "<f4"), seg)

    # -- learned fingerprints ---------------------------------------------------
    def set_fingerprint_vectors(self, track_id: int, model: str, version: str, hop: float, vectors: np.ndarray) -> None:
        """Store a track's segment vectors of a learned fingerprint ``model`` (float16, as computed by the
        workers), replacing any it had; call inside the transaction that inserts the track."""
        vectors = np.ascontiguousarray(vectors, "<f2")
        if vectors.ndim != 2:
            raise ValueError(f"fingerprint vectors must be (segments, dim), got shape {vectors.shape}")
        self.db.execute(
            "INSERT OR REPLACE INTO fingerprint_vectors VALUES (?, ?, ?, ?, ?, ?)",
            (track_id, model, version, vectors.shape[1], hop, vectors.tobytes()),
        )

    def drop_fingerprint_vectors(self, model: str, track_ids: list[int]) -> None:
        """Forget the ``model`` vectors of tracks (deleting a track drops all of its own already)."""
        self.db.executemany(
            "DELETE FROM fingerprint_vectors WHERE model=? AND track_id=?", [(model, int(t)) for t in track_ids]
        )

    def fingerprint_vectors(
        self, model: str, version: str, *, track_id: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(track id, float16 vectors (n, dim))`` of ``model`` at ``version``: of one track, or of every
        track in id order. Vectors another version computed are not comparable and are left out."""
        sql, args = (
            "SELECT track_id, dim, vectors FROM fingerprint_vectors WHERE model=? AND version=?",
            (model, version),
        )
        if track_id is not None:
            sql, args = sql + " AND track_id=?", (*args, track_id)
        rows = self.db.execute(sql + " ORDER BY track_id", args)
        for tid, dim, blob in rows if track_id is None else rows.fetchall():
            yield tid, np.frombuffer(blob, "<f2").reshape(-1, dim)

    def fingerprint_size(self, model: str) -> tuple[int, int]:
        """``(tracks, bytes of vectors)`` the catalogue holds for ``model``, of any version."""
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(vectors)), 0) FROM fingerprint_vectors WHERE model=?", (model,)
        ).fetchone()
        return int(row[0]), int(row[1])

    # -- segments ------------------------------------------------------------
    def segments(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM segments ORDER BY created_at, name")]

    def segment_sizes(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT name, n_postings FROM segments"))

    def add_segment(self, name: str, n_postings: int) -> None:
        self.db.execute("INSERT INTO segments VALUES (?, ?, ?)", (name, n_postings, time.time()))

    def drop_segment(self, name: str) -> None:
        self.db.execute("DELETE FROM segments WHERE name=?", (name,))

    def generation(self) -> int:
        """How many write transactions the library has committed, by any process or thread: a change means
        what a reader built from the catalogue (an index view, vector stores) must be rebuilt."""
        row = self.db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0


class _Transaction:
    """``BEGIN ...`` ... ``COMMIT``, or ``ROLLBACK`` on error. A write transaction also counts itself
    in the catalogue's :meth:`~Catalog.generation`."""

    def __init__(self, db: sqlite3.Connection, begin: str):
        self.db = db
        self.begin = begin

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute(self.begin)
        return self.db

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type:
            self.db.execute("ROLLBACK")
            return
        if self.begin == "BEGIN IMMEDIATE":
            self.db.execute(
                "INSERT INTO meta VALUES ('generation', 1) "
                "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
            )
        self.db.execute("COMMIT")
