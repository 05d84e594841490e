"""Finding music by describing it: what :meth:`tuneseek.library.Library.search` returns, and the
tag table that zero-shot search scores.

Two modes, one answer type:

* **zero-shot** (before any training): the query is matched to the musicnn tags every track
  has (:mod:`tuneseek.text.zeroshot`); a score is in standard deviations of the tags, and the
  result says which tags the query drove;
* **trained**: the library has a text–audio model (``tuneseek index --text-model RUN``); the
  query's 128-d vector is compared by dot product with each track's vector in the joint space
  (:data:`TEXT_AUDIO_SPACE`), as in TTMR; a score is a cosine.
"""

from __future__ import annotations

import numpy as np

from tuneseek.store.catalog import Catalog

__all__ = ["TEXT_AUDIO_SPACE", "TEXT_AUDIO_EXTRACTOR", "TAG_VOCABULARIES", "tag_table"]

#: The embedding space of the library's trained text–audio model (128-d, compared by dot product).
TEXT_AUDIO_SPACE = "text-audio"
TEXT_AUDIO_EXTRACTOR = f"embedding:{TEXT_AUDIO_SPACE}"
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
