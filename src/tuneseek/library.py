"""The Library: one directory of music knowledge, and everything you can ask it.

Faces (the command line, the HTTP service) call this API and nothing below it.

On disk (see DESIGN.md)::

    LIBRARY/
      tuneseek.json        manifest: format + fingerprint versions
      catalog.sqlite       tracks, segments, extractor versions, tags, embeddings (WAL)
      landmarks/seg-*/     immutable landmark segments, memory-mapped
      writer.lock          held by the one process that writes

Every write is atomic: segments are written aside and renamed, then listed in
the catalogue in one transaction together with their tracks. A process killed
at any moment leaves a library that opens and answers for every track whose
add completed; segments it left half-done are swept by the next writer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from tuneseek import analysis, audio
from tuneseek import monitor as monitoring
from tuneseek.errors import AudioError, LibraryBusyError, LibraryError, TuneseekError, UsageError
from tuneseek.fingerprint.extract import RESAMPLE_QUALITY, FileFingerprint, content_hash
from tuneseek.fingerprint.index import LandmarkIndex, SegmentMissing
from tuneseek.fingerprint.params import DEFAULT as FP
from tuneseek.fingerprint.params import FINGERPRINT_VERSION
from tuneseek.indexing import Interrupted, Job, Outcome, run_jobs
from tuneseek.similarity import SpaceIndex
from tuneseek.store import manifest
from tuneseek.store.catalog import CATALOG_NAME, TRACK_GAP_FRAMES, Catalog, Track
from tuneseek.identifier import Candidate
from tuneseek.results import AddReport, Duplicate, Embedding, LibraryStats, Match, Segment, Similar, Tags, TrackInfo
from tuneseek.store.landmarks import SEGMENTS_DIR, remove_unlisted, segment_size, write_segment
from tuneseek.store.lock import LOCK_NAME, WriterLock
from tuneseek.textsearch import TEXT_AUDIO_EXTRACTOR, TEXT_AUDIO_SPACE, tag_table
from tuneseek.results import SearchResult

__all__ = ["Library", "Match", "Segment", "Duplicate", "Similar", "TrackInfo", "AddReport", "default_library_path", "MIN_CLIP_SECONDS",
           "LONG_CLIP_SECONDS"]

#: Shorter clips are refused: too few landmarks to tell tracks apart.
MIN_CLIP_SECONDS = 2.0
#: Longer recordings are identified window by window (see ``Library.monitor``), in bounded memory.
LONG_CLIP_SECONDS = 600.0
#: Commit indexed files at least this often, so an interrupted run loses little.
COMMIT_EVERY_SECONDS = 5.0
COMMIT_EVERY_POSTINGS = 4_000_000
#: Above this many segments, ``add`` merges the small ones.
MAX_SEGMENTS = 8
#: ``similar`` compares a file at least this long as a whole track; a shorter one as a clip.
WHOLE_TRACK_SECONDS = 30.0


def default_library_path() -> Path:
    """``$TUNESEEK_LIBRARY``, else ``$XDG_DATA_HOME/tuneseek/library`` (``~/.local/share/...``)."""
    if env := os.environ.get("TUNESEEK_LIBRARY"):
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "tuneseek" / "library"


Progress = Callable[[Outcome], None]


class Library:
    """A music library on disk. Open with :meth:`open`; use as a context manager or call :meth:`close`."""

    def __init__(self, root: Path, catalog: Catalog):
        self.root = root
        self.catalog = catalog
        self.landmarks = LandmarkIndex(root)
        self._fresh = False  # whether the landmark index holds the catalogue's current view
        self._seen_version: int | None = None
        self._spaces: dict[str, SpaceIndex] = {}
        self._spaces_version: int | None = None
        self._tags_table = None  # (catalogue version, zero-shot TagTable), built by the first search
        self._encoder = None  # the sentence encoder, loaded by the first search

    # -- opening -----------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path | None = None, create: bool = True) -> "Library":
        """Open the library at ``path`` (default: :func:`default_library_path`), creating it if asked.

        Raises :class:`LibraryError` for a directory that is not a library, and
        :class:`FormatVersionError` for one of another format version.
        """
        root = Path(path).expanduser() if path is not None else default_library_path()
        root = root.absolute()
        if root.exists() and not root.is_dir():
            raise LibraryError(root, "is a file, not a library directory")
        if not (root / manifest.MANIFEST_NAME).exists():
            if not create:
                raise LibraryError(root, "no library here (index some music first: tuneseek index DIR)")
            _create(root)
        manifest.read(root)
        return cls(root, Catalog(root, create=False))

    def close(self) -> None:
        self.landmarks.clear()
        self.catalog.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------
    def tracks(self) -> list[TrackInfo]:
        """All tracks, oldest first."""
        return [TrackInfo.of(t) for t in self.catalog.tracks()]

    def track(self, ref: int | str) -> TrackInfo:
        """A track by id, or by path (as indexed, or as given)."""
        return TrackInfo.of(self._record(ref))

    def _record(self, ref: int | str) -> Track:
        """The catalogue's row of a track by id or path (it knows where the track lies in the index)."""
        found = None
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            found = self.catalog.track(int(ref))
        if found is None and isinstance(ref, str | os.PathLike):
            found = self.catalog.track_by_path(os.path.abspath(os.fspath(ref)))
        if found is None:
            raise LibraryError(self.root, f"no track {ref!r}")
        return found

    def stats(self) -> LibraryStats:
        tracks = self.tracks()
        sizes = self.catalog.segment_sizes()
        return LibraryStats(
            path=str(self.root),
            tracks=len(tracks),
            audio_hours=sum(t.duration for t in tracks) / 3600,
            landmarks=sum(t.n_landmarks for t in tracks),
            segments=len(sizes),
            index_bytes=sum(segment_size(self.root, s) for s in sizes),
            catalog_bytes=sum(
                p.stat().st_size for p in self.root.glob("catalog.sqlite*") if p.is_file()
            ),
            tagged=self.catalog.count_tagged(),
            embedded=self.catalog.count_embedded(analysis.SPACE),
            spaces=self.spaces(),
            models={ex: m["folder"] for ex, m in self.catalog.models().items()},
        )

    def _refresh(self) -> None:
        """Hand the landmark index the catalogue's segments and live tracks if another connection changed them."""
        version = self.catalog.data_version()
        if self._fresh and version == self._seen_version:
            return
        for _ in range(3):
            with self.catalog.snapshot():
                names = self.catalog.segments()
                tracks = self.catalog.tracks()
            try:
                self.landmarks.refresh(names, tracks)
                break
            except SegmentMissing as e:
                missing = e.filename  # merged away since we read the list? read it again
        else:
            raise LibraryError(self.root, f"index segment file missing or damaged ({missing}); re-index this library")
        self._fresh = True
        self._seen_version = version

    @property
    def identifier(self) -> LandmarkIndex:
        """The landmark identifier, up to date with the catalogue (for tools that weigh its evidence)."""
        self._refresh()
        return self.landmarks

    def identify(self, clip: str | Path | np.ndarray, sr: int | None = None) -> Match | None:
        """Which track ``clip`` (a file, or samples at ``sr``) comes from, or ``None`` for no match.

        Raises :class:`AudioError` for a clip that cannot be decoded, is silent,
        or is shorter than :data:`MIN_CLIP_SECONDS`.
        """
        found = self.candidates(clip, sr, k=1)
        return found[0] if found else None

    def candidates(self, clip: str | Path | np.ndarray, sr: int | None = None, k: int = 5) -> list[Match]:
        """Up to ``k`` matches of distinct tracks above the no-match threshold, best first.

        A clip may hold more than one track (two songs back to back): each match says
        which stretch of the clip it covers. A recording longer than
        :data:`LONG_CLIP_SECONDS` is identified window by window (see :meth:`monitor`),
        in bounded memory, and each track's longest stretch is its match.
        """
        if k < 1:
            raise UsageError(f"k must be at least 1, got {k}")
        if self.recording_seconds(clip, sr) > LONG_CLIP_SECONDS:
            return self._long_candidates(clip, sr, k)
        name, samples = self._clip_samples(clip, sr)
        seconds = len(samples) / FP.sr
        if seconds < MIN_CLIP_SECONDS:
            raise AudioError(name, f"too short: {seconds:.2f} s (a clip needs at least {MIN_CLIP_SECONDS:g} s)")
        self._refresh()
        return [_match(c, self._info(c.track_id)) for c in self.landmarks.candidates(samples, k, name)]

    def recording_seconds(self, clip: str | Path | np.ndarray, sr: int | None = None) -> float:
        """Length of a clip file (from its header; 0 when the header does not say) or of samples at ``sr``."""
        if isinstance(clip, np.ndarray):
            if sr is None:
                raise UsageError("audio given as samples needs its sample rate: sr=")
            return len(clip) / sr
        return audio.probe(os.fspath(clip)).duration or 0.0

    def monitor(self, recording: str | Path | np.ndarray, sr: int | None = None,
                window: float = monitoring.WINDOW_SECONDS, hop: float = monitoring.HOP_SECONDS) -> Iterator[Segment]:
        """The timeline of a recording of any length (a radio show, a DJ mix), segment by segment.

        Yields :class:`~tuneseek.monitor.Segment` objects in recording order as the
        recording is read: each names a library track and the span of it that plays,
        or (``track`` None) a stretch where nothing matched. A file is streamed: memory
        stays bounded whatever its length.
        """
        if not 0 < hop <= window or window < MIN_CLIP_SECONDS:
            raise UsageError(f"monitoring needs 0 < hop <= window and a window of at least {MIN_CLIP_SECONDS:g} s")
        if isinstance(recording, np.ndarray):
            name, chunks = "<samples>", [_resampled(recording, sr, FP.sr, RESAMPLE_QUALITY)]
        else:
            name = os.fspath(recording)
            chunks = audio.stream(name, FP.sr, quality=RESAMPLE_QUALITY)
        self._refresh()

        def identify(samples: np.ndarray) -> list[Candidate]:
            if len(samples) < MIN_CLIP_SECONDS * FP.sr:
                return []
            try:
                return self.landmarks.candidates(samples, monitoring.WINDOW_CANDIDATES, name)
            except AudioError:  # a silent or empty window: nothing plays there
                return []

        yield from monitoring.timeline(monitoring.windows(chunks, FP.sr, window, hop), identify, self._info)

    def duplicates(self) -> list[Duplicate]:
        """Tracks that hold the same audio: the same recording in another encoding or edit, or one inside another.

        Each track's own landmarks are matched against the rest of the index window by
        window (no audio is decoded), and agreeing windows are joined as in
        :meth:`monitor`; every pair of tracks is reported once, with its longest shared
        span, longest first.
        """
        index = self.identifier
        fps = FP.frames_per_second
        size, step = int(monitoring.WINDOW_SECONDS * fps), int(monitoring.HOP_SECONDS * fps)
        found: dict[tuple[int, int], Duplicate] = {}
        for track_id, hashes, frames in index.track_landmarks():
            total = int(frames.max(initial=0)) + 1

            def stretches(hashes=hashes, frames=frames, total=total):
                for w0 in range(0, max(1, total - size + step), step):
                    a, b = np.searchsorted(frames, [w0, w0 + size])
                    w1 = min(total, w0 + size)
                    yield w0 / fps, w1 / fps, (hashes[a:b], frames[a:b] - w0, (w1 - w0) / fps)

            def identify(window, track_id=track_id):
                h, anchor, seconds = window
                return [c for c in index.landmark_candidates(h, anchor, seconds, monitoring.WINDOW_CANDIDATES)
                        if c.track_id != track_id]

            for seg in monitoring.timeline(stretches(), identify, self._info):
                if seg.track is None:
                    continue
                dup = Duplicate.of(self._info(track_id), seg)
                key = (dup.track.id, dup.other.id)
                if key not in found or dup.seconds > found[key].seconds:
                    found[key] = dup
        return sorted(found.values(), key=lambda d: (-d.seconds, d.track.id, d.other.id))

    def _long_candidates(self, clip, sr: int | None, k: int) -> list[Match]:
        """Matches of a long recording: its monitored segments, each track's longest one, best first."""
        best: dict[int, Segment] = {}
        for seg in self.monitor(clip, sr):
            if seg.track is not None:
                held = best.get(seg.track.id)
                if held is None or seg.end - seg.start > held.end - held.start:
                    best[seg.track.id] = seg
        ranked = sorted(best.values(), key=lambda s: (-s.confidence, -(s.end - s.start)))[:k]
        return [
            Match(s.track, s.track_start - s.start * s.speed * s.tempo, s.score, s.confidence, s.speed, s.tempo,
                  s.start, s.end, s.coverage)
            for s in ranked
        ]

    def _clip_samples(self, clip, sr) -> tuple[str, np.ndarray]:
        if isinstance(clip, np.ndarray):
            return "<samples>", _resampled(clip, sr, FP.sr, RESAMPLE_QUALITY)
        path = os.fspath(clip)
        return path, audio.load(path, FP.sr, quality=RESAMPLE_QUALITY)

    def _info(self, track_id: int) -> TrackInfo:
        return TrackInfo.of(self.catalog.track(track_id))

    # -- what it sounds like ---------------------------------------------------------
    def tags(self, ref: int | str | TrackInfo) -> dict[str, Tags]:
        """The stored tags of a track, ``{vocabulary: Tags}`` ("mtt", "msd"); ``{}`` if it has none yet."""
        track = ref if isinstance(ref, TrackInfo) else self.track(ref)
        labels = self.catalog.vocabularies()
        stored = self.catalog.tags(track.id)
        return {
            vocab: Tags(track.path, vocab, tuple(labels[vocab]), probs, np.zeros(0), np.zeros((0, len(probs))))
            for vocab, probs in sorted(stored.items(), key=lambda kv: analysis.MODELS.index(kv[0]) if kv[0] in analysis.MODELS else 99)
        }

    def extractors(self, ref: int | str | TrackInfo) -> dict[str, str]:
        """``{extractor: version}`` of what the library holds for a track (landmarks, tags, embeddings)."""
        track = ref if isinstance(ref, TrackInfo) else self.track(ref)
        return self.catalog.extractors(track.id).get(track.id, {})

    @staticmethod
    def tag_file(path: str | Path, *, model: str = "mtt", wheel: str | None = None) -> Tags:
        """Tags of any audio file over time, from musicnn ("mtt", "msd") or a trained run's folder; no library needed."""
        return analysis.tag_file(path, model, wheel)

    @staticmethod
    def embed_file(path: str | Path, *, window: float | None = None, hop: float | None = None,
                   layer: str = "penultimate", pool: str = "none", model: str = "mtt") -> Embedding:
        """Embeddings of any audio file over time, from musicnn or a trained run (see :func:`tuneseek.analysis.embed_file`)."""
        return analysis.embed_file(path, window, hop, layer, pool, model)

    def spaces(self) -> dict[str, int]:
        """``{embedding space: tracks embedded in it}``: "musicnn", and one per trained embedder."""
        return {space: self.catalog.count_embedded(space) for space in self.catalog.spaces()}

    def similar(self, query: int | str | Path | TrackInfo | np.ndarray, k: int = 10, sr: int | None = None,
                space: str = analysis.SPACE) -> list[Similar]:
        """Tracks that sound like ``query``, most similar first, the query's own track left out.

        ``query`` is a library track (a :class:`Track`, an id, or its path), any audio file,
        or samples at ``sr``. A track, or a file of at least :data:`WHOLE_TRACK_SECONDS`, is
        compared as a whole: its mean vector against each track's (cosine). A shorter clip is
        compared with every segment in the library (3.7 s for musicnn, the model's window for
        a trained embedder), and each result says where its best-matching segment starts.
        ``space`` is "musicnn" or the name of a trained embedder the library runs.
        """
        if k < 1:
            raise UsageError(f"k must be at least 1, got {k}")
        if space != analysis.SPACE and f"embedding:{space}" not in self.catalog.models():
            known = ", ".join(sorted({analysis.SPACE, *self.catalog.spaces()}))
            raise UsageError(f"no embedding space {space!r} in this library (it has: {known})")
        index = self._space(space)
        if len(index) == 0:
            raise LibraryError(self.root, f"no track has {space} embeddings yet: run `tuneseek index` on your music "
                                          "with the models available (pip install 'tuneseek[models]')")
        track = self._as_track(query)
        if track is not None:
            stored = next(self.catalog.embeddings(space, track.id, segments=False), None)
            if stored is None:
                raise LibraryError(self.root, f"track {track.id} has no {space} embeddings yet: "
                                              f"run `tuneseek index {track.path}`")
            found = index.by_track(stored.track_vector, k, exclude={track.id})
        else:
            rate, vectors_at = self._query_vectors(space)  # a track query needs no model: loaded only here
            x = self._samples(query, sr, rate)
            exclude = self._copies_of(query)
            if len(x) >= WHOLE_TRACK_SECONDS * rate:
                found = index.by_track(vectors_at(x, whole=True).mean(axis=0), k, exclude)
            else:
                found = index.by_segment(vectors_at(x, whole=False).mean(axis=0), k, exclude)
        return [Similar(self._info(tid), score, time) for tid, score, time in found]

    def _query_vectors(self, space: str) -> tuple[int, Callable[..., np.ndarray]]:
        """The sample rate of the model of ``space`` (a space the library has) and a function giving a
        query's vectors in it (segments side by side for a whole file, overlapping by half for a clip)."""
        if space == analysis.SPACE:
            return analysis.MUSICNN_SR, _musicnn_vectors
        folder = self.catalog.models()[f"embedding:{space}"]["folder"]
        if space == TEXT_AUDIO_SPACE:  # the joint space projects musicnn's segments
            run = self._text_audio_run(folder)
            return analysis.MUSICNN_SR, lambda x, whole: run.audio_vector(_musicnn_vectors(x, whole))[None]
        model = analysis.trained_model(folder)
        return model.sample_rate, lambda x, whole: model.vectors(x, None if whole else model.window / 2)[1]

    # -- finding music by describing it ------------------------------------------------
    def search(self, query: str, k: int = 10) -> SearchResult:
        """Tracks that fit a description ("calm solo piano, no vocals"), best first.

        Uses the library's trained text–audio model when it has one (``index --text-model``),
        else ranks zero-shot by the musicnn tags every track has; the result says which, and
        passes on what the person should know about the query (cut, non-English script).
        Raises :class:`UsageError` for an empty query or ``k < 1``, and
        :class:`LibraryError` when no track has what the mode needs yet.
        """
        if k < 1:
            raise UsageError(f"k must be at least 1, got {k}")
        trained = self.catalog.models().get(TEXT_AUDIO_EXTRACTOR)
        if trained is not None:
            return self._search_trained(query, k, trained["folder"])
        from tuneseek.text.zeroshot import zero_shot

        table = self._tag_table()
        if table is None:
            raise LibraryError(self.root, "no track has tags yet: run `tuneseek index` on your music with the models "
                                          "available (pip install 'tuneseek[models]')")
        encoder = self._text_encoder()
        ranking = zero_shot(query, encoder, table, k)
        hits = [Similar(self._info(tid), score) for tid, score in ranking.tracks]
        return SearchResult(ranking.query, "zero-shot", f"zero-shot from musicnn tags ({encoder.name})", hits,
                            ranking.explain(), ranking.notices)

    def _search_trained(self, query: str, k: int, folder: str) -> SearchResult:
        """Rank the tracks' joint-space vectors by dot product with the query's."""
        run = self._text_audio_run(folder)
        q = run.query(query)
        index = self._space(TEXT_AUDIO_SPACE)
        if len(index) == 0:
            raise LibraryError(self.root, f"no track has {TEXT_AUDIO_SPACE} vectors yet: run `tuneseek index` on your "
                                          "music with the models available")
        hits = [Similar(self._info(tid), score) for tid, score, _ in index.by_track(q.vector, k, set())]
        return SearchResult(q.text, "trained", f"text–audio model {run.name} ({run.folder})", hits, "", q.notices)

    def embed_text(self, text: str) -> tuple[np.ndarray, str]:
        """``(vector, space)`` of a description: the 128-d vector of the library's text–audio model
        (space "text-audio") when it has one, else the sentence encoder's own vector (its name)."""
        trained = self.catalog.models().get(TEXT_AUDIO_EXTRACTOR)
        if trained is not None:
            return self._text_audio_run(trained["folder"]).query(text).vector, TEXT_AUDIO_SPACE
        encoder = self._text_encoder()
        return encoder.encode_query(text).vector, encoder.name

    @staticmethod
    def _text_audio_run(folder: str):
        from tuneseek.models.text_audio import load_text_audio

        return load_text_audio(folder)

    def _tag_table(self):
        version = self.catalog.data_version()
        if self._tags_table is None or self._tags_table[0] != version:
            self._tags_table = (version, tag_table(self.catalog))
        return self._tags_table[1]

    def _text_encoder(self):
        from tuneseek.text.encoder import TextEncoder

        if self._encoder is None:
            self._encoder = TextEncoder()
        return self._encoder

    def _space(self, name: str) -> SpaceIndex:
        """The vector indexes of embedding space ``name``, rebuilt when the catalogue changed."""
        version = self.catalog.data_version()
        if version != self._spaces_version:
            self._spaces.clear()
            self._spaces_version = version
        if name not in self._spaces:
            self._spaces[name] = SpaceIndex(self.catalog, name, centred=name != TEXT_AUDIO_SPACE)
        return self._spaces[name]

    def _as_track(self, query) -> TrackInfo | None:
        """The library track ``query`` names, or ``None`` when it is audio to analyse."""
        if isinstance(query, TrackInfo):
            return query
        if isinstance(query, np.ndarray):
            return None
        if isinstance(query, int) or (isinstance(query, str) and query.isdigit() and not os.path.exists(query)):
            return self.track(int(query))
        known = self.catalog.track_by_path(os.path.abspath(os.fspath(query)))
        if known is not None or os.path.exists(query):
            return None if known is None else TrackInfo.of(known)
        raise LibraryError(self.root, f"{os.fspath(query)!r} is neither an audio file nor a track of this library")

    def _copies_of(self, query) -> set[int]:
        """Tracks holding the same file as ``query`` (a copy elsewhere): they are not "similar", they are it."""
        if isinstance(query, np.ndarray):
            return set()
        try:
            return {t.id for t in self.catalog.tracks_by_hash(content_hash(os.fspath(query)))}
        except OSError:
            return set()

    @staticmethod
    def _samples(query, sr: int | None, rate: int) -> np.ndarray:
        """A query file or array as mono at ``rate``, refused when it cannot be described."""
        if not isinstance(query, np.ndarray):
            return analysis.decode(query, rate)
        return analysis.checked("<samples>", _resampled(query, sr, rate, "HQ"), rate)

    # -- writing -------------------------------------------------------------------
    def add(
        self,
        paths: Iterable[str | Path],
        workers: int | None = None,
        progress: Progress | None = None,
        executor=None,
        on_files: Callable[[int], None] | None = None,
        commit_every: float = COMMIT_EVERY_SECONDS,
        analyse: bool = True,
        wheel: str | None = None,
    ) -> AddReport:
        """Index audio files and folders (recursively). Incremental, parallel and atomic.

        Every file gets landmarks (for ``identify``) and, with ``analyse``, tags in both
        musicnn vocabularies and 3.7 s segment embeddings (for ``tags`` and ``similar``).
        When the models cannot be had (no PyTorch, no weights and no way to fetch them) the
        files are still indexed for identification and ``report.analysis_skipped`` says why.

        Unchanged files (same size and time, or same content) are skipped, except for the
        extractors they lack or that changed version since: a library indexed before gains
        tags and embeddings in place. Changed files are re-indexed; files that fail are
        reported and skipped. ``progress`` is called once per file processed; ``on_files``
        once with the file count. Finished files are committed at least every
        ``commit_every`` seconds: an interrupted run loses only what it did since. SIGINT or
        SIGTERM stops a run within seconds: what finished is committed, then
        :class:`~tuneseek.indexing.Interrupted` says how much (its ``report`` is this run's).
        """
        started = time.perf_counter()
        report = AddReport()
        files: list[str] = []
        for p in paths:
            try:
                files.extend(os.path.abspath(f) for f in audio.find_audio_files(p))
            except AudioError as e:
                report.failed.append((e.path, e.reason))
        with WriterLock(self.root):
            remove_unlisted(self.root, set(self.catalog.segments()))
            wanted, trained = self._analysis_extractors(wheel, report) if analyse and files else ({}, {})
            jobs = self._jobs(files, wanted, trained, report)
            if on_files:
                on_files(len(jobs))
            batch: list[Outcome] = []
            postings, last_commit, committed, stopped = 0, time.monotonic(), 0, None
            try:
                for outcome in run_jobs(jobs, workers, executor):
                    if outcome.error:
                        report.failed.append((outcome.path, outcome.error))
                    else:
                        batch.append(outcome)
                        if outcome.fingerprint is not None:
                            postings += len(outcome.fingerprint.hashes)
                            report.audio_seconds += outcome.fingerprint.duration
                        elif outcome.description is not None:
                            report.audio_seconds += outcome.description.duration
                        if outcome.describe_error:
                            report.analysis_failed.append((outcome.path, outcome.describe_error))
                    if progress:
                        progress(outcome)
                    if batch and (postings >= COMMIT_EVERY_POSTINGS or time.monotonic() - last_commit >= commit_every):
                        self._commit(batch, report, wanted)
                        committed += len(batch)
                        batch, postings, last_commit = [], 0, time.monotonic()
            except Interrupted as e:  # SIGINT or SIGTERM: keep what finished, then say what was kept
                stopped = e
            if batch:
                self._commit(batch, report, wanted)
                committed += len(batch)
            if stopped is not None:
                report.elapsed = time.perf_counter() - started
                raise Interrupted(committed, stopped.not_indexed, report) from None
            if analyse:
                self._project_text_audio(report)
            if len(self.catalog.segments()) > MAX_SEGMENTS:
                self._merge_small()
        report.elapsed = time.perf_counter() - started
        return report

    def use_model(self, folder: str | Path, role: str) -> str:
        """Run the trained model in ``folder`` (made by ``tuneseek train``) on every track from now on,
        as a ``role`` "tagger" (its tags are stored beside musicnn's), "embedder" (a new embedding
        space for :meth:`similar`) or "text-audio" (a joint text–audio model, made by ``tuneseek
        train text-audio``: :meth:`search` uses it from then on, and its audio vectors form the
        space "text-audio"); the next :meth:`add` gives it to the tracks already indexed.

        Returns the extractor name ("tags:NAME" or "embedding:NAME", NAME from the run folder's
        name). The same name given again with another folder replaces the old model.
        """
        if role == "text-audio":
            run = self._text_audio_run(str(folder))
            with self.catalog.transaction():
                self.catalog.set_models({**self.catalog.models(),
                                         TEXT_AUDIO_EXTRACTOR: {"folder": str(run.folder), "role": role}})
            return TEXT_AUDIO_EXTRACTOR
        extractor = next(iter(analysis.trained_extractors(folder, role)))
        model = analysis.trained_model(str(folder))
        with self.catalog.transaction():
            if role == "tagger":
                self.catalog.set_vocabulary(model.name, list(model.labels))
            self.catalog.set_models({**self.catalog.models(), extractor: {"folder": str(model.folder), "role": role}})
        return extractor

    def models(self) -> dict[str, dict[str, str]]:
        """The trained models this library runs: ``{extractor: {"folder", "role"}}``."""
        return self.catalog.models()

    def _analysis_extractors(self, wheel: str | None, report: AddReport) -> tuple[dict[str, str], dict[str, str]]:
        """``({extractor: version}, {trained extractor: run folder})`` of the tags and embeddings to store.

        The pretrained musicnn is left out (and ``report.analysis_skipped`` says why) when its
        models are missing; a trained model is left out (and ``report.models_skipped`` says why)
        when its run cannot be loaded.
        """
        wanted: dict[str, str] = {}
        try:
            wanted.update(analysis.extractor_versions(wheel))
            labels = analysis.vocabularies(wheel)
            with self.catalog.transaction():
                for name, names in labels.items():
                    self.catalog.set_vocabulary(name, names)
        except TuneseekError as e:
            report.analysis_skipped = str(e)
        trained = {}
        for extractor, model in self.catalog.models().items():
            if model["role"] == "text-audio":
                continue  # projected from the stored musicnn segments after the files are in (_project_text_audio)
            try:
                wanted.update(analysis.trained_extractors(model["folder"], model["role"]))
                trained[extractor] = model["folder"]
            except TuneseekError as e:
                report.models_skipped.append((extractor, str(e)))
        return wanted, trained

    def _project_text_audio(self, report: AddReport) -> None:
        """Give every track with musicnn segments its vectors in the joint text–audio space, when the
        library has a text–audio model: computed from the stored segments, no audio decoded."""
        model = self.catalog.models().get(TEXT_AUDIO_EXTRACTOR)
        if model is None:
            return
        try:
            run = self._text_audio_run(model["folder"])
        except TuneseekError as e:
            report.models_skipped.append((TEXT_AUDIO_EXTRACTOR, str(e)))
            return
        done = self.catalog.extractors()
        todo = []
        for tid, have in done.items():
            source = have.get(analysis.EMBEDDING_EXTRACTOR)
            if source is not None and have.get(TEXT_AUDIO_EXTRACTOR) != f"{run.version}/{source}":
                todo.append((tid, f"{run.version}/{source}"))
        for start in range(0, len(todo), 256):
            chunk = todo[start : start + 256]
            stored = [next(self.catalog.embeddings(analysis.SPACE, tid)) for tid, _ in chunk]
            tracks = run.audio_vectors([e.segments for e in stored])
            with self.catalog.transaction():
                for (tid, version), e, vector in zip(chunk, stored, tracks):
                    segments = run.audio_vectors([seg[None] for seg in e.segments])
                    self.catalog.set_embedding(tid, TEXT_AUDIO_SPACE, e.window, e.hop, vector, segments)
                    self.catalog.set_extractor(tid, TEXT_AUDIO_EXTRACTOR, version)
        self._spaces.clear()

    def _jobs(self, files: list[str], wanted: dict[str, str], trained: dict[str, str], report: AddReport) -> list[Job]:
        """What each file needs: unchanged files only the extractors they lack; the rest everything."""
        done = self.catalog.extractors()
        jobs = []

        def job(path: str, fingerprint: bool, describe: tuple[str, ...]) -> Job:
            return Job(path, fingerprint, describe, tuple((ex, trained[ex]) for ex in describe if ex in trained))

        for path in dict.fromkeys(files):
            known = self.catalog.track_by_path(path)
            moved = known is None and (known := self._moved_here(path)) is not None
            if moved:
                report.moved.append(known)
            if known is not None and self._unchanged(path, known):
                have = done.get(known.id, {})
                missing = tuple(name for name, version in wanted.items() if have.get(name) != version)
                if missing:
                    jobs.append(job(path, False, missing))
                elif not moved:
                    report.unchanged.append(path)
                continue
            jobs.append(job(path, True, tuple(wanted)))
        return jobs

    def _moved_here(self, path: str) -> Track | None:
        """The track whose file was moved or renamed to ``path``, now given that path; else ``None``.

        Recognised by its content hash, before any decoding: a known track of the same size
        whose own file is gone. Only files of such a size are hashed here.
        """
        try:
            size = os.stat(path).st_size
            gone = [t for t in self.catalog.tracks_by_size(size) if not os.path.exists(t.path)]
            if not gone:
                return None
            digest = content_hash(path)
            mtime_ns = os.stat(path).st_mtime_ns
        except OSError:
            return None  # the worker reports the file's own error
        for track in gone:
            if track.content_hash == digest:
                with self.catalog.transaction():
                    self.catalog.update_path(track.id, path, mtime_ns)
                self._fresh = False
                return TrackInfo.of(self.catalog.track(track.id))
        return None

    def _unchanged(self, path: str, known: Track) -> bool:
        """Whether the file at ``path`` still holds what ``known`` was indexed from (same size and time, or content)."""
        try:
            st = os.stat(path)
            if st.st_size != known.size:
                return False
            if st.st_mtime_ns == known.mtime_ns:
                return True
            if content_hash(path) != known.content_hash:
                return False
            with self.catalog.transaction():
                self.catalog.touch(known.id, st.st_mtime_ns)
            return True
        except OSError:
            return False  # the worker reports the file's own error

    def _commit(self, batch: list[Outcome], report: AddReport, versions: dict[str, str]) -> None:
        """Write one segment for the fingerprints of ``batch``; list it with its tracks and their descriptions in one transaction."""
        base = self.catalog.next_base_frame()
        rows, hashes, frames = [], [], []
        in_batch: dict[str, str] = {}
        for outcome in batch:
            fp = outcome.fingerprint
            old = self.catalog.track_by_path(outcome.path)
            if fp is None:  # an unchanged track, given the extractors it lacked
                if old is not None and outcome.description is not None:
                    rows.append(("describe", outcome, old, None))
                continue
            same = [t for t in self.catalog.tracks_by_hash(fp.content_hash) if t.path != fp.path]
            if old is None and same:
                twin = same[0]
                if not os.path.exists(twin.path):
                    rows.append(("move", outcome, twin, None))
                else:
                    report.duplicates.append((fp.path, twin.path))
                continue
            if fp.content_hash in in_batch:
                report.duplicates.append((fp.path, in_batch[fp.content_hash]))
                continue
            in_batch[fp.content_hash] = fp.path
            rows.append(("add", outcome, old, base))
            hashes.append(fp.hashes)
            frames.append(fp.frames.astype(np.int64) + base)
            base += fp.n_frames + TRACK_GAP_FRAMES
        name = None
        if hashes:
            h, g = np.concatenate(hashes), np.concatenate(frames)
            if g.size and g.max() >= 2**32:
                raise LibraryError(self.root, "frame address space is full; run `tuneseek compact`")
            name = write_segment(self.root, h, g)
        with self.catalog.transaction():
            if name is not None:
                self.catalog.add_segment(name, int(sum(len(x) for x in hashes)))
            for kind, outcome, old, track_base in rows:
                if kind == "add":
                    if old is not None:
                        self.catalog.delete_track(old.id)
                    track_id = self.catalog.insert_track(_track_fields(outcome.fingerprint, track_base))
                    self.catalog.set_extractor(track_id, "landmarks", FINGERPRINT_VERSION)
                else:
                    track_id = old.id
                    if kind == "move":
                        self.catalog.update_path(old.id, outcome.path, outcome.fingerprint.mtime_ns)
                self._store_description(track_id, outcome, versions)
        self._fresh = False
        self._spaces.clear()
        for kind, outcome, old, _ in rows:
            track = TrackInfo.of(self.catalog.track_by_path(outcome.path))
            {"move": report.moved, "describe": report.analysed}.get(
                kind, report.reindexed if old else report.added
            ).append(track)

    def _store_description(self, track_id: int, outcome: Outcome, versions: dict[str, str]) -> None:
        """Store the tags ("tags:VOCABULARY") and embeddings ("embedding:SPACE") an outcome holds,
        with the versions of their extractors."""
        d = outcome.description
        if d is None:
            return
        for extractor in d.extractors:
            kind, _, name = extractor.partition(":")
            if kind == "tags":
                self.catalog.set_tags(track_id, name, d.tags[name])
            else:
                seg = d.embeddings[name]
                self.catalog.set_embedding(track_id, name, seg.window, seg.hop, seg.track_vector, seg.vectors)
            self.catalog.set_extractor(track_id, extractor, versions[extractor])

    def remove(self, ref: int | str) -> TrackInfo:
        """Take a track out of the library and of every index; returns what was removed."""
        with WriterLock(self.root):
            track = self.track(ref)
            with self.catalog.transaction():
                self.catalog.delete_track(track.id)  # its tags, embeddings and versions go with it
        self._fresh = False  # data_version only moves for other connections' commits
        self._spaces.clear()
        return track

    def compact(self) -> None:
        """Merge all landmark segments into one, dropping postings of removed tracks."""
        with WriterLock(self.root):
            remove_unlisted(self.root, set(self.catalog.segments()))
            self._merge(self.catalog.segments())

    def _merge_small(self) -> None:
        """Merge every segment but the largest into one (called when there are too many)."""
        sizes = self.catalog.segment_sizes()
        self._merge(sorted(sizes, key=sizes.get)[:-1])

    def _merge(self, names: list[str]) -> None:
        """Replace segments ``names`` by one holding their live postings."""
        if not names:
            return
        self._fresh = False
        self._refresh()
        live = [self.landmarks.live_postings(name) for name in names]
        h, g = np.concatenate([p[0] for p in live]), np.concatenate([p[1] for p in live])
        new = write_segment(self.root, h, g) if len(h) else None
        with self.catalog.transaction():
            for name in names:
                self.catalog.drop_segment(name)
            if new:
                self.catalog.add_segment(new, len(h))
        self.landmarks.clear()
        self._fresh = False
        remove_unlisted(self.root, set(self.catalog.segments()))


