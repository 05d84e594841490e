"""Identification by a learned fingerprint: segment vectors in a vector store, voted into aligned sequences.

After Chang et al., "Neural audio fingerprint for high-specific audio retrieval based on
contrastive learning", ICASSP 2021. A track is cut into 1 s segments every 0.5 s
(:data:`~tuneseek.models.fingerprint_net.SEGMENT_SECONDS`, ``HOP_SECONDS``) and each becomes a
unit vector (:class:`~tuneseek.models.fingerprint_net.FingerprintNet`); an indexing worker
computes them (:func:`track_vectors`, streamed, in bounded memory) and :meth:`LearnedIndex.add`
stores them in the catalogue inside the transaction that inserts the track. The searchable index
is a :class:`~tuneseek.store.vectors.VectorStore` (by default an exact :class:`~tuneseek.store.vectors.FaissStore`,
compressed in a large library, see "Storage" below; with a zero centre: vectors are compared as they
are, by inner product) built from the catalogue when a query first needs it and rebuilt whenever the
catalogue's generation moves.

A query (:meth:`LearnedIndex.candidates`):

1. cuts the clip into 1 s segments every ``hop / phases`` s (0.25 s by default: a clip starts
   anywhere, the track's segments every 0.5 s, and one of the clip's two phases is then within
   1/8 s of the track's grid), dropping inaudible ones. Measured with a small trained model on
   synthetic music (60 clips per cell, see :data:`NULL_A`): two phases against one found 52 against
   48 clips of 5 s at 0 dB SNR and 30 against 26 of 3 s, with a median offset error of 0.09-0.11 s
   against 0.13; four phases were no better (50, 32; 0.10-0.14 s) at twice the network's cost;
2. finds each segment's :data:`NEIGHBOURS` nearest stored segments, and votes each hit into
   a (track, offset) hypothesis, offsets within one hop of each other counted together;
3. re-scores the best hypothesis of each of the most-voted tracks by *sequence similarity*,
   at every offset within one hop of it: each clip segment that falls on the track's segment
   grid at that offset is compared with the track's segment there, and the comparisons are
   summed. The best offset gives the match's offset, to within the query step;
4. turns the sequence score into a probability of a true match (:class:`Calibration`), which is
   "no match" below one half.

The sequence score is the mean inner product of Chang et al., with each inner product first
ranked among the query segment's inner products with a fixed *cohort* of library segments
(:data:`COHORT` of them, drawn once per index) and mapped to a standard normal quantile. A raw
mean's chance level depends on the model (an untrained network puts unrelated segments at a
cosine of 0.9, a trained one near 0); the ranked one is standard normal for any model when a
segment is compared with one drawn as the cohort's are, so ``T = sum of quantiles / sqrt(n)`` over
``n`` aligned segments has a model-free floor for its null (:func:`simulate_null`, random unit
vectors). The null that matters lies above it: the best wrong hypothesis was *chosen* for holding
segments that ranked at the top, and unrelated music that shares instruments and patterns with the
library ranks high for a run of segments; the shipped threshold comes from such music
(:data:`NULL_A`), and a trained model's own is fitted by :func:`calibrate`.

Storage: 7200 segments per audio hour; in the catalogue, float16 vectors of 128 dimensions take 256 bytes
a segment (261 with SQLite's own, measured: 1.88 MB per audio hour). In memory, a view keeps the float16
rows for re-scoring (1.84 MB per hour) and a store of the audible segments, by :func:`segment_store`: up
to :data:`COMPRESSED_ABOVE` segments (about 14 hours) an exact
:class:`~tuneseek.store.vectors.FaissStore`, which holds them in float32 twice (its copy and its
``IndexFlatIP``: 1039 bytes a segment, 7.5 MB per hour); above, a
:class:`~tuneseek.store.vectors.CompressedFaissStore` of IVF-PQ codes (16 bytes and an id: 35 bytes a
segment, 0.25 MB per hour) whose :data:`SHORTLIST` the rows re-rank, so a view holds 2.1 MB per hour, nine
tenths of it the rows. Measured on the benchmark library padded to 2 M segments, 278 hours
(``benchmarks/ivfpq.py``, one core): the compressed store kept 99.4 % of exact search's neighbours,
identified as many clips (2 more of 780) with one more false positive in 360, and searched a clip's
segments in 13 ms against 655 ms (median, clips of 3-10 s); FaissStore's own choice at that size
(``IndexIVFFlat``) held 1154 bytes a segment and searched in 78 ms. A view's compressed store is trained
when the view is first built (31 s at 2 M, against 13 s to fill an exact one) and carried to the next
(:data:`RETRAIN_GROWTH`): 1.3 s after adding a track. The build converts to float32 only the store's training
sample and :data:`FILL_CHUNK` segments at a time: at 2 M it peaked at 699 bytes a segment over what the
process held before (515 of them the rows, as read from the catalogue and as the view's), against 2132 when
every segment was converted at once and collected until the store trained.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import ndtri

from tuneseek.embed.musicnn_extractor import WindowBatches
from tuneseek.embed.trained import TrainedModel
from tuneseek.errors import AudioError, UsageError
from tuneseek.identifier import Candidate
from tuneseek.models.fingerprint_net import HOP_SECONDS, SEGMENT_SECONDS, audible_segments
from tuneseek.store.catalog import Catalog
from tuneseek.store.vectors import CompressedFaissStore, FaissStore, VectorStore

SAMPLE_RATE = 8000
#: Bits of a stored id that number the segment within its track (145 audio hours at 0.5 s).
SEGMENT_BITS = 20
#: Segments per network call. Measured with the default network (128-d, width 32) on one thread,
#: 4 minutes of audio: 32 a call took 1.0-1.3 s and 56-62 MB at its peak, 64 1.2-1.3 s and 80-110 MB,
#: 512 2.8 s and 400 MB (the first layers' activations of a large batch leave the caches).
BATCH_SEGMENTS = 32
#: Query segments per index hop: the clip is cut every ``hop / QUERY_PHASES`` s (see the module's docstring).
QUERY_PHASES = 2
#: Nearest stored segments fetched per query segment.
NEIGHBOURS = 8
#: Stored segments a compressed store (:class:`~tuneseek.store.vectors.CompressedFaissStore`, whose scores are
#: approximate) is asked for per query segment; the view's rows re-rank them exactly and the best
#: :data:`NEIGHBOURS` are kept. Measured on 2 M segments (``benchmarks/ivfpq.py``): the store's own first 8
#: held 67 % of exact search's 8 nearest; the best 8 of 32 re-ranked 97.3 %, of 64 99.4 %, of 128 99.7 %.
SHORTLIST = 64
#: Above this many audible segments (about 14 audio hours), a view's store is compressed (:func:`segment_store`).
#: Measured with ``benchmarks/ivfpq.py`` (one core; clips of 3-10 s, medians): exact search of a clip's
#: segments grows with the library (35 ms at 100 000 segments, 655 ms at 2 M), while a whole query with the
#: compressed store took 12-39 ms at 100 000: at this size exact search costs as much as all the rest of a
#: query, above it more and more (and its memory, 1039 bytes a segment against 35). The compressed store
#: searched in 2 ms and 13 ms there, and cost no accuracy that the benchmark resolves: of 780 clips, clean and
#: at 0 dB, it found 2 more than exact search at 2 M segments and 3 fewer at 100 000 (no cell of 132 more than
#: 3 apart), forced onto the library itself (17 000 segments) 0 and 2 fewer; and one more false positive in
#: 1440 clips of music not in the library.
COMPRESSED_ABOVE = 100_000
#: A view's compressed store is carried to the next view (copied and brought up to date, not trained again)
#: while the library holds between 1/RETRAIN_GROWTH and RETRAIN_GROWTH times the segments it was trained on;
#: beyond, the next view trains its own, whose number of lists (√n) and codebooks fit the library again.
RETRAIN_GROWTH = 2.0
#: Segments a view's build converts at a time to fill a compressed store (trained first on its sample,
#: :meth:`~tuneseek.store.vectors.CompressedFaissStore.train`) and to find the audible ones: with the sample,
#: all the float32 copies of segments the build holds, whatever the library's size (see "Storage" above).
FILL_CHUNK = 1 << 16
#: Tracks whose best hypothesis is re-scored, at least (twice the candidates asked for, if more).
HYPOTHESES = 8
#: Library segments each query segment's inner products are ranked against.
COHORT = 1024
#: A query segment whose inner product ranks this high among the cohort's (z >= 2.33, top 1 %) *matches*:
#: the matching segments delimit the stretch of the clip a candidate covers.
MATCH_Z = 2.33
#: Aligned segments a hypothesis needs before it is judged at all.
MIN_ALIGNED = 2
#: Candidates below this confidence are not reported ("no match").
MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Calibration:
    """Confidence of a hypothesis from its sequence score ``T`` over ``n`` aligned segments and its
    ``margin`` over the best other track's score (:func:`margins`):
    ``sigmoid(bias + weight * T + per_root_n / sqrt(n) + per_margin * margin)``; below one half is
    "no match".

    The margin is what carries over from one library to another: ``T`` ranks each inner product
    among a cohort of the library's own segments, so its top end depends on the library's size (a
    library of a few minutes cannot rank any segment as high as one of hours can), while a true
    match stands as far above the best wrong track in either. ``per_margin`` 0 (a calibration
    fitted without margins) judges by ``T`` and ``n`` alone.
    """

    bias: float
    weight: float
    per_root_n: float
    per_margin: float = 0.0

    def confidence(self, score: np.ndarray, n: np.ndarray, *, margin: np.ndarray | float = 0.0) -> np.ndarray:
        z = self.bias + self.weight * score + self.per_root_n / np.sqrt(np.maximum(n, 1)) + self.per_margin * margin
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, float]:
        """What a model's folder records (``Calibration(**d)`` reads it back)."""
        return {"bias": self.bias, "weight": self.weight, "per_root_n": self.per_root_n, "per_margin": self.per_margin}

    def threshold(self, n: np.ndarray | int, *, margin: np.ndarray | float = 0.0) -> np.ndarray:
        """The sequence score above which a hypothesis over ``n`` aligned segments, ``margin`` above the
        best other track, is a match."""
        return -(self.bias + self.per_root_n / np.sqrt(np.maximum(n, 1)) + self.per_margin * margin) / self.weight


