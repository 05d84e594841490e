"""The Library: one directory of music knowledge, and everything you can ask it.

This is the API. Faces (the command line, the HTTP service, a notebook) call it and print
the :mod:`tuneseek.results` it returns; they never reach below it. It is a facade: each
question is answered by an engine behind one of the seams of ``docs/architecture.md``:

* identification: an :class:`~tuneseek.identifier.Identifier` (the landmark index,
  :class:`~tuneseek.fingerprint.index.LandmarkIndex`), and :mod:`tuneseek.monitor` for long recordings;
* description: the :mod:`tuneseek.extractors` (musicnn, trained runs, the text–audio projection);
* similarity and text search: :mod:`tuneseek.similarity` over :class:`~tuneseek.store.vectors.VectorStore`
  objects, and :mod:`tuneseek.textsearch`;
* writing: :mod:`tuneseek.ingest` (workers compute, this process commits).

On disk (see ``docs/architecture.md``)::

    LIBRARY/
      tuneseek.json        manifest: format + fingerprint versions, the vector store when not FAISS
      catalog.sqlite       tracks, segments, extractor versions, tags, embeddings, space sums (WAL)
      landmarks/seg-*/     immutable landmark segments, memory-mapped
      vectors.db           with ``vectors="milvus"``: the Milvus Lite file holding the spaces' vectors
      writer.lock          held by the one process that writes

Every write is atomic: segments are written aside and renamed, then listed in the catalogue
in one transaction together with their tracks. A process killed at any moment leaves a
library that opens and answers for every track whose add completed; segments it left
half-done are swept by the next writer.

Threads and processes: one :class:`Library` may serve any number of threads at once (a web
server's workers): each thread reads the catalogue through its own SQLite connection, so it
sees one committed state per read, and the landmark index and vector stores are rebuilt from
the catalogue when its generation moves and swapped in whole. Writes (``add``, ``remove``,
``compact``, ``use_model``) take the library's writer lock: one writing process at a time,
while other processes keep reading and see each commit as it lands.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from tuneseek import analysis, audio, ingest
from tuneseek import monitor as monitoring
from tuneseek.errors import AudioError, LibraryError, TrackNotFound, TuneseekError, UsageError
from tuneseek.extractors import Extractor, open_extractor
from tuneseek.fingerprint.engines import ENGINES, FINGERPRINT_ROLE, Engines, fingerprint_folder
from tuneseek.fingerprint.extract import RESAMPLE_QUALITY
from tuneseek.fingerprint.index import LandmarkIndex
from tuneseek.fingerprint.params import DEFAULT as FP
from tuneseek.fingerprint.shards import ShardedLandmarks
from tuneseek.identifier import Candidate
from tuneseek.indexing import Interrupted
from tuneseek.results import (
    AddReport,
    Duplicate,
    Embedding,
    LibraryStats,
    MapPoint,
    Match,
    SearchResult,
    Segment,
    Similar,
    Tags,
    TrackInfo,
)
from tuneseek.similarity import Spaces
from tuneseek.similarsearch import SimilarSearch
from tuneseek.store import manifest
from tuneseek.store.catalog import Catalog, Track
from tuneseek.store.layout import create_library, library_stats
from tuneseek.store.lock import WriterLock
from tuneseek.store.vectors import VectorsSpec, choose_vectors
from tuneseek.textsearch import TextSearch

__all__ = [
    "Library",
    "Match",
    "Segment",
    "Duplicate",
    "Similar",
    "SearchResult",
    "TrackInfo",
    "AddReport",
    "LibraryStats",
    "Interrupted",
    "default_library_path",
    "MIN_CLIP_SECONDS",
    "LONG_CLIP_SECONDS",
]

#: Shorter clips are refused: too few landmarks to tell tracks apart.
MIN_CLIP_SECONDS = 2.0
#: Longer recordings are identified window by window (see ``Library.monitor``), in bounded memory.
LONG_CLIP_SECONDS = 600.0


def default_library_path() -> Path:
    """``$TUNESEEK_LIBRARY``, else ``$XDG_DATA_HOME/tuneseek/library`` (``~/.local/share/...``)."""
    if env := os.environ.get("TUNESEEK_LIBRARY"):
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "tuneseek" / "library"


class Library:
    """A music library on disk. Open with :meth:`open`; use as a context manager or call :meth:`close`."""

    def __init__(self, root: Path, catalog: Catalog, *, vectors: VectorsSpec | None = None):
        self.root = root
        self._catalog = catalog
        self._landmarks = LandmarkIndex(root, catalog)
        self._spaces = Spaces(catalog, spec=vectors, where=root)
        self._text = TextSearch(catalog, root, self._spaces, self._info)
        self._similar = SimilarSearch(catalog, root, self._spaces, self.track, self._info)
        self._sharded: ShardedLandmarks | None = None
        # landmarks (the index, or its shards once opened), learned, fused: by name, for identify and monitor
        self._engines = Engines(catalog, self._landmarks)

    # -- opening -----------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        create: bool = True,
        vectors: str | None = None,
        shards: int = 0,
        ray_address: str | None = None,
    ) -> Library:
        """Open the library at ``path`` (default: :func:`default_library_path`), creating it if asked.

        ``vectors`` says which store holds the vectors ``similar`` searches: "faiss" (in memory,
        built from the catalogue: the default), "milvus" (a Milvus Lite file in the library),
        "milvus:FILE.db" or "milvus:http://HOST:19530" (the ``scale`` extra). The manifest records
        it, and later opens use it without being told; asking for another is a :class:`LibraryError`
        (except moving a library from FAISS, which keeps nothing outside the catalogue, into Milvus).

        ``shards`` above 0 splits the landmark index by track into that many shards held in memory by
        Ray actors (the ``scale`` extra), which ``identify``, ``candidates`` and ``monitor`` query in
        parallel, with the answers of the unsharded library (:mod:`tuneseek.fingerprint.shards`).
        ``ray_address`` places them on a Ray cluster ("auto", "ray://HOST:PORT"); by default Ray starts
        on this machine. :meth:`close` ends them.

        Raises :class:`LibraryError` for a directory that is not a library, and
        :class:`FormatVersionError` for one of another format version.
        """
        root = Path(path).expanduser() if path is not None else default_library_path()
        root = root.absolute()
        if root.exists() and not root.is_dir():
            raise LibraryError(root, "is a file, not a library directory")
        wanted = None if vectors is None else VectorsSpec.parse(vectors, root)
        if not (root / manifest.MANIFEST_NAME).exists():
            if not create:
                raise LibraryError(root, "no library here (index some music first: tuneseek index DIR)")
            create_library(root, fingerprint=LandmarkIndex.version, vectors=Spaces.record_new(root, wanted))
        spec, move = choose_vectors(
            root, VectorsSpec.from_manifest(manifest.read(root, LandmarkIndex.version), root), wanted
        )
        library = cls(root, Catalog(root, create=False), vectors=spec)
        if move:  # from FAISS into Milvus: recorded, then filled from the catalogue
            try:
                library._spaces.move_in(root)
            except BaseException:
                library.close()
                raise
        if shards:
            try:
                library._sharded = library._engines.landmarks = ShardedLandmarks(
                    library._landmarks, shards, address=ray_address
                )
            except BaseException:
                library.close()
                raise
        return library

    @property
    def shards(self) -> int:
        """How many shards hold the landmark index in Ray actors (0: this process reads it from disk)."""
        return self._sharded.count if self._sharded is not None else 0

    def shard_info(self) -> list[dict]:
        """Per shard: ``shard``, ``tracks``, ``first_frame``, and its actor's ``pid``, ``node``, ``segments``,
        ``postings`` and ``bytes`` held; empty for a library that is not sharded."""
        return self._sharded.info() if self._sharded is not None else []

    @property
    def one_process_only(self) -> bool:
        """Whether only one process at a time may open this library's vector store (a Milvus Lite
        file): a server then answers every query in its own process, with no query workers."""
        return self._spaces.spec.lite

    def close(self) -> None:
        if self._sharded is not None:
            self._sharded.close()
            self._sharded = None
        self._landmarks.close()
        self._engines.close()
        self._spaces.close()
        self._catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------
    def tracks(self) -> list[TrackInfo]:
        """All tracks, oldest first."""
        return [TrackInfo.of(t) for t in self._catalog.tracks()]

    def track(self, ref: int | str) -> TrackInfo:
        """A track by id, or by path (as indexed, or as given)."""
        return TrackInfo.of(self._record(ref))

    def _record(self, ref: int | str) -> Track:
        """The catalogue's row of a track by id or path."""
        found = None
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            found = self._catalog.track(int(ref))
        if found is None and isinstance(ref, str | os.PathLike):
            found = self._catalog.track_by_path(os.path.abspath(os.fspath(ref)))
        if found is None:
            raise TrackNotFound(self.root, f"no track {ref!r}")
        return found

    def _info(self, track_id: int) -> TrackInfo:
        return TrackInfo.of(self._catalog.track(track_id))

    def stats(self) -> LibraryStats:
        """How big the library is and what it holds."""
        return library_stats(self.root, self._catalog, embedded_space=analysis.SPACE)

    def warm(self, *, clip_models: bool = True, text_model: bool = True) -> None:
        """Load what queries read, so that the first one pays nothing extra: the landmark index's view,
        the vector stores of every embedding space and (``clip_models``) the model that embeds a clip
        in it (run once on a moment of quiet noise: the first inference pays for more than the
        weights), and (``text_model``, when tracks have tags) the sentence encoder and the tag table.
        A server calls it at start-up, leaving out the models of queries another process answers;
        models that cannot load are left to say so at query."""
        self._landmarks.view()
        self._similar.warm(clip_models=clip_models)
        if text_model:
            self._text.warm()

    # -- which song is this ----------------------------------------------------------
    @property
    def identifier(self) -> LandmarkIndex:
        """The landmark identifier (for tools that weigh its evidence, such as the calibration benchmark)."""
        return self._landmarks

    @property
    def engines(self) -> tuple[str, ...]:
        """The identification engines this library can answer with: "landmarks", and "learned" and
        "fused" when it has a learned fingerprint (:meth:`use_model` with role "fingerprint")."""
        return ENGINES if self._engines.fingerprint_model() is not None else ENGINES[:1]

    @property
    def default_engine(self) -> str:
        """The engine ``identify`` uses when none is named: "fused" with a learned fingerprint whose run holds a
        fitted fusion (the shipped one does), else "landmarks" (why: :mod:`tuneseek.fingerprint.engines`)."""
        return self._engines.default()

    @property
    def learned(self):
        """The learned fingerprint's identifier, or ``None`` without one (for tools that weigh its evidence,
        such as the calibration in ``benchmarks/learned_fingerprint.py``)."""
        return self._engines.learned()

    def identify(
        self, clip: str | Path | np.ndarray, *, sr: int | None = None, engine: str | None = None
    ) -> Match | None:
        """Which track ``clip`` (a file, or samples at ``sr``) comes from, or ``None`` for no match.

        ``engine`` is "landmarks", "learned" or "fused" (default :attr:`default_engine`). Raises
        :class:`AudioError` for a clip that cannot be decoded, is silent, or is shorter than
        :data:`MIN_CLIP_SECONDS`, and :class:`UsageError` for an engine the library does not have.
        """
        found = self.candidates(clip, sr=sr, k=1, engine=engine)
        return found[0] if found else None

    def candidates(
        self, clip: str | Path | np.ndarray, *, sr: int | None = None, k: int = 5, engine: str | None = None
    ) -> list[Match]:
        """Up to ``k`` matches of distinct tracks above the no-match threshold, best first.

        A clip may hold more than one track (two songs back to back): each match says
        which stretch of the clip it covers. A recording longer than
        :data:`LONG_CLIP_SECONDS` is identified window by window (see :meth:`monitor`),
        in bounded memory, and each track's longest stretch is its match.
        """
        if k < 1:
            raise UsageError(f"k must be at least 1, got {k}")
        finder = self._engines.get(engine)
        if self.recording_seconds(clip, sr=sr) > LONG_CLIP_SECONDS:
            return monitoring.longest_per_track(self.monitor(clip, sr=sr, engine=engine), k)
        name, samples = _clip_samples(clip, sr)
        seconds = len(samples) / FP.sr
        if seconds < MIN_CLIP_SECONDS:
            raise AudioError(name, f"too short: {seconds:.2f} s (a clip needs at least {MIN_CLIP_SECONDS:g} s)")
        return [_match(c, self._info(c.track_id)) for c in finder.candidates(samples, k, name=name)]

    def recording_seconds(self, clip: str | Path | np.ndarray, *, sr: int | None = None) -> float:
        """Length of a clip file (from its header; 0 when the header does not say) or of samples at ``sr``."""
        if isinstance(clip, np.ndarray):
            if sr is None:
                raise UsageError("audio given as samples needs its sample rate: sr=")
            return len(clip) / sr
        return audio.probe(os.fspath(clip)).duration or 0.0

    def monitor(
        self,
        recording: str | Path | np.ndarray,
        *,
        sr: int | None = None,
        window: float = monitoring.WINDOW_SECONDS,
        hop: float = monitoring.HOP_SECONDS,
        engine: str | None = None,
    ) -> Iterator[Segment]:
        """The timeline of a recording of any length (a radio show, a DJ mix), segment by segment.

        Yields :class:`~tuneseek.results.Segment` objects in recording order as the
        recording is read: each names a library track and the span of it that plays,
        or (``track`` None) a stretch where nothing matched. A file is streamed: memory
        stays bounded whatever its length. ``engine`` as for :meth:`identify`.
        """
        finder = self._engines.get(engine)
        if not 0 < hop <= window or window < MIN_CLIP_SECONDS:
            raise UsageError(f"monitoring needs 0 < hop <= window and a window of at least {MIN_CLIP_SECONDS:g} s")
        if isinstance(recording, np.ndarray):
            name, chunks = "<samples>", [audio.from_samples(recording, sr, FP.sr, quality=RESAMPLE_QUALITY)]
        else:
            name = os.fspath(recording)
            chunks = audio.stream(name, FP.sr, quality=RESAMPLE_QUALITY)

        def identify(samples: np.ndarray) -> list[Candidate]:
            if len(samples) < MIN_CLIP_SECONDS * FP.sr:
                return []
            try:
                return finder.candidates(samples, monitoring.WINDOW_CANDIDATES, name=name)
            except AudioError:  # a silent or empty window: nothing plays there
                return []

        yield from monitoring.timeline(
            monitoring.windows(chunks, sr=FP.sr, window=window, hop=hop), identify, self._info
        )

    def duplicates(self) -> list[Duplicate]:
        """Tracks that hold the same audio: the same recording in another encoding or edit, or one inside another
        (see :func:`tuneseek.monitor.duplicates`); every pair once, with its longest shared span, longest first."""
        return monitoring.duplicates(self._landmarks, self._info)

    # -- what it sounds like ---------------------------------------------------------
    def tags(self, ref: int | str | TrackInfo) -> dict[str, Tags]:
        """The stored tags of a track, ``{vocabulary: Tags}`` ("mtt", "msd"); ``{}`` if it has none yet."""
        track = ref if isinstance(ref, TrackInfo) else self.track(ref)
        return analysis.stored_tags(track.path, self._catalog.vocabularies(), self._catalog.tags(track.id))

    def extractors(self, ref: int | str | TrackInfo) -> dict[str, str]:
        """``{extractor: version}`` of what the library holds for a track (landmarks, tags, embeddings)."""
        track = ref if isinstance(ref, TrackInfo) else self.track(ref)
        return self._catalog.extractors(track.id).get(track.id, {})

    def embedding(self, ref: int | str | TrackInfo, *, space: str = analysis.SPACE) -> Embedding | None:
        """The stored vectors of a track in ``space`` (``layer`` names the space; one vector per segment,
        segment ``i`` starting at ``times[i]``), or ``None`` when it has none there."""
        track = ref if isinstance(ref, TrackInfo) else self.track(ref)
        stored = next(self._catalog.embeddings(space, track_id=track.id), None)
        return None if stored is None else analysis.stored_embedding(track.path, space, stored)

    def set_tags(
        self, ref: int | str | TrackInfo, *, vocabulary: str, probs: np.ndarray, labels: list[str] | None = None
    ) -> None:
        """Store tags a track got elsewhere (another tagger, hand labelling): one probability per label of
        ``vocabulary`` (its ``labels`` given the first time, in order). Zero-shot :meth:`search` reads them."""
        track = ref if isinstance(ref, TrackInfo) else self.track(ref)
        with WriterLock(self.root):
            ingest.set_tags(self._catalog, track.id, vocabulary, np.asarray(probs, np.float32), labels)

    @staticmethod
    def tag_file(path: str | Path, *, model: str = "mtt", wheel: str | None = None) -> Tags:
        """Tags of any audio file over time, from musicnn ("mtt", "msd") or a trained run's folder; no library needed.

        The file goes through the extractor a library would tag it with (:meth:`Extractor.describe
        <tuneseek.extractors.Extractor.describe>`), a trained run opened as a tagger.
        """
        return _file_extractor(model, "tagger", wheel).describe(path)

    @staticmethod
    def embed_file(
        path: str | Path,
        *,
        window: float | None = None,
        hop: float | None = None,
        layer: str = "penultimate",
        pool: str = "none",
        model: str = "mtt",
        wheel: str | None = None,
    ) -> Embedding:
        """Embeddings of any audio file over time, from musicnn ("mtt", "msd": any ``layer`` and ``window``) or a trained
        run's folder (its own window and embedding), opened as an embedder; ``hop`` defaults to half a window, and
        ``pool`` "mean" or "max" gives one vector (see the extractors' ``describe``)."""
        return _file_extractor(model, "embedder", wheel).describe(path, window=window, hop=hop, layer=layer, pool=pool)

    # -- what else sounds like this --------------------------------------------------------
    def spaces(self) -> dict[str, int]:
        """``{embedding space: tracks embedded in it}``: "musicnn", and one per trained embedder."""
        return {space: self._catalog.count_embedded(space) for space in self._catalog.spaces()}

    def similar(
        self,
        query: int | str | Path | TrackInfo | np.ndarray,
        *,
        k: int = 10,
        sr: int | None = None,
        space: str = analysis.SPACE,
    ) -> list[Similar]:
        """Tracks that sound like ``query``, most similar first, the query's own track left out.

        ``query`` is a library track (a :class:`TrackInfo`, an id, or its path), any audio file,
        or samples at ``sr``. A track, or a file of at least
        :data:`~tuneseek.similarsearch.WHOLE_TRACK_SECONDS`, is compared as a whole: its mean vector
        against each track's (cosine). A shorter clip is compared with every segment in the library
        (3.7 s for musicnn, the model's window for a trained embedder), and each result says where
        its best-matching segment starts.
        ``space`` is "musicnn" or the name of a trained embedder the library runs.
        """
        if k < 1:
            raise UsageError(f"k must be at least 1, got {k}")
        return self._similar.similar(query, k, sr, space)

    def embedding_map(self, *, space: str = analysis.SPACE) -> list[MapPoint]:
        """Every embedded track placed on a plane, near the tracks that sound like it.

        The plane is the first two principal axes of the tracks' vectors in ``space`` (what
        ``similar`` compares): a quick overview of the library, drawn anew as it grows.
        """
        return self._similar.embedding_map(space)

    # -- finding music by describing it ------------------------------------------------
    def search(self, query: str, *, k: int = 10) -> SearchResult:
        """Tracks that fit a description ("calm solo piano, no vocals"), best first.

        Uses the library's trained text–audio model when it has one (``index --text-model``),
        else ranks zero-shot by the musicnn tags every track has; the result says which, and
        passes on what the person should know about the query (cut, non-English script).
        Raises :class:`UsageError` for an empty query or ``k < 1``, and
        :class:`LibraryError` when no track has what the mode needs yet.
        """
        if k < 1:
            raise UsageError(f"k must be at least 1, got {k}")
        return self._text.search(query, k)

    def embed_text(self, text: str) -> tuple[np.ndarray, str]:
        """``(vector, space)`` of a description: the 128-d vector of the library's text–audio model
        (space "text-audio") when it has one, else the sentence encoder's own vector (its name)."""
        return self._text.embed(text)

    # -- writing -------------------------------------------------------------------
    def add(
        self,
        paths: Iterable[str | Path],
        *,
        workers: int | None = None,
        progress: ingest.Progress | None = None,
        executor=None,
        on_files: Callable[[int], None] | None = None,
        commit_every: float = ingest.COMMIT_EVERY_SECONDS,
        analyse: bool = True,
        wheel: str | None = None,
    ) -> AddReport:
        """Index audio files and folders (recursively). Incremental, parallel and atomic.

        Every file gets landmarks (for ``identify``) and, with ``analyse``, tags in both
        musicnn vocabularies and 3.7 s segment embeddings (for ``tags`` and ``similar``),
        and the outputs of the trained models the library runs (:meth:`use_model`).
        When the models cannot be had (no PyTorch, no weights and no way to fetch them) the
        files are still indexed for identification and ``report.analysis_skipped`` says why.

        Unchanged files (same size and time, or same content) are skipped, except for the
        extractors they lack or that changed version since: a library indexed before gains
        tags and embeddings in place. Changed files are re-indexed; files that fail are
        reported and skipped. ``progress`` is called once per file processed; ``on_files``
        once with the file count. ``executor`` (any :class:`concurrent.futures.Executor`, or
        a name :func:`tuneseek.executors.open_executor` knows: "ray", "ray://host:port")
        replaces the local worker processes; whatever ran where, files are committed in their
        order. Finished files are committed at least every
        ``commit_every`` seconds: an interrupted run loses only what it did since. SIGINT or
        SIGTERM stops a run within seconds: what finished is committed, then
        :class:`Interrupted` says how much (its ``report`` is this run's).
        """
        settings = ingest.Settings(workers, progress, executor, on_files, commit_every, analyse, wheel)
        with WriterLock(self.root):
            return ingest.add(
                self._catalog, self._landmarks, paths, settings, vectors=self._spaces, learned=self._learned_for_add()
            )

    def _learned_for_add(self):
        """The learned fingerprint that stores what the workers compute, when the library has one it can load
        (one it cannot load is reported by ``add`` as a model skipped)."""
        if self._engines.fingerprint_model() is None:
            return None
        try:
            return self._engines.learned()
        except TuneseekError:
            return None

    def use_model(self, folder: str | Path, *, role: str) -> str:
        """Run the trained model in ``folder`` (made by ``tuneseek train``) on every track from now on,
        as a ``role`` "tagger" (its tags are stored beside musicnn's), "embedder" (a new embedding
        space for :meth:`similar`), "text-audio" (a joint text–audio model, made by ``tuneseek
        train text-audio``: :meth:`search` uses it from then on, and its audio vectors form the
        space "text-audio") or "fingerprint" (a learned fingerprint, made by ``tuneseek train
        fingerprint``, or "builtin" for the one shipped in the package: :meth:`identify` can then
        use the engines "learned" and "fused"); the next :meth:`add` gives it to the tracks already
        indexed.

        Returns the extractor name ("tags:NAME", "embedding:NAME" or "fingerprint:NAME", NAME from
        the run folder's name; "embedding:text-audio" for a text–audio model). The same name given
        again with another folder replaces the old model; a library has one learned fingerprint at a time.
        """
        if role == FINGERPRINT_ROLE:
            folder = fingerprint_folder(folder)
        extractor = open_extractor(folder=folder, role=role)
        with WriterLock(self.root):
            ingest.use_model(self._catalog, extractor, role)
        return extractor.name

    def models(self) -> dict[str, dict[str, str]]:
        """The trained models this library runs: ``{extractor: {"folder", "role"}}``."""
        return self._catalog.models()

    def remove(self, ref: int | str) -> TrackInfo:
        """Take a track out of the library and of every index; returns what was removed."""
        with WriterLock(self.root):
            track = self.track(ref)
            ingest.remove(self._catalog, self._landmarks, track.id, self._spaces)
        return track

    def compact(self) -> None:
        """Merge all landmark segments into one, dropping postings of removed tracks (and bring a vector
        store outside the process in step with the catalogue, should a crash have left it behind)."""
        with WriterLock(self.root):
            self._landmarks.compact()
            self._spaces.reconcile()
            self._spaces.settle()


def _file_extractor(model: str, role: str, wheel: str | None) -> Extractor:
    """The extractor that tags or embeds a file: musicnn's ``model`` ("mtt", "msd") through its tags extractor, whose
    ``describe`` also gives the vectors of a layer; else the trained run in the folder ``model`` as a ``role``."""
    if model in analysis.MODELS:
        return open_extractor(f"tags:{model}", wheel=wheel)
    return open_extractor(folder=model, role=role)


def _match(c: Candidate, track: TrackInfo) -> Match:
    return Match(track, c.offset, c.score, c.confidence, c.speed, c.tempo, c.clip_start, c.clip_end, c.coverage)


def _clip_samples(clip, sr: int | None) -> tuple[str, np.ndarray]:
    """A clip file or array as ``(its name, mono samples at the fingerprint rate)``."""
    if isinstance(clip, np.ndarray):
        return "<samples>", audio.from_samples(clip, sr, FP.sr, quality=RESAMPLE_QUALITY)
    path = os.fspath(clip)
    return path, audio.load(path, FP.sr, quality=RESAMPLE_QUALITY)
