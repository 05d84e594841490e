"""Searching the landmark index with a clip, including sped-up and stretched ones.

A clip's peaks are paired once, generously (more targets per anchor than the
index keeps, and a wider zone), then hashed under a few *hypotheses* of how
its time and frequency axes relate to the track's:

- a speed change (a record played fast: pitch and tempo together) by factor s
  maps clip coordinates back as ``t * s`` and ``f / s``;
- a tempo change with pitch kept (time-stretch) by factor r maps ``t * r``.

Hypotheses are tried in stages, the plain one first; later stages run only
when the earlier ones found no convincing match, so an ordinary clip costs one
lookup and a sped-up one a few more. No audio is resampled for a hypothesis:
only the peak coordinates are rescaled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tuneseek.fingerprint.hashes import Pairs, pair_peaks, quantise
from tuneseek.fingerprint.matcher import best_offsets
from tuneseek.fingerprint.params import DEFAULT, FingerprintParams
from tuneseek.fingerprint.peaks import Peaks, find_peaks

SPEEDS = (0.97, 0.98, 0.99, 1.01, 1.02, 1.03)
TEMPI = (0.95, 0.965, 0.98, 1.02, 1.035, 1.05)


@dataclass(frozen=True)
class Stage:
    """Hypotheses ``(time scale, frequency scale)`` tried together, and the score a match needs.

    Later stages try more hypotheses, so unrelated music has more chances to line
    up by accident there: their threshold is higher.
    """

    hypotheses: tuple[tuple[float, float], ...]
    min_score: int


#: Thresholds calibrated on 3-10 s clips of music not in the library (rock songs
#: against a library of orchestral tracks; see benchmarks/RESULTS.md): the highest
#: of 120 such clips scored 10 on the plain hypothesis and 11 over all of them.
STAGES = (
    Stage(((1.0, 1.0),), min_score=12),
    Stage(
        tuple(
            sorted(
                [(s, s) for s in SPEEDS] + [(r, 1.0) for r in TEMPI],
                key=lambda h: abs(h[0] - 1.0),  # likeliest first, for the early exit
            )
        ),
        min_score=16,
    ),
)
#: inside a stage, a pile this many times the stage's threshold ends the search
SURE_FACTOR = 3
#: line fit of a match (:func:`_refine`): hits within this share of the clip's
#: length of the pile (also the largest time-scale change accepted), residual
#: in frames, rounds, and fewest inliers
FIT_SPREAD = 0.06
FIT_RESIDUAL = 2.5
FIT_ROUNDS = 4
FIT_MIN_HITS = 8
#: time scales fitted within this of the hypothesis's are reported as the hypothesis's
FIT_PRECISION = 0.004
#: a refined time scale this far from 1 is also tried as a speed change
MIN_SPEED_CHANGE = 0.008
#: targets per anchor on the query side (the index keeps params.fanout)
QUERY_FANOUT = 10
#: aligned hits within this many frames of each other count as one pile
TOLERANCE = 2
#: Stop-list: a hash holding more than STOP_RATIO times the library's mean postings
#: per hash (and more than MIN_STOP) is skipped by queries. Such hashes (low notes
#: repeated at short intervals, mostly) are a fifth of a clip's hashes but nine
#: tenths of its hits, and nearly all its chance alignments with unrelated music:
#: skipping them makes queries ~10x cheaper and "no match" more reliable.
STOP_RATIO = 20.0
MIN_STOP = 4
#: scores of clips of music not in the library: median, and the e-folding of the
#: tail above it (from the same calibration), behind :func:`confidence`
NULL_MEDIAN = 4
NULL_SCALE = 1.9


@dataclass(frozen=True)
class Candidate:
    """A pile of aligned hits: its track (index into the live tracks), global offset in frames,
    score, and the hypothesis that found it."""

    track: int
    offset: int
    score: int
    time_scale: float
    freq_scale: float


Lookup = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
Resolve = Callable[[np.ndarray], np.ndarray]


def clip_pairs(clip: np.ndarray, params: FingerprintParams = DEFAULT) -> tuple[Pairs, Peaks]:
    """Peak pairs of a clip (at ``params.sr``), with the zone widened to allow for rescaling."""
    peaks = find_peaks(clip, params)
    widen = 1.0 / min(min(SPEEDS), min(TEMPI))
    pairs = pair_peaks(peaks, QUERY_FANOUT, params.dt_max * widen, params.df_max * widen, 2 * params.lookahead)
    return pairs, peaks


@dataclass(frozen=True)
class _Votes:
    """One hypothesis's hits and its best piles."""

    anchor: np.ndarray  # clip frame (rescaled) of each hit
    frames: np.ndarray  # global reference frame of each hit
    offsets: np.ndarray  # best piles, best first
    scores: np.ndarray