def margins(scores: np.ndarray) -> np.ndarray:
    """Each hypothesis's score less the best score of the others (one hypothesis per track, as
    :meth:`LearnedIndex.evidence` gives them); a lone hypothesis's margin is its score."""
    scores = np.asarray(scores, np.float64)
    if len(scores) < 2:
        return scores.copy()
    order = np.argsort(scores)[::-1]
    best, second = scores[order[0]], scores[order[1]]
    others = np.where(np.arange(len(scores)) == order[0], second, best)
    return scores - others


#: The shipped calibration, from two nulls (the best hypothesis of clips whose track is not indexed):
#:
#: * random unit vectors (:func:`simulate_null`: 10 h of 128-d segments, clips of 3-30 s, seeds 0
#:   and 1, 900 clips): the best wrong score has a mean of 2.5-3.0 and a spread of 0.4-0.5 whatever
#:   ``n``, and none reached 4.4; this is the floor any model's null lies above;
#: * synthetic music (:mod:`tuneseek.synth`, strangers of seeds 3000-3059 against 30 songs of seeds
#:   2000-2029) under a small fingerprint network (64-d, width 8) trained for 8 minutes on songs of
#:   seeds 1000-1039 (NT-Xent, positives shifted by up to 0.15 s, noise at 5-30 dB): unrelated songs
#:   from one synthesiser share instruments and patterns, so their best score is 4.9-5.7 (spread
#:   0.5-0.9, the most 7.56 in 240 clips) and does not fall with ``n``, as random vectors' does not.
#:
#: The threshold ``NULL_A + NULL_B / sqrt(n)`` (7.8 at 9 aligned segments, 7.6 at 18) lies above the
#: second; there the confidence is one half, and 0.99 two units of ``T`` above. The check, on fresh
#: strangers (seeds 4000-4089, 3, 5 and 10 s) and fresh clips of the 30 songs with that model: no
#: false match in 90; found 30/30 clips of 5 s clean and at 10 dB SNR, 27/30 of 10 s at 0 dB, 6/30
#: of 5 s at 0 dB, and no clip of 3 s: a segment's quantile is at most 3.3 (the cohort's top rank),
#: so fewer than 6 aligned segments cannot clear a null of 7. That null depends on the model and the
#: music: a trained model ships with the :class:`Calibration` its benchmark fits with :func:`calibrate`
#: (:meth:`Calibration.to_dict` for its folder; ``per_root_n`` may be negative, a threshold that
#: falls for short clips), which replaces this one.
NULL_A, NULL_B = 7.0, 2.5
_SLOPE = math.log(99.0) / 2.0
DEFAULT_CALIBRATION = Calibration(-_SLOPE * NULL_A, _SLOPE, -_SLOPE * NULL_B)