#: What a library directory holds before its manifest, the last file created, exists.
_OWN_NAMES = {manifest.MANIFEST_NAME, LOCK_NAME, SEGMENTS_DIR} | {
    CATALOG_NAME + suffix for suffix in ("", "-wal", "-shm", "-journal")
}


def _create(root: Path) -> None:
    """Make an empty library at ``root``; safe against another process doing the same at once."""
    strangers = [p.name for p in root.iterdir() if not p.name.startswith(".") and p.name not in _OWN_NAMES] if root.exists() else []
    if strangers:
        raise LibraryError(root, "directory is not empty and is not a tuneseek library")
    try:
        root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 10.0
        while True:
            try:
                with WriterLock(root):
                    if not (root / manifest.MANIFEST_NAME).exists():
                        Catalog(root, create=True).close()
                        manifest.write_new(root)
                return
            except LibraryBusyError:
                # another process is creating it (or already writing to it): wait for its manifest
                if (root / manifest.MANIFEST_NAME).exists():
                    return
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    except PermissionError as e:
        raise LibraryError(root, f"cannot create: {e.strerror}") from e


def _match(c: Candidate, track: TrackInfo) -> Match:
    return Match(track, c.offset, c.score, c.confidence, c.speed, c.tempo, c.clip_start, c.clip_end, c.coverage)


def _track_fields(fp: FileFingerprint, base: int) -> dict:
    return {**fp.facts(), "base_frame": base, "n_frames": fp.n_frames, "n_landmarks": len(fp.hashes)}


def _musicnn_vectors(x: np.ndarray, whole: bool) -> np.ndarray:
    """A query's musicnn segment vectors: side by side for a whole file, overlapping by half for a clip."""
    hop = analysis.SEGMENT_HOP if whole else analysis.SEGMENT_WINDOW / 2
    return analysis.clip_vectors(x, hop=hop)[1]


def _resampled(samples: np.ndarray, sr: int | None, target: int, quality: str) -> np.ndarray:
    """Samples given to the API (mono, or channels on either axis) as mono float32 at ``target`` Hz."""
    if sr is None:
        raise UsageError("audio given as samples needs its sample rate: sr=")
    x = np.asarray(samples, np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1 if x.shape[1] < x.shape[0] else 0)
    if sr != target:
        import soxr

        x = soxr.resample(x, sr, target, quality=quality).astype(np.float32)
    return x
