"""Finding music by describing it: :meth:`tuneseek.library.Library.search` behind the facade.

Two modes, one answer type:

* **zero-shot** (before any training): the query is matched to the musicnn tags every track
  has (:mod:`tuneseek.text.zeroshot`); a score is in standard deviations of the tags, and the
  result says which tags the query drove;
* **trained**: the library has a text–audio model (``tuneseek index --text-model RUN``); the
  query's 128-d vector is compared by dot product with each track's vector in the joint space
  (:data:`~tuneseek.extractors.TEXT_AUDIO_SPACE`), as in TTMR; a score is a cosine.

Both answer with a :class:`~tuneseek.results.SearchResult`. Which mode a query gets is decided
here, from the models the catalogue records, and so is what a description's vector is
(:meth:`TextSearch.embed`): the facade only delegates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tuneseek.errors import LibraryError, TuneseekError
from tuneseek.extractors import TEXT_AUDIO_EXTRACTOR, TEXT_AUDIO_SPACE, TextAudioProjection, open_extractor
from tuneseek.results import SearchResult, Similar, TrackInfo
from tuneseek.similarity import Spaces
from tuneseek.store.catalog import Catalog

__all__ = ["TextSearch", "TAG_VOCABULARIES", "tag_table"]

#: The stored vocabularies zero-shot search reads.
TAG_VOCABULARIES = ("mtt", "msd")


def tag_table(catalog: Catalog):
    """A :class:`~tuneseek.text.zeroshot.TagTable` of every tagged track (rows of NaN where a track
    lacks a vocabulary), or ``None`` when no track has tags."""
    from tuneseek.text.zeroshot import TagTable

    labels = catalog.vocabularies()
    stored = {v: catalog.all_tags(v) for v in TAG_VOCABULARIES if v in labels}
    ids = np.unique(np.concatenate([ids for ids, _ in stored.values()])) if stored else np.zeros(0, np.int64)
    if len(ids) == 0:
        return None
    probs = {}
    for vocab, (vocab_ids, p) in stored.items():
        full = np.full((len(ids), len(labels[vocab])), np.nan, np.float32)
        if len(vocab_ids):
            full[np.searchsorted(ids, vocab_ids)] = p
        probs[vocab] = full
    return TagTable({v: labels[v] for v in stored}, ids, probs)


class TextSearch:
    """Text queries over one library: the zero-shot tag table (rebuilt when the catalogue changes) and
    the sentence encoder (loaded by the first query), shared by the threads that search.

    The text modules are imported by the first query, not with the library: ``tuneseek identify``
    starts without them."""

    def __init__(self, catalog: Catalog, root: Path, spaces: Spaces, track: Callable[[int], TrackInfo]):
        self.catalog = catalog
        self.root = root
        self.spaces = spaces
        self.track = track
        self._table = None  # (generation, TagTable or None)
        self._encoder = None
        self._lock = threading.Lock()

    def search(self, query: str, k: int) -> SearchResult:
        """The ``k`` tracks that best fit ``query``: in the joint space of the library's text–audio model
        when it has one, else zero-shot."""
        trained = self.text_audio()
        if trained is not None:
            return self._search_trained(query, k, trained)
        from tuneseek.text.zeroshot import zero_shot

        table = self._tag_table()
        if table is None:
            raise LibraryError(
                self.root,
                "no track has tags yet: run `tuneseek index` on your music with the models "
                "available (pip install 'tuneseek[models]')",
            )
        encoder = self.encoder()
        ranking = zero_shot(query, encoder, table, k=k)
        hits = [Similar(self.track(tid), score) for tid, score in ranking.tracks]
        return SearchResult(
            ranking.query,
            "zero-shot",
            f"zero-shot from musicnn tags ({encoder.name})",
            hits,
            ranking.explain(),
            ranking.notices,
        )

    def _search_trained(self, query: str, k: int, trained: TextAudioProjection) -> SearchResult:
        """Rank the tracks' joint-space vectors by dot product with the query's."""
        q = trained.text_query(query)
        index = self.spaces.get(TEXT_AUDIO_SPACE)
        if len(index) == 0:
            raise LibraryError(
                self.root,
                f"no track has {TEXT_AUDIO_SPACE} vectors yet: run `tuneseek index` on your "
                "music with the models available",
            )
        hits = [Similar(self.track(tid), score) for tid, score, _ in index.by_track(q.vector, k, set())]
        return SearchResult(
            q.text, "trained", f"text–audio model {trained.model_name} ({trained.folder})", hits, "", q.notices
        )

    def embed(self, text: str) -> tuple[np.ndarray, str]:
        """``(vector, space)`` of a description: the library's text–audio model's vector (space
        :data:`~tuneseek.extractors.TEXT_AUDIO_SPACE`) when it has one, else the sentence encoder's own
        vector (its name)."""
        trained = self.text_audio()
        if trained is not None:
            return trained.text_query(text).vector, TEXT_AUDIO_SPACE
        encoder = self.encoder()
        return encoder.encode_query(text).vector, encoder.name

    def text_audio(self) -> TextAudioProjection | None:
        """The library's text–audio extractor, or ``None`` when it has no text–audio model."""
        model = self.catalog.models().get(TEXT_AUDIO_EXTRACTOR)
        return None if model is None else open_extractor(folder=model["folder"], role="text-audio")

    def warm(self) -> None:
        """When tracks have tags, load the sentence encoder and build the tag table now rather than at the
        first query; a text model that cannot load is left to say so at query."""
        if not self.catalog.count_tagged():
            return
        try:
            self.encoder()
            self._tag_table()
        except TuneseekError:
            pass  # no text model here: search says so when asked

    def _tag_table(self):
        generation = self.catalog.generation()
        with self._lock:
            if self._table is None or self._table[0] != generation:
                self._table = (generation, tag_table(self.catalog))
            return self._table[1]

    def encoder(self):
        """The sentence encoder (all-MiniLM-L6-v2, offline), loaded once."""
        with self._lock:
            if self._encoder is None:
                from tuneseek.text.encoder import TextEncoder

                self._encoder = TextEncoder()
            return self._encoder