def calibrate(
    scores: np.ndarray,
    n: np.ndarray,
    matches: np.ndarray,
    *,
    margin: np.ndarray | None = None,
    ridge: float = 1e-3,
) -> Calibration:
    """The :class:`Calibration` a labelled set fits: sequence ``scores``, aligned segments ``n``, whether
    each was a true match (``matches``), and, when given, each one's ``margin`` over the best other track
    (:func:`margins` of each clip's hypotheses), e.g. every hypothesis :meth:`LearnedIndex.evidence`
    gives for benchmark clips. Logistic regression (Newton's method, a small ``ridge``). Fit on one
    set of clips and measure on another: a set both tunes and scores nothing.
    """
    scores, n = np.asarray(scores, np.float64), np.asarray(n, np.float64)
    y = np.asarray(matches, np.float64)
    if len(np.unique(y)) < 2:
        raise UsageError("calibration needs both true and false matches")
    columns = [np.ones_like(scores), scores, 1.0 / np.sqrt(np.maximum(n, 1))]
    if margin is not None:
        columns.append(np.asarray(margin, np.float64))
    x = np.stack(columns, axis=1)
    w = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + ridge * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Calibration(*(float(v) for v in w))


# -- the workers' part ------------------------------------------------------------------
class SegmentStream:
    """Segment vectors of audio that arrives in chunks (mono float32 at 8 kHz): 1 s segments every ``hop`` s
    through ``net`` (a :class:`~tuneseek.models.fingerprint_net.FingerprintNet`, its ``embed``), ``batch``
    at a time as the audio arrives, inaudible segments as zero rows. Memory stays bounded by one batch
    and the vectors, whatever the audio's length. ``finish`` gives float16 ``(segments, dim)`` (none for
    audio shorter than a segment): what an indexing worker computes and :meth:`LearnedIndex.add` stores."""

    def __init__(self, net: torch.nn.Module, *, hop: float = HOP_SECONDS, batch: int = BATCH_SEGMENTS):
        self.dim = net.embedding_dim
        n = int(round(SEGMENT_SECONDS * SAMPLE_RATE))
        step = max(1, int(round(hop * SAMPLE_RATE)))
        windows = np.lib.stride_tricks.sliding_window_view

        def run(block: np.ndarray) -> np.ndarray:
            segments = np.array(windows(block, n)[::step], np.float32)
            audible = audible_segments(segments)
            out = np.zeros((len(segments), self.dim), np.float32)
            if audible.any():
                with torch.inference_mode():
                    out[audible] = net.embed(torch.from_numpy(segments[audible])).numpy()
            return out

        self._batches = WindowBatches(n, step, per_batch=batch, run=run)

    def feed(self, chunk: np.ndarray) -> None:
        self._batches.feed(np.asarray(chunk, np.float32))

    def vectors(self) -> np.ndarray:
        """float32 ``(segments, dim)`` of everything fed."""
        found = self._batches.finish()
        return np.concatenate(found) if found else np.zeros((0, self.dim), np.float32)

    def finish(self) -> np.ndarray:
        return self.vectors().astype(np.float16)


