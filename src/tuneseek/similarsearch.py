"""Finding tracks that sound alike: :meth:`tuneseek.library.Library.similar` and
:meth:`~tuneseek.library.Library.embedding_map` behind the facade.

A query is a library track or audio. A track is looked up, not analysed: its stored mean vector
is compared with every other track's. Audio (a file or samples) is run through the extractor
that fills the space asked for (musicnn, a trained embedder, the text–audio projection's audio
side), which is loaded only then; a long file is compared as a whole track, a short clip with
every stored segment. Files holding the very same bytes as the query are left out of its
answer: they are not like it, they are it. The stores searched are those of
:class:`~tuneseek.similarity.Spaces`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tuneseek import analysis, audio
from tuneseek.errors import LibraryError, TuneseekError, UsageError
from tuneseek.extractors import Extractor, open_extractor
from tuneseek.fingerprint.extract import content_hash
from tuneseek.results import MapPoint, Similar, TrackInfo
from tuneseek.similarity import SpaceIndex, Spaces, plane
from tuneseek.store.catalog import Catalog

__all__ = ["SimilarSearch", "WHOLE_TRACK_SECONDS"]

#: ``similar`` compares a file at least this long as a whole track; a shorter one as a clip.
WHOLE_TRACK_SECONDS = 30.0


class SimilarSearch:
    """Similarity queries over one library's embedding spaces, shared by the threads that ask.

    ``track`` resolves what a person names (an id or a path) and raises
    :class:`~tuneseek.errors.TrackNotFound`; ``info`` gives the record of a track the catalogue
    has just answered with."""

    def __init__(
        self,
        catalog: Catalog,
        root: Path,
        spaces: Spaces,
        track: Callable[[int | str], TrackInfo],
        info: Callable[[int], TrackInfo],
    ):
        self.catalog = catalog
        self.root = root
        self.spaces = spaces
        self.track = track
        self.info = info

    def similar(self, query, k: int, sr: int | None, space: str) -> list[Similar]:
        """The ``k`` tracks closest to ``query`` in ``space`` (see :meth:`tuneseek.library.Library.similar`)."""
        models = self.catalog.models()
        index = self._space(space, models)
        track = self._as_track(query)
        if track is not None:
            stored = next(self.catalog.embeddings(space, track_id=track.id, segments=False), None)
            if stored is None:
                raise LibraryError(
                    self.root, f"track {track.id} has no {space} embeddings yet: run `tuneseek index {track.path}`"
                )
            found = index.by_track(stored.track_vector, k, exclude={track.id})
        else:
            extractor = space_extractor(space, models)  # a track query needs no model: loaded only here
            x = _samples(query, sr, extractor.sample_rate)
            exclude = self._copies_of(query)
            if len(x) >= WHOLE_TRACK_SECONDS * extractor.sample_rate:
                found = index.by_track(extractor.query_vectors(x, whole=True).mean(axis=0), k, exclude)
            else:
                found = index.by_segment(extractor.query_vectors(x, whole=False).mean(axis=0), k, exclude)
        return [Similar(self.info(tid), score, time) for tid, score, time in found]

    def embedding_map(self, space: str) -> list[MapPoint]:
        """Every track embedded in ``space`` on the plane of its vectors' first two principal axes."""
        self._space(space, self.catalog.models())
        with self.catalog.snapshot():
            stored = [(e.track_id, e.track_vector) for e in self.catalog.embeddings(space, segments=False)]
            tracks = {t.id: TrackInfo.of(t) for t in self.catalog.tracks()}
        xy = plane(np.stack([v for _, v in stored]).astype(np.float64))
        return [MapPoint(tracks[tid], float(x), float(y)) for (tid, _), (x, y) in zip(stored, xy) if tid in tracks]

    def warm(self, *, clip_models: bool = True) -> None:
        """Build the stores of every embedding space now and (``clip_models``) load the model that embeds
        a clip in each, run once on a moment of quiet noise (the first inference pays for more than the
        weights); a model that cannot load is left to say so at query."""
        models = self.catalog.models()
        for space in self.catalog.spaces():
            _ = self.spaces.get(space).segments
            if not clip_models:
                continue
            try:
                extractor = space_extractor(space, models)
                noise = np.random.default_rng(0).normal(0, 1e-3, 4 * extractor.sample_rate).astype(np.float32)
                extractor.query_vectors(noise, whole=False)
            except TuneseekError:
                pass  # no model for this space here: similar-to-a-clip says so when asked

    def _space(self, space: str, models: dict[str, dict[str, str]]) -> SpaceIndex:
        """The searchable stores of embedding ``space``; an error naming what to do when it has no track."""
        if space != analysis.SPACE and f"embedding:{space}" not in models:
            known = ", ".join(sorted({analysis.SPACE, *self.catalog.spaces()}))
            raise UsageError(f"no embedding space {space!r} in this library (it has: {known})")
        index = self.spaces.get(space)
        if len(index) == 0:
            raise LibraryError(
                self.root,
                f"no track has {space} embeddings yet: run `tuneseek index` on your music "
                "with the models available (pip install 'tuneseek[models]')",
            )
        return index

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


def space_extractor(space: str, models: dict[str, dict[str, str]]) -> Extractor:
    """The extractor that fills embedding ``space`` (one the library has, as ``models`` records them)."""
    if space == analysis.SPACE:
        return open_extractor(analysis.EMBEDDING_EXTRACTOR)
    model = models[f"embedding:{space}"]
    return open_extractor(folder=model["folder"], role=model["role"])


def _samples(query, sr: int | None, rate: int) -> np.ndarray:
    """A query file or array as mono at ``rate``, refused when it cannot be described."""
    if not isinstance(query, np.ndarray):
        return analysis.decode(query, sr=rate)
    return analysis.checked("<samples>", audio.from_samples(query, sr, rate), sr=rate)