def _vote(pairs: Pairs, lookup: Lookup, time_scale: float, freq_scale: float, piles: int) -> _Votes | None:
    hashes, anchor = quantise(pairs, time_scale, freq_scale)
    if len(hashes) == 0:
        return None
    qi, frames = lookup(hashes)
    offsets, scores = best_offsets(frames - anchor[qi], TOLERANCE, top=piles, hashes=hashes[qi])
    return _Votes(anchor[qi], frames, offsets, scores)


def _refine(votes: _Votes, cand: Candidate) -> Candidate:
    """Fit a line through the hits around a pile: the exact time scale, and where the clip starts.

    A pile catches the hits of the part of the clip where the hypothesis's time
    scale and the true one agree within the tolerance; a straight line fitted
    through all hits near it (iterating on the inliers) recovers the true scale,
    and so the offset of the clip's *start*, not of its middle.
    """
    reach = FIT_SPREAD * (votes.anchor.max(initial=0) + 1) + TOLERANCE
    near = np.abs(votes.frames - votes.anchor - cand.offset) <= reach
    x, y = votes.anchor[near].astype(np.float64), votes.frames[near].astype(np.float64)
    a, b = 1.0, float(cand.offset)
    for _ in range(FIT_ROUNDS):
        inliers = np.abs(y - (a * x + b)) <= FIT_RESIDUAL
        if inliers.sum() < FIT_MIN_HITS or np.ptp(x[inliers]) < 1:
            return cand
        a, b = np.polyfit(x[inliers], y[inliers], 1)
    if abs(a - 1.0) > FIT_SPREAD:
        return cand
    scale = float(cand.time_scale * a)
    if abs(scale - cand.time_scale) < FIT_PRECISION:  # within the fit's own scatter: keep the hypothesis
        scale = cand.time_scale
    return Candidate(cand.track, int(round(b)), cand.score, round(scale, 3), cand.freq_scale)


def search(pairs: Pairs, lookup: Lookup, track_of: Resolve, k: int = 5) -> list[Candidate]:
    """Matches of up to ``k`` distinct tracks, best first; empty for "no match".

    Stages run in order until one yields a pile at or above its threshold; inside
    a stage, hypotheses run likeliest first until one gives a pile of
    ``SURE_FACTOR`` times the threshold. Each match's time scale and start are
    then refined (see :func:`_refine`); a match found without a pitch change whose
    time scale turns out changed is also tried as a speed change, and the better
    explanation kept.
    ``lookup(hashes)`` returns every live posting of the hashes as ``(query
    index, global frame)``; ``track_of(frames)`` gives the index of the track
    each global frame belongs to, or -1 (gaps between tracks).
    """
    for stage in STAGES:
        best: dict[int, Candidate] = {}
        for time_scale, freq_scale in stage.hypotheses:
            votes = _vote(pairs, lookup, time_scale, freq_scale, 2 * k + 2)
            if votes is None:
                continue
            for track, offset, score in zip(track_of(votes.offsets + TOLERANCE), votes.offsets, votes.scores):
                if track >= 0 and score >= stage.min_score and (track not in best or score > best[track].score):
                    best[track] = _refine(votes, Candidate(int(track), int(offset), int(score), time_scale, freq_scale))
            if best and max(c.score for c in best.values()) >= SURE_FACTOR * stage.min_score:
                break
        if best:
            found = sorted(best.values(), key=lambda c: -c.score)[:k]
            found[0] = _as_speed_change(pairs, lookup, track_of, found[0])
            return found
    return []


def _as_speed_change(pairs: Pairs, lookup: Lookup, track_of: Resolve, cand: Candidate) -> Candidate:
    """``cand`` re-scored as a speed change (pitch moved too) when its time scale says so and that scores higher."""
    scale = cand.time_scale
    if cand.freq_scale != 1.0 or abs(scale - 1.0) < MIN_SPEED_CHANGE:
        return cand
    votes = _vote(pairs, lookup, scale, scale, 4)
    if votes is None:
        return cand
    for offset, score in zip(votes.offsets, votes.scores):
        if track_of(np.array([offset + TOLERANCE]))[0] == cand.track and score > cand.score:
            return _refine(votes, Candidate(cand.track, int(offset), int(score), scale, scale))
    return cand


def confidence(score: int) -> float:
    """Estimated chance that a clip of music *not* in the library scores below ``score``.

    Unrelated clips score about :data:`NULL_MEDIAN`, and the share scoring higher
    falls off exponentially with :data:`NULL_SCALE`; a match at the plain
    threshold is about 0.99.
    """
    return float(1.0 - 0.5 * np.exp(-max(0.0, score - NULL_MEDIAN) / NULL_SCALE))