def segment_vectors(
    net: torch.nn.Module,
    audio: np.ndarray | Iterable[np.ndarray],
    *,
    hop: float = HOP_SECONDS,
    batch: int = BATCH_SEGMENTS,
) -> np.ndarray:
    """float32 ``(segments, dim)`` vectors of 1 s segments every ``hop`` s of ``audio`` (mono at 8 kHz, whole
    or in chunks), inaudible segments as zero rows; none for audio shorter than a segment (:class:`SegmentStream`)."""
    stream = SegmentStream(net, hop=hop, batch=batch)
    for chunk in [audio] if isinstance(audio, np.ndarray) else audio:
        stream.feed(chunk)
    return stream.vectors()


def track_vectors(
    net: torch.nn.Module, audio: np.ndarray | Iterable[np.ndarray], *, batch: int = BATCH_SEGMENTS
) -> np.ndarray:
    """What an indexing worker computes for a track and :meth:`LearnedIndex.add` stores: float16
    ``(segments, dim)``, segment ``i`` the 1 s from ``i * HOP_SECONDS`` s, zero rows inaudible.

    ``audio`` is mono float32 at 8 kHz, whole or as chunks (``audio.stream(path, 8000, ...)``):
    memory stays bounded by one batch of ``batch`` segments (about 60 MB at the default) plus the
    result (256 bytes a segment at 128 dimensions, 1.8 MB per audio hour). The default network
    runs at about 200 times real time on one core.
    """
    return segment_vectors(net, audio, batch=batch).astype(np.float16)


