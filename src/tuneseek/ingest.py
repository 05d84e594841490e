"""Writing to a library: adding files (what each file needs, the workers that compute it, and the
commits), removing a track, and recording the models and tags it is given.

:func:`add` is :meth:`tuneseek.library.Library.add` behind the facade. The writer (this
process, holding the writer lock) decides per file what to compute: everything for a new or
changed file, only the extractors it lacks for an unchanged one, nothing for a file moved
or renamed (recognised by its content hash). Workers compute (:func:`tuneseek.indexing.run_jobs`:
pure jobs, path in, fingerprint and description out) and the writer commits finished files
in batches, each batch one catalogue transaction in which the identifier indexes the new
tracks (:meth:`~tuneseek.identifier.Identifier.add`) and their tags and vectors are stored
(and written to the vector store, when the library keeps them in one outside the process:
:meth:`~tuneseek.similarity.Spaces.sync`, after :meth:`~tuneseek.similarity.Spaces.reconcile`
has repaired what an earlier crash left, and before :meth:`~tuneseek.similarity.Spaces.settle`).
Extractors that read another extractor's stored output (the text–audio projection) run last,
on what the catalogue holds. Every function here expects the caller to hold the writer lock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneseek import audio
from tuneseek.analysis import trained_model, vocabularies
from tuneseek.errors import AudioError, TuneseekError, UsageError
from tuneseek.executors import open_executor
from tuneseek.extractors import AUDIO, Extractor, TextAudioProjection, musicnn_extractors, open_extractor
from tuneseek.fingerprint.extract import content_hash
from tuneseek.fingerprint.index import LandmarkIndex
from tuneseek.identifier import Identifier
from tuneseek.indexing import Interrupted, Job, Outcome, run_jobs
from tuneseek.results import AddReport, TrackInfo
from tuneseek.similarity import Spaces
from tuneseek.store.catalog import Catalog, Track

#: Commit indexed files at least this often, so an interrupted run loses little.
COMMIT_EVERY_SECONDS = 5.0
COMMIT_EVERY_POSTINGS = 4_000_000
#: Above this many segments, ``add`` merges the small ones.
MAX_SEGMENTS = 8
#: Tracks projected into a derived space per transaction.
PROJECT_BATCH = 256

Progress = Callable[[Outcome], None]


@dataclass
class Settings:
    """How one ``add`` runs (see :meth:`tuneseek.library.Library.add`)."""

    workers: int | None = None
    progress: Progress | None = None
    executor: object | None = None
    on_files: Callable[[int], None] | None = None
    commit_every: float = COMMIT_EVERY_SECONDS
    analyse: bool = True
    wheel: str | None = None


def add(
    catalog: Catalog,
    identifier: LandmarkIndex,
    paths: Iterable[str | Path],
    s: Settings,
    *,
    vectors: Spaces | None = None,
    learned: Identifier | None = None,
) -> AddReport:
    """Index ``paths`` (files and folders, recursively) into the library; the caller holds the writer lock.

    ``identifier`` is the landmark index, not any :class:`~tuneseek.identifier.Identifier`: besides
    indexing the new tracks it sweeps the segments a killed writer left, and merges small segments
    after the run. ``vectors`` (the library's :class:`~tuneseek.similarity.Spaces`) is told of every
    track whose vectors change. ``learned`` is the library's learned fingerprint, when it has one: it
    stores the segment vectors the workers compute, even when ``s.analyse`` is off (it identifies,
    as the landmarks do).
    """
    started = time.perf_counter()
    report = AddReport()
    files: list[str] = []
    for p in paths:
        try:
            files.extend(os.path.abspath(f) for f in audio.find_audio_files(os.path.expanduser(p)))
        except AudioError as e:
            report.failed.append((e.path, e.reason))
    identifier.sweep()
    if vectors is not None:
        vectors.reconcile()
    audio_extractors, derived = _extractors(catalog, s.wheel, report, analyse=s.analyse) if files else ([], [])
    writer = _Writer(catalog, identifier, report, {e.name: e.version for e in audio_extractors}, vectors, learned)
    jobs = _jobs(writer, files, audio_extractors)
    if s.on_files:
        s.on_files(len(jobs))
    batch: list[Outcome] = []
    postings, last_commit, committed, stopped = 0, time.monotonic(), 0, None
    executor = open_executor(s.executor, workers=s.workers) if jobs else None
    try:
        for outcome in run_jobs(jobs, workers=s.workers, executor=executor):
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
            if s.progress:
                s.progress(outcome)
            if batch and (postings >= COMMIT_EVERY_POSTINGS or time.monotonic() - last_commit >= s.commit_every):
                writer.commit(batch)
                committed += len(batch)
                batch, postings, last_commit = [], 0, time.monotonic()
    except Interrupted as e:  # SIGINT or SIGTERM: keep what finished, then say what was kept
        stopped = e
    finally:
        if executor is not None and executor is not s.executor:  # made here from its name: ended here
            executor.shutdown(wait=False, cancel_futures=True)
    if batch:
        writer.commit(batch)
        committed += len(batch)
    if stopped is not None:
        report.elapsed = time.perf_counter() - started
        raise Interrupted(committed, stopped.not_indexed, report) from None
    for extractor in derived:
        _project(catalog, extractor, vectors)
    identifier.merge_small(MAX_SEGMENTS)
    if vectors is not None:
        vectors.settle()
    report.elapsed = time.perf_counter() - started
    return report


def remove(catalog: Catalog, identifier: Identifier, track_id: int, vectors: Spaces) -> None:
    """Take a track out of the catalogue, the identifier and the library's vector stores in one
    transaction; a store outside the process repaired before and re-centred after, as for :func:`add`."""
    vectors.reconcile()
    with catalog.transaction():
        catalog.delete_track(track_id)  # its tags, embeddings and versions go with it
        identifier.remove([track_id])
        vectors.sync([track_id])
    vectors.settle()


def set_tags(catalog: Catalog, track_id: int, vocabulary: str, probs: np.ndarray, labels: list[str] | None) -> None:
    """Store tags a track got elsewhere: one probability per label of ``vocabulary``, whose ``labels`` (in
    order) must be given the first time; a :class:`~tuneseek.errors.UsageError` when they do not fit."""
    with catalog.transaction():
        if labels is not None:
            catalog.set_vocabulary(vocabulary, list(labels))
        known = catalog.vocabularies().get(vocabulary)
        if known is None:
            raise UsageError(f"vocabulary {vocabulary!r} is new to this library: give its labels")
        if probs.shape != (len(known),):
            raise UsageError(f"{vocabulary} has {len(known)} labels, got {probs.shape} probabilities")
        catalog.set_tags(track_id, vocabulary, probs)


def use_model(catalog: Catalog, extractor: Extractor, role: str) -> None:
    """Record that the library runs ``extractor`` (a trained run, opened as a ``role``) on every track from
    now on, with a tagger's vocabulary; the next :func:`add` gives it to the tracks already indexed. The
    caller holds the writer lock."""
    with catalog.transaction():
        if role == "tagger":
            catalog.set_vocabulary(extractor.name.partition(":")[2], list(trained_model(extractor.folder).labels))
        models = catalog.models()
        if role == "fingerprint":  # one learned fingerprint at a time: a new one replaces the old
            models = {name: m for name, m in models.items() if m["role"] != "fingerprint"}
        catalog.set_models({**models, extractor.name: {"folder": str(extractor.folder), "role": role}})


def _extractors(
    catalog: Catalog, wheel: str | None, report: AddReport, *, analyse: bool = True
) -> tuple[list[Extractor], list[Extractor]]:
    """The extractors this library runs: those reading audio, and those reading another's stored output;
    without ``analyse``, only its learned fingerprint (which identifies rather than describes).

    The pretrained musicnn is left out (and ``report.analysis_skipped`` says why) when its
    models are missing; a trained model is left out (and ``report.models_skipped`` says why)
    when its run cannot be loaded.
    """
    extractors: list[Extractor] = []
    if analyse:
        try:
            extractors.extend(musicnn_extractors(wheel))
            with catalog.transaction():
                for name, labels in vocabularies(wheel).items():
                    catalog.set_vocabulary(name, labels)
        except TuneseekError as e:
            report.analysis_skipped = str(e)
    for name, model in catalog.models().items():
        if not analyse and model["role"] != "fingerprint":
            continue
        try:
            extractors.append(open_extractor(folder=model["folder"], role=model["role"]))
        except TuneseekError as e:
            report.models_skipped.append((name, str(e)))
    return [e for e in extractors if e.source == AUDIO], [e for e in extractors if e.source != AUDIO]


def _jobs(writer: _Writer, files: list[str], extractors: list[Extractor]) -> list[Job]:
    """What each file needs: unchanged files only the extractors they lack; the rest everything."""
    catalog, report = writer.catalog, writer.report
    done = catalog.extractors()
    trained = {e.name: e.folder for e in extractors if e.folder is not None}
    jobs = []

    def job(path: str, fingerprint: bool, describe: tuple[str, ...]) -> Job:
        return Job(path, fingerprint, describe, tuple((ex, trained[ex]) for ex in describe if ex in trained))

    for path in dict.fromkeys(files):
        known = catalog.track_by_path(path)
        moved = known is None and (known := writer.moved_here(path)) is not None
        if moved:
            report.moved.append(TrackInfo.of(known))
        if known is not None and writer.unchanged(path, known):
            have = done.get(known.id, {})
            missing = tuple(e.name for e in extractors if have.get(e.name) != e.version)
            if missing:
                jobs.append(job(path, False, missing))
            elif not moved:
                report.unchanged.append(path)
            continue
        jobs.append(job(path, True, tuple(e.name for e in extractors)))
    return jobs


def _project(catalog: Catalog, extractor: TextAudioProjection, vectors: Spaces | None = None) -> None:
    """Give every track with the extractor's source vectors its vectors in the extractor's space,
    from the stored source vectors (no audio decoded): tracks whose projection is missing or stale."""
    space = extractor.name.partition(":")[2]
    source_space = extractor.source.partition(":")[2]
    todo = []
    for tid, have in catalog.extractors().items():
        source = have.get(extractor.source)
        if source is not None and have.get(extractor.name) != extractor.version_from(source):
            todo.append((tid, extractor.version_from(source)))
    for start in range(0, len(todo), PROJECT_BATCH):
        chunk = todo[start : start + PROJECT_BATCH]
        stored = [next(catalog.embeddings(source_space, track_id=tid)) for tid, _ in chunk]
        projected = extractor.describe([e.segments for e in stored])
        with catalog.transaction():
            for (tid, version), e, (vector, segments) in zip(chunk, stored, projected):
                catalog.set_embedding(tid, space, e.window, e.hop, vector, segments)
                catalog.set_extractor(tid, extractor.name, version)
            if vectors is not None:
                vectors.sync(tid for tid, _ in chunk)


class _Writer:
    """The writer's side of one ``add``: recognising known files, and committing batches of outcomes."""

    def __init__(
        self,
        catalog: Catalog,
        identifier: Identifier,
        report: AddReport,
        versions: dict[str, str],
        vectors: Spaces | None = None,
        learned: Identifier | None = None,
    ):
        self.catalog = catalog
        self.identifier = identifier
        self.report = report
        self.versions = versions  # {extractor: version} of what the workers compute
        self.vectors = vectors
        self.learned = learned  # the learned fingerprint, which stores its own segment vectors

    def moved_here(self, path: str) -> Track | None:
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
                return self.catalog.track(track.id)
        return None

    def unchanged(self, path: str, known: Track) -> bool:
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

    def commit(self, batch: list[Outcome]) -> None:
        """One transaction: the batch's new tracks, indexed by the identifier, with their descriptions."""
        catalog, report = self.catalog, self.report
        rows = []
        in_batch: dict[str, str] = {}
        for outcome in batch:
            fp = outcome.fingerprint
            old = catalog.track_by_path(outcome.path)
            if fp is None:  # an unchanged track, given the extractors it lacked
                if old is not None and outcome.description is not None:
                    rows.append(("describe", outcome, old))
                continue
            same = [t for t in catalog.tracks_by_hash(fp.content_hash) if t.path != fp.path]
            if old is None and same:
                twin = same[0]
                if not os.path.exists(twin.path):
                    rows.append(("move", outcome, twin))
                else:
                    report.duplicates.append((fp.path, twin.path))
                continue
            if fp.content_hash in in_batch:
                report.duplicates.append((fp.path, in_batch[fp.content_hash]))
                continue
            in_batch[fp.content_hash] = fp.path
            rows.append(("add", outcome, old))
        with catalog.transaction():
            indexed, changed = [], []
            for kind, outcome, old in rows:
                if kind == "add":
                    if old is not None:
                        catalog.delete_track(old.id)
                        self.identifier.remove([old.id])
                        changed.append(old.id)
                    track_id = catalog.insert_track(outcome.fingerprint.facts())
                    catalog.set_extractor(track_id, self.identifier.name, self.identifier.version)
                    indexed.append((track_id, outcome.fingerprint))
                else:
                    track_id = old.id
                    if kind == "move":
                        catalog.update_path(old.id, outcome.path, outcome.fingerprint.mtime_ns)
                self._store_description(track_id, outcome)
                changed.append(track_id)
            self.identifier.add(indexed)
            if self.vectors is not None:
                self.vectors.sync(changed)
        for kind, outcome, old in rows:
            track = TrackInfo.of(catalog.track_by_path(outcome.path))
            {"move": report.moved, "describe": report.analysed}.get(
                kind, report.reindexed if old else report.added
            ).append(track)

    def _store_description(self, track_id: int, outcome: Outcome) -> None:
        """Store the tags ("tags:VOCABULARY"), embeddings ("embedding:SPACE") and learned fingerprint
        ("fingerprint:RUN", through the learned identifier) an outcome holds, with the versions of their extractors."""
        d = outcome.description
        if d is None:
            return
        for extractor in d.extractors:
            kind, _, name = extractor.partition(":")
            if kind == "fingerprint":
                # stored, with its version, by the learned identifier; a run that could not be loaded for
                # storing is left without, and the next add computes it again
                if self.learned is not None and self.learned.name == extractor:
                    self.learned.add([(track_id, d.fingerprints[extractor])])
                continue
            if kind == "tags":
                self.catalog.set_tags(track_id, name, d.tags[name])
            else:
                seg = d.embeddings[name]
                self.catalog.set_embedding(track_id, name, seg.window, seg.hop, seg.track_vector, seg.vectors)
            self.catalog.set_extractor(track_id, extractor, self.versions[extractor])