# -- the index a query reads ------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """What queries read, as the catalogue held it at one generation: every live track's segments."""

    generation: int
    ids: np.ndarray  # track ids, ascending
    starts: np.ndarray  # each track's first row in ``rows``
    counts: np.ndarray  # each track's segments
    rows: np.ndarray  # float16 (segments, dim): every track's segments, in track order
    store: VectorStore | None  # the audible segments, id = track id << SEGMENT_BITS | segment; None when empty
    cohort: np.ndarray  # float32 (<= COHORT, dim): audible segments drawn at random, for ranking

    @classmethod
    def of(
        cls,
        generation: int,
        tracks: list[tuple[int, np.ndarray]],
        dim: int,
        store: Callable[[int], VectorStore] | None = None,
        *,
        previous: View | None = None,
    ) -> View:
        """The view of ``tracks`` (``(track id, float16 segments)`` in id order), its audible segments in a
        store that ``store`` makes (by default the one :func:`segment_store` chooses for their number).

        A compressed store is not made afresh when the ``previous`` view has one to carry (see
        :data:`RETRAIN_GROWTH`): a copy of it, its tracks that are gone or changed deleted and those that
        are new or changed upserted, so adding a track to a large library encodes that track's segments
        only. A compressed store made afresh is trained on its sample of the audible segments first
        (:meth:`~tuneseek.store.vectors.CompressedFaissStore.train`) and then filled :data:`FILL_CHUNK` of them
        at a time, so that the build never holds them all in float32. An exact store is filled afresh (a copy
        of the vectors, as copying it would be).
        """
        ids = np.array([t for t, _ in tracks], np.int64)
        counts = np.array([len(v) for _, v in tracks], np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        rows = np.concatenate([v for _, v in tracks]) if tracks else np.zeros((0, dim), np.float16)
        audible = np.flatnonzero(
            np.concatenate([np.zeros(0, bool), *(np.any(c != 0, axis=1) for c in _chunks(rows, FILL_CHUNK))])
        )
        if len(audible) == 0:
            return cls(generation, ids, starts, counts, rows, None, np.zeros((0, dim), np.float32))
        track = np.repeat(np.arange(len(ids)), counts)[audible]
        sids = (ids[track] << SEGMENT_BITS) + (audible - starts[track])
        index = (store or segment_store(len(audible)))(dim)
        carried = _carried(previous, index, ids, [v for _, v in tracks], len(audible))
        if carried is not None:
            index, changed = carried
            _fill(index, sids[changed[track]], rows, audible[changed[track]])
        elif isinstance(index, CompressedFaissStore):
            index.train(rows[audible[index.sample(len(audible))]].astype(np.float32), size=len(audible))
            _fill(index, sids, rows, audible)
        else:
            index.upsert(sids, rows[audible].astype(np.float32))
        index.search(
            rows[audible[:1]].astype(np.float32), 1
        )  # built here, under the view's lock, not by racing queries
        drawn = np.random.default_rng(0).choice(audible, min(COHORT, len(audible)), replace=False)
        return cls(generation, ids, starts, counts, rows, index, rows[np.sort(drawn)].astype(np.float32))


def _chunks(array: np.ndarray, size: int) -> Iterable[np.ndarray]:
    """``array`` in consecutive slices of ``size`` rows (views, not copies)."""
    return (array[i : i + size] for i in range(0, len(array), size))


def _fill(store: VectorStore, ids: np.ndarray, rows: np.ndarray, at: np.ndarray) -> None:
    """Upsert the float16 ``rows`` at positions ``at`` into ``store`` under ``ids``, converted to float32
    :data:`FILL_CHUNK` at a time (a trained compressed store encodes each chunk and keeps none of it)."""
    for some_ids, some_at in zip(_chunks(ids, FILL_CHUNK), _chunks(at, FILL_CHUNK)):
        store.upsert(some_ids, rows[some_at].astype(np.float32))


def _carried(
    previous: View | None, made: VectorStore, ids: np.ndarray, rows: list[np.ndarray], size: int
) -> tuple[CompressedFaissStore, np.ndarray] | None:
    """``(store, lacking)``: a copy of the ``previous`` view's compressed store less the segments of its
    tracks that are gone or whose ``rows`` (each track's, in the order of ``ids``) changed, and which of
    ``ids`` it lacks (new or changed); when ``made`` (the store the new view would have) is compressed too
    and ``size`` segments are within :data:`RETRAIN_GROWTH` of those the previous store was trained on.
    Otherwise None."""
    old = None if previous is None else previous.store
    if not (isinstance(made, CompressedFaissStore) and isinstance(old, CompressedFaissStore) and old.trained_size):
        return None
    if not 1 / RETRAIN_GROWTH <= size / old.trained_size <= RETRAIN_GROWTH:
        return None
    at = np.minimum(np.searchsorted(previous.ids, ids), len(previous.ids) - 1)
    before = (previous.rows[previous.starts[j] : previous.starts[j] + previous.counts[j]] for j in at)
    kept = np.array([previous.ids[j] == t and np.array_equal(r, b) for t, j, r, b in zip(ids, at, rows, before)], bool)
    stale = ~np.isin(previous.ids, ids[kept])
    gone = [(t << SEGMENT_BITS) + np.arange(n) for t, n in zip(previous.ids[stale], previous.counts[stale])]
    store = old.copy()
    store.delete(np.concatenate([np.zeros(0, np.int64), *gone]))
    return store, ~kept


@dataclass(frozen=True)
class Hypothesis:
    """One track at one offset, judged: what :meth:`LearnedIndex.evidence` gives for calibration."""

    track_id: int
    offset: float  # track time at the clip's first sample, s
    score: float  # the sequence score T (ranked inner products, summed over sqrt(n))
    similarity: float  # the plain mean inner product of the aligned segments (Chang et al.'s score)
    n: int  # aligned segments
    matching: np.ndarray  # start times (s, in the clip) of the aligned segments that match (z >= MATCH_Z)
    aligned: np.ndarray  # start times of every aligned segment


def _ranked(sims: np.ndarray, cohort_sims: np.ndarray) -> np.ndarray:
    """Each of ``sims (..., n)`` as the standard normal quantile of its mid-rank among row ``n`` of
    ``cohort_sims (n, c)``: standard normal when ``sims`` are drawn as the cohort's are."""
    n, c = cohort_sims.shape
    lift = 4.0 * np.arange(n)  # inner products of unit vectors lie in [-1, 1]: rows lifted apart sort as one
    flat = (np.sort(cohort_sims, axis=1) + lift[:, None]).ravel()
    rank = np.searchsorted(flat, sims + lift, side="left") - np.arange(n) * c
    return ndtri((rank + 0.5) / (c + 1))


def search(view: View, queries: np.ndarray, audible: np.ndarray, *, phases: int, hypotheses: int) -> list[Hypothesis]:
    """The best hypothesis of each of the ``hypotheses`` most-voted tracks, judged; best score first.

    ``queries`` are the clip's segment vectors every ``HOP_SECONDS / phases`` s (``audible`` says
    which hold sound). Offsets are counted in query steps throughout: track segment ``i`` against
    query segment ``j`` puts the clip's start at ``i * phases - j`` steps into the track.
    """
    if view.store is None or not audible.any():
        return []
    j_audible = np.flatnonzero(audible)
    sids = neighbours(view, queries[j_audible])
    hit = sids >= 0
    j = np.broadcast_to(j_audible[:, None], sids.shape)[hit]
    sids = sids[hit]
    track = np.searchsorted(view.ids, sids >> SEGMENT_BITS)
    offset = (sids & ((1 << SEGMENT_BITS) - 1)) * phases - j
    # votes per (track, offset), then summed over offsets within one hop (``phases`` steps) either side
    bias = len(queries) + 1
    span = (int(view.counts.max(initial=0)) * phases + 2 * bias + 2 * phases) * 2
    keys, votes = np.unique(track * span + offset + bias, return_counts=True)
    cum = np.concatenate([[0], np.cumsum(votes)])
    near = cum[np.searchsorted(keys, keys + phases, side="right")] - cum[np.searchsorted(keys, keys - phases)]
    t_of, o_of = keys // span, keys % span - bias
    order = np.lexsort((-near, t_of))
    best = order[np.concatenate([[True], t_of[order][1:] != t_of[order][:-1]])]
    best = best[np.argsort(-near[best], kind="stable")[:hypotheses]]
    # judged a few at a time: the track segments gathered for them take hypotheses x shifts x clip segments rows
    found = [
        hyp
        for at in range(0, len(best), HYPOTHESES)
        for hyp in _judged(
            view, queries, audible, t_of[best[at : at + HYPOTHESES]], o_of[best[at : at + HYPOTHESES]], phases
        )
    ]
    return sorted(found, key=lambda hyp: -hyp.score)


def neighbours(view: View, queries: np.ndarray, *, shortlist: int = SHORTLIST) -> np.ndarray:
    """The stored segment ids ``(n, NEIGHBOURS)`` nearest each of ``queries`` (unit rows) in the view's
    store (-1: none), best first: what :func:`search` votes with. A compressed store, whose scores are
    approximate, is asked for ``shortlist`` and those are re-ranked by exact inner products with the view's
    rows; any other store is asked for :data:`NEIGHBOURS`."""
    if not isinstance(view.store, CompressedFaissStore):
        return view.store.search(queries, NEIGHBOURS)[1]
    sids = view.store.search(queries, shortlist)[1]
    known = sids >= 0
    track = np.searchsorted(view.ids, np.where(known, sids, 0) >> SEGMENT_BITS)
    rows = view.rows[view.starts[track] + (np.where(known, sids, 0) & ((1 << SEGMENT_BITS) - 1))]
    sims = np.where(known, np.einsum("qkd,qd->qk", rows.astype(np.float32), queries), -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :NEIGHBOURS]
    return np.take_along_axis(sids, order, axis=1)


def segment_store(size: int) -> Callable[[int], VectorStore]:
    """What makes the store of a view of ``size`` audible segments: :class:`~tuneseek.store.vectors.FaissStore`
    (exact) up to :data:`COMPRESSED_ABOVE`, :class:`~tuneseek.store.vectors.CompressedFaissStore` above."""
    return FaissStore if size <= COMPRESSED_ABOVE else CompressedFaissStore


def _judged(
    view: View, queries: np.ndarray, audible: np.ndarray, tracks: np.ndarray, offsets: np.ndarray, phases: int
) -> list[Hypothesis]:
    """Hypotheses (track index, offset in steps) re-scored at every offset within one hop, each at its best;
    best score first."""
    n_q = len(queries)
    shifts = np.arange(-phases, phases + 1)
    pos = (offsets[:, None] + shifts)[:, :, None] + np.arange(n_q)  # (hypotheses, shifts, query segments): steps
    seg = pos // phases
    count = view.counts[tracks][:, None, None]
    inside = (pos % phases == 0) & (seg >= 0) & (seg < count) & audible
    rows = view.rows[view.starts[tracks][:, None, None] + np.clip(seg, 0, count - 1)]
    inside &= np.any(rows != 0, axis=-1)
    sims = np.einsum("hsqd,qd->hsq", rows.astype(np.float32), queries)
    z = _ranked(sims, queries @ view.cohort.T)
    n = inside.sum(axis=-1)
    score = np.where(n >= MIN_ALIGNED, (z * inside).sum(axis=-1) / np.sqrt(np.maximum(n, 1)), -np.inf)
    # the best offset of each hypothesis; a tie goes to the shift nearest the voted offset
    pick = np.argmax(score - 1e-9 * np.abs(shifts), axis=1)
    h = np.arange(len(tracks))
    step = HOP_SECONDS / phases
    starts = np.arange(n_q) * step
    found = []
    for i in np.argsort(-score[h, pick], kind="stable"):
        s, keep = pick[i], inside[i, pick[i]]
        if not np.isfinite(score[i, s]):
            continue
        found.append(
            Hypothesis(
                int(view.ids[tracks[i]]),
                float((offsets[i] + shifts[s]) * step),
                float(score[i, s]),
                float(sims[i, s][keep].mean()),
                int(n[i, s]),
                starts[keep & (z[i, s] >= MATCH_Z)],
                starts[keep],
            )
        )
    return found


def simulate_null(
    *, dim: int = 128, hours: float = 10.0, clips: int = 2000, seconds: tuple[float, float] = (3.0, 30.0), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, n)`` of the best hypothesis of clips that are in no library: random unit vectors
    searched among ``hours`` of random unit vectors (3-minute tracks), exactly as a query is; the
    source of :data:`DEFAULT_CALIBRATION`'s threshold (a trained fingerprint spreads unrelated
    segments over the sphere much as random vectors lie, and the ranking makes the rest model-free).
    """
    rng = np.random.default_rng(seed)
    per_track = int(180 / HOP_SECONDS)
    n_tracks = max(1, int(hours * 3600 / HOP_SECONDS) // per_track)

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    tracks = [(t, unit(per_track).astype(np.float16)) for t in range(n_tracks)]
    view = View.of(0, tracks, dim, lambda d: FaissStore(d))
    scores, ns = [], []
    for _ in range(clips):
        length = rng.uniform(*seconds)
        q = unit(int((length - SEGMENT_SECONDS) / HOP_SECONDS * QUERY_PHASES) + 1)
        best = search(view, q, np.ones(len(q), bool), phases=QUERY_PHASES, hypotheses=HYPOTHESES)
        if best:
            scores.append(best[0].score)
            ns.append(best[0].n)
    return np.array(scores), np.array(ns)


class LearnedIndex:
    """A learned fingerprint's identification over the vectors the catalogue holds, behind the
    :class:`~tuneseek.identifier.Identifier` seam.

    ``net`` is the fingerprint network (its ``embed``: 1 s at 8 kHz -> unit vector), ``name`` what
    the catalogue calls its vectors (``fingerprint:RUN``), ``version`` the model version that made
    them (vectors of another version are never compared with this one's queries), ``store`` what makes the
    store of the segments of each view (by default :func:`segment_store` chooses by their number). Safe for any
    number of reading threads: the searchable view is rebuilt by one of them when the catalogue's
    generation moves, and swapped in whole.
    """

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        catalog: Catalog,
        net: torch.nn.Module,
        *,
        name: str,
        version: str,
        phases: int = QUERY_PHASES,
        calibration: Calibration = DEFAULT_CALIBRATION,
        store: Callable[[int], VectorStore] | None = None,
    ):
        self.catalog = catalog
        self.net = net.eval()
        self.name = name
        self.version = version
        self.phases = phases
        self.calibration = calibration
        self.store = store
        self._view: View | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, catalog: Catalog, trained: TrainedModel, **options) -> LearnedIndex:
        """The index of a trained fingerprint run (:func:`tuneseek.embed.trained.load_trained`'s model:
        its ``model``, ``name`` and ``version``), named ``fingerprint:NAME``."""
        return cls(catalog, trained.model, name=f"fingerprint:{trained.name}", version=trained.version, **options)

    # -- writing (inside the catalogue transaction of the caller) ------------------------
    def add(self, tracks: Sequence[tuple[int, np.ndarray]]) -> None:
        """Store the segment vectors (:func:`track_vectors`) of tracks the caller's open transaction just
        inserted, and record this model's version as theirs."""
        for track_id, vectors in tracks:
            self.catalog.set_fingerprint_vectors(track_id, self.name, self.version, HOP_SECONDS, vectors)
            self.catalog.set_extractor(track_id, self.name, self.version)

    def remove(self, track_ids: Sequence[int]) -> None:
        """Forget tracks the caller's transaction deletes (their vectors go with their rows; this drops
        them explicitly too, for a track that stays while this fingerprint is dropped)."""
        self.catalog.drop_fingerprint_vectors(self.name, list(track_ids))

    # -- the catalogue's view ---------------------------------------------------------
    def view(self) -> View:
        """The current view, rebuilt first if the catalogue changed since it was built."""
        generation = self.catalog.generation()
        view = self._view
        if view is not None and view.generation == generation:
            return view
        with self._lock:
            view = self._view
            if view is None or view.generation != generation:
                with self.catalog.snapshot():
                    generation = self.catalog.generation()
                    tracks = list(self.catalog.fingerprint_vectors(self.name, self.version))
                view = View.of(generation, tracks, self.net.embedding_dim, self.store, previous=view)
                self._view = view
            return view

    def close(self) -> None:
        """Drop the in-memory index (rebuilt on the next query)."""
        self._view = None

    # -- identification ---------------------------------------------------------------
    def evidence(self, clip: np.ndarray, *, name: str = "<samples>", hypotheses: int = HYPOTHESES) -> list[Hypothesis]:
        """Every hypothesis a query judges for ``clip``, best first: for :func:`calibrate` and benchmarks."""
        view = self.view()
        step = HOP_SECONDS / self.phases
        if len(clip) < SEGMENT_SECONDS * SAMPLE_RATE:
            raise AudioError(name, f"too short: {len(clip) / SAMPLE_RATE:.2f} s (a segment is {SEGMENT_SECONDS:g} s)")
        queries = segment_vectors(self.net, clip, hop=step)
        audible = np.any(queries != 0, axis=1)
        if not audible.any():
            raise AudioError(name, "nothing audible: every 1 s segment is below -70 dBFS")
        return search(view, queries, audible, phases=self.phases, hypotheses=hypotheses)

    def candidates(
        self, clip: np.ndarray, k: int = 5, *, name: str = "<samples>", floor: float = MIN_CONFIDENCE
    ) -> list[Candidate]:
        """Up to ``k`` tracks ``clip`` (mono float32 at 8 kHz) may come from, best first; empty for "no match".
        ``floor``: the least confidence reported (below it is "no match"; 0 lists every judged hypothesis,
        for a fusion that weighs them with other evidence).

        Raises :class:`~tuneseek.errors.AudioError` naming ``name`` when the clip is shorter than
        a segment or nothing in it is audible.
        """
        found = self.evidence(clip, name=name, hypotheses=max(HYPOTHESES, 2 * k))
        if not found:
            return []
        score = np.array([h.score for h in found])
        n = np.array([h.n for h in found])
        confidence = self.calibration.confidence(score, n, margin=margins(score))
        seconds = len(clip) / SAMPLE_RATE
        out = []
        for h, p in zip(found, confidence):
            if p < floor or len(out) == k:
                continue
            span = h.matching if len(h.matching) else h.aligned
            start, end = float(span.min()), min(float(span.max()) + SEGMENT_SECONDS, seconds)
            within = (h.aligned >= start) & (h.aligned <= end)
            out.append(
                Candidate(
                    track_id=h.track_id,
                    offset=h.offset,
                    clip_start=start,
                    clip_end=end,
                    score=len(h.matching),
                    confidence=float(p),
                    speed=1.0,
                    tempo=1.0,
                    coverage=float(len(h.matching) / max(int(within.sum()), 1)),
                )
            )
        return out
