"""Searching the landmark index with a clip, including sped-up and stretched ones.

A clip's peaks are paired once, generously (more targets per anchor than the
index keeps, and a wider zone), then hashed under a few *hypotheses* of how
its time and frequency axes relate to the track's:

- a speed change (a record played fast: pitch and tempo together) by factor s
  maps clip coordinates back as ``t * s`` and ``f / s``;
- a tempo change with pitch kept (time-stretch) by factor r maps ``t * r``;
- a pitch shift with tempo kept by factor p maps ``f / p``.

Hypotheses are tried in stages, the plain one first; the wide stage runs only
when the plain one found no verified match, so an ordinary clip costs one
lookup and a sped-up one a few more. No audio is resampled for a hypothesis:
only the peak coordinates are rescaled. The plain stage pools four analyses of
the clip a quarter hop apart (see :func:`clip_analyses`).

Every pile found is refined (a line through its hits gives the exact time scale,
the offset of the clip's start and the stretch of the clip that matched) and
then *verified*: :func:`confidence` turns its evidence into the probability that
it is a true match, and below :data:`MIN_CONFIDENCE` it does not count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from tuneseek.fingerprint.hashes import Pairs, pair_peaks, quantise
from tuneseek.fingerprint.matcher import best_offsets
from tuneseek.fingerprint.params import DEFAULT, FingerprintParams
from tuneseek.fingerprint.peaks import Peaks, find_peaks
from tuneseek.identifier import Candidate

#: speed changes (pitch and tempo together) tried: -6 % .. +6 %
SPEEDS = tuple(round(1 + d / 100, 2) for d in range(-6, 7) if d)
#: tempo changes with pitch kept: -11 % .. +11 %, every 1.5 %
TEMPI = tuple(round(1 + 0.015 * d, 3) for d in range(-7, 8) if d)
#: pitch changes with tempo kept: half a semitone and a semitone, down and up
PITCHES = tuple(2 ** (s / 12) for s in (-1.0, -0.5, 0.5, 1.0))
#: analyses of a clip, each a fraction of a hop later (see :func:`clip_pairs`)
SHIFTS = 4


@dataclass(frozen=True)
class Stage:
    """Hypotheses ``(time scale, frequency scale)`` tried together, and the score a match needs.

    Later stages try more hypotheses, so unrelated music has more chances to line
    up by accident there: their threshold is higher.
    """

    hypotheses: tuple[tuple[float, float], ...]
    min_score: int  # piles below this are not judged at all
    sure_score: int  # a pile this high that passes verification ends the stage's search


#: The plain hypothesis, then the wide stage. ``min_score`` only spares verification the
#: piles that can never pass it (clips of unrelated music put their best plain pile at a
#: median of 5-9); "no match" is verification's call (see :func:`confidence`). The sure
#: scores end a stage early where a match leaves no doubt.
STAGES = (
    Stage(((1.0, 1.0),), min_score=8, sure_score=36),
    Stage(
        tuple(
            sorted(
                [(s, s) for s in SPEEDS] + [(r, 1.0) for r in TEMPI] + [(1.0, p) for p in PITCHES],
                key=lambda h: abs(h[0] - 1.0) + abs(h[1] - 1.0),  # likeliest first, for the early exit
            )
        ),
        min_score=10,
        sure_score=48,
    ),
)
#: line fit of a match (:func:`_refine`): hits within this share of the clip's
#: length of the pile (also the largest time-scale change accepted), residual
#: in frames, rounds, and fewest inliers
FIT_SPREAD = 0.12
#: slopes tried across +-FIT_SPREAD before the least-squares fit (a step of 0.2 %)
FIT_SLOPES = 121
#: at most this many hits vote on the slope
FIT_SAMPLE = 1024
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
#: Verification (:func:`confidence`): weights of the features (log score, log score per
#: second, coverage, log clip seconds), bias, the wide stage's penalty (log-odds), and the
#: confidence a match needs. Fitted by ``python benchmarks/calibrate_identify.py --seed 9``
#: (warzone2100 as the unrelated source); beyond the score and the clip's length the
#: features earn weights near zero, and their signs changed between two seeds.
CONFIDENCE_WEIGHTS = np.array([3.33, -0.135, -0.14, -0.729])
CONFIDENCE_BIAS = -7.189
WIDE_STAGE_PENALTY = 1.0
MIN_CONFIDENCE = 0.5
#: hours of audio in the library the weights were fitted on (the benchmark library)
CALIBRATION_LIBRARY_HOURS = 2.36


@dataclass(frozen=True)
class Pile:
    """A line of aligned hits in one track: the evidence that the clip comes from it.

    ``track`` indexes the index's live tracks; ``offset`` is the track frame at the
    clip's frame 0 (negative when the clip starts before the track); ``time_scale``
    and ``freq_scale`` the hypothesis (refined by a line fit) that maps the clip
    onto the track. ``first`` and ``last`` are the clip frames of the first and last
    aligned hit, ``covered`` how many of the clip's seconds between them hold one.
    """

    track: int
    offset: float
    score: int
    time_scale: float
    freq_scale: float
    first: float = 0.0
    last: float = 0.0
    covered: int = 0
    stage: int = 0
    confidence: float = 0.0

    def located(self, track_id: int, fps: float, clip_seconds: float, track_frames: int) -> Candidate:
        """The public :class:`Candidate`: seconds, the span of the clip that holds the track."""
        scale = self.time_scale
        start = max(0.0, self.first)
        end = min(self.last + SPAN_TAIL_FRAMES, (track_frames - self.offset) / scale, clip_seconds * fps)
        seconds = max(1, int(np.ceil((end - start) / fps)))
        return Candidate(
            track_id=track_id,
            offset=round(self.offset / fps, 3),
            clip_start=round(start / fps, 2),
            clip_end=round(max(start, end) / fps, 2),
            score=self.score,
            confidence=round(self.confidence, 4),
            speed=round(float(self.freq_scale), 3),
            tempo=_snapped(self.time_scale / self.freq_scale),
            coverage=round(min(1.0, self.covered / seconds), 3),
        )


def _snapped(tempo: float) -> float:
    """A tempo factor to 3 decimals, and 1 when it is within the line fit's own scatter of 1."""
    return 1.0 if abs(tempo - 1.0) < FIT_PRECISION else round(float(tempo), 3)


#: the last aligned hit's anchor is followed by this many frames of its pair
SPAN_TAIL_FRAMES = 8
#: a frame whose samples all stay below this is silent
SILENCE_LEVEL = 1e-4
#: a stretch before the first matching frame with less than this share of the matching
#: stretch's landmark density is quiet (a soft intro), not other audio
QUIET_SHARE = 0.25
#: share of the median matching second's hits that makes a second part of the matching stretch
SPAN_DENSITY = 0.2

#: what a lookup gives: (query index, track index, frame within the track) of every hit
Lookup = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def clip_pairs(clip: np.ndarray, *, params: FingerprintParams = DEFAULT, shifts: int = SHIFTS) -> tuple[Pairs, Peaks]:
    """Peak pairs of a clip, pooled over its shifted analyses (see :func:`clip_analyses`), and its peaks."""
    pooled, _, peaks = clip_analyses(clip, params=params, shifts=shifts)
    return pooled, peaks


def clip_analyses(
    clip: np.ndarray, *, params: FingerprintParams = DEFAULT, shifts: int = SHIFTS
) -> tuple[Pairs, Pairs, Peaks]:
    """Peak pairs of a clip (at ``params.sr``), with the zone widened to allow for rescaling.

    The clip is analysed ``shifts`` times, each starting ``hop / shifts`` samples later,
    and the pairs of all are pooled (anchor times in frames of the unshifted clip):
    spectral peaks depend on where the analysis frames fall, and one of the shifts
    lands within ``hop / (2 * shifts)`` samples of the frames the track was indexed
    with, wherever the clip was cut. Returns the pooled pairs, the unshifted analysis's
    own pairs (a time-scaled clip never keeps the track's frame phase, so the rescaled
    hypotheses gain nothing from shifts and search these, at a quarter of the cost),
    and the unshifted peaks.
    """
    widen = 1.0 / min(min(SPEEDS), min(TEMPI), min(PITCHES))
    parts, first = [], None
    for i in range(shifts):
        lag = (i * params.hop) // shifts
        peaks = find_peaks(clip[lag:], params=params)
        first = first or peaks
        p = pair_peaks(peaks, QUERY_FANOUT, params.dt_max * widen, params.df_max * widen, 2 * params.lookahead)
        parts.append(Pairs(p.t1 + lag / params.hop, p.f1, p.f2, p.dt))
    pooled = Pairs(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("t1", "f1", "f2", "dt")))
    return pooled, parts[0], first


@dataclass(frozen=True)
class _Votes:
    """One hypothesis's hits (per hit: clip anchor frame, rescaled; track; frame in the track) and its best piles."""

    anchor: np.ndarray
    track: np.ndarray
    frame: np.ndarray
    piles: list[Pile]
    landmarks: np.ndarray  # anchor frame (rescaled) of every landmark of the clip, hit or not


#: Piles are sought on one integer axis: track index in the high bits, offset (biased
#: to be non-negative) in the low 32. Tracks are 2**32 frames apart there, so a pile
#: and its background never mix two tracks.
_OFFSET_BIAS = 1 << 31


def _needles(pairs: Pairs, time_scale: float, freq_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The clip's landmarks ``(hashes, anchor frames)`` under one hypothesis, each (hash, frame) once."""
    hashes, anchor = quantise(pairs, time_scale=time_scale, freq_scale=freq_scale)
    # the shifted analyses find many landmarks again at the same frame: once is all the
    # voting needs (a pile counts distinct hashes), at a fraction of the hits
    base = int(anchor.min(initial=0))
    key = np.unique((hashes.astype(np.int64) << 32) | (anchor - base))
    return (key >> 32).astype(np.uint32), (key & 0xFFFFFFFF) + base


def _vote(pairs: Pairs, lookup: Lookup, time_scale: float, freq_scale: float, piles: int) -> _Votes | None:
    hashes, anchor = _needles(pairs, time_scale, freq_scale)
    return _vote_hashes(hashes, anchor, lookup, piles, time_scale, freq_scale)


class _Prefetch:
    """The lookups of a stage's hypotheses, ``batch`` of them in one call of ``lookup``.

    A hypothesis's hits do not depend on what else is looked up with it: the needles of several,
    looked up together and split again by needle, give each the hits (in the order) its own lookup
    gives. Where a lookup costs a round trip (an index held by shards on other processes), one
    call for several hypotheses saves all but one; where it is cheap, ``batch`` 1 wastes nothing
    on the hypotheses a confident match makes unnecessary.
    """

    def __init__(self, lookup: Lookup, pairs: Pairs, hypotheses: tuple[tuple[float, float], ...], batch: int):
        self.lookup, self.pairs, self.hypotheses, self.batch = lookup, pairs, hypotheses, max(1, batch)
        self.fetched: dict[int, tuple[np.ndarray, np.ndarray, tuple]] = {}

    def votes(self, i: int, piles: int) -> _Votes | None:
        """The votes of hypothesis ``i``, fetching it and the next ``batch - 1`` first if not yet fetched."""
        if i not in self.fetched:
            group = range(i, min(i + self.batch, len(self.hypotheses)))
            needles = [_needles(self.pairs, *self.hypotheses[j]) for j in group]
            edges = np.cumsum([0] + [len(h) for h, _ in needles])
            hits = self.lookup(np.concatenate([h for h, _ in needles])) if edges[-1] else None
            split = [hits] * len(group)
            if hits is not None and len(group) > 1:  # one stable sort by hypothesis keeps each one's order
                of = np.searchsorted(edges[1:], hits[0], side="right")
                order = np.argsort(of.astype(np.uint8), kind="stable")
                qi, track, frame = (a[order] for a in hits)
                cuts = np.concatenate([[0], np.cumsum(np.bincount(of, minlength=len(group)))])
                split = [
                    (qi[a:b] - edges[n], track[a:b], frame[a:b]) for n, (a, b) in enumerate(zip(cuts[:-1], cuts[1:]))
                ]
            for n, j in enumerate(group):
                self.fetched[j] = (*needles[n], split[n])
        hashes, anchor, hits = self.fetched.pop(i)
        time_scale, freq_scale = self.hypotheses[i]
        return _vote_hashes(hashes, anchor, lambda _: hits, piles, time_scale, freq_scale)


def _vote_hashes(
    hashes: np.ndarray, anchor: np.ndarray, lookup: Lookup, piles: int, time_scale: float = 1.0, freq_scale: float = 1.0
) -> _Votes | None:
    """Hits of landmarks ``(hash, anchor frame)`` and their ``piles`` best per-track piles."""
    if len(hashes) == 0:
        return None
    qi, track, frame = lookup(hashes)
    a = anchor[qi]
    key = (track << 32) + (frame - a + _OFFSET_BIAS)
    keys, scores = best_offsets(key, TOLERANCE, top=piles, hashes=hashes[qi])
    found = [
        Pile(int(k >> 32), float((k & 0xFFFFFFFF) - _OFFSET_BIAS), int(s), time_scale, freq_scale)
        for k, s in zip(keys, scores)
    ]
    return _Votes(a, track, frame, found, anchor)


#: How far either side of a proposed placement :func:`lined_up` looks for the same track's best *other* offset.
ELSEWHERE_SECONDS = 10.0


def lined_up(
    pairs: Pairs,
    wide_pairs: Pairs,
    lookup: Lookup,
    tracks: np.ndarray,
    offsets: np.ndarray,
    window: int,
    elsewhere: int,
) -> np.ndarray:
    """For each placement (track index ``tracks[i]``, track frame ``offsets[i]`` at the clip's frame 0),
    ``(here, elsewhere)``: the most hits of the clip's landmarks lined up with that track at one offset
    (within :data:`TOLERANCE` frames) no more than ``window`` frames from ``offsets[i]``, and the most
    at any other offset of the track from ``2 * window`` to ``elsewhere`` frames away; under any
    hypothesis of :data:`STAGES` (``pairs`` for the plain one, ``wide_pairs`` for the rest, as
    :func:`search` reads them). Returns ``(placements, 2)`` counts.

    A hit is a distinct (hash, offset) pair: one hash found at two offsets within the tolerance (a
    landmark the track repeats a frame apart, or one found by two shifted analyses) counts twice,
    unlike :func:`~tuneseek.fingerprint.matcher.best_offsets`, which counts distinct hashes. The shipped
    :class:`~tuneseek.fingerprint.fusion.Corroboration` was fitted on these counts; counting distinct
    hashes instead (stricter against repeated drum sounds) would need it fitted again.

    This checks a placement another engine proposes: where the offset is given, a few landmarks
    lined up there are evidence, though far fewer than a search over every track and offset needs.
    The count elsewhere is the background a placement must stand above: music that shares drum
    sounds and a tempo with a track lines up a few landmarks with it at every beat, and a clip of
    the track itself at one offset only.
    """
    best = np.zeros((len(tracks), 2), np.int64)
    if len(tracks) == 0:
        return best
    for g, stage in enumerate(STAGES):
        for time_scale, freq_scale in stage.hypotheses:
            hashes, anchor = _needles(pairs if g == 0 else wide_pairs, time_scale, freq_scale)
            if len(hashes) == 0:
                continue
            qi, track, frame = lookup(hashes)
            asked = np.isin(track, tracks)  # one pass over every hit; then the few of the proposed tracks
            qi, track, frame = qi[asked], track[asked], frame[asked]
            for i, (t, o) in enumerate(zip(tracks, offsets)):
                mine = track == t
                away = frame[mine] - anchor[qi[mine]] - o
                keep = np.abs(away) <= elsewhere
                if not keep.any():
                    continue
                # one hit per (hash, offset); then, at each offset, the hits within TOLERANCE frames of it
                key = np.unique((hashes[qi[mine][keep]].astype(np.int64) << 32) | (away[keep] + elsewhere))
                at = np.sort((key & 0xFFFFFFFF) - elsewhere)
                counts = np.searchsorted(at, at + TOLERANCE, side="right") - np.searchsorted(at, at - TOLERANCE)
                here = np.abs(at) <= window
                best[i, 0] = max(best[i, 0], counts[here].max(initial=0))
                best[i, 1] = max(best[i, 1], counts[np.abs(at) > 2 * window].max(initial=0))
    return best


def match_landmarks(
    hashes: np.ndarray,
    anchor: np.ndarray,
    lookup: Lookup,
    k: int,
    fps: float,
    seconds: float,
    *,
    library_hours: float = CALIBRATION_LIBRARY_HOURS,
) -> list[Pile]:
    """Verified matches of landmarks already hashed (a stretch of an indexed track), as found, best first.

    Only the plain hypothesis: this is how the library finds tracks that share audio
    with one another, where nothing was sped up between the two.
    """
    votes = _vote_hashes(hashes, anchor, lookup, 2 * k + 2)
    if votes is None:
        return []
    judged = (
        _judged(_refine(votes, p, fps), 0, fps, seconds, library_hours)
        for p in votes.piles
        if p.score >= STAGES[0].min_score
    )
    return sorted((p for p in judged if p.confidence >= MIN_CONFIDENCE), key=lambda p: -p.score)[:k]


def _refine(votes: _Votes, pile: Pile, fps: float, audible: np.ndarray | None = None) -> Pile:
    """Fit a line through the hits around a pile: the exact time scale, where the clip starts, which part matched.

    A pile catches the hits of the part of the clip where the hypothesis's time
    scale and the true one agree within the tolerance; a straight line fitted
    through all hits of its track near it (iterating on the inliers) recovers the
    true scale, and so the offset of the clip's *start*, not of its middle. The
    inliers also say which stretch of the clip matched.
    """
    reach = FIT_SPREAD * (votes.anchor.max(initial=0) + 1) + TOLERANCE
    near = (votes.track == pile.track) & (np.abs(votes.frame - votes.anchor - pile.offset) <= reach)
    x, y = votes.anchor[near].astype(np.float64), votes.frame[near].astype(np.float64)
    a, b = _best_line(x, y, pile.offset)
    fitted = a is not None
    for _ in range(FIT_ROUNDS if fitted else 0):
        inliers = np.abs(y - (a * x + b)) <= FIT_RESIDUAL
        if inliers.sum() < FIT_MIN_HITS or np.ptp(x[inliers]) < 1:
            break
        a_new, b_new = np.polyfit(x[inliers], y[inliers], 1)
        if abs(a_new - 1.0) > FIT_SPREAD:
            break
        a, b = float(a_new), float(b_new)
    if not fitted:
        a, b = 1.0, pile.offset
        inliers = np.abs(y - x - b) <= TOLERANCE
    else:
        inliers = np.abs(y - (a * x + b)) <= FIT_RESIDUAL
    scale = float(pile.time_scale * a)
    span = float(np.ptp(x[inliers])) if inliers.any() else 0.0
    # within the fit's own scatter (a slope error that drifts less than the pile's tolerance
    # over the matched stretch, or FIT_PRECISION): keep the hypothesis, and the offset that
    # fits best at its slope
    if abs(a - 1.0) < max(FIT_PRECISION, TOLERANCE / max(span, 1.0)):
        scale = pile.time_scale
        if fitted:
            b = float(np.median(y[inliers] - x[inliers]))
    first, last, covered = _matched_span(x[inliers] / pile.time_scale, fps)  # in the clip's own frames
    first = _quiet_lead_in(votes.landmarks / pile.time_scale, max(0.0, -b / scale), first, last, fps, audible)
    return Pile(pile.track, b, pile.score, round(scale, 3), pile.freq_scale, first, last, covered)


def _best_line(x: np.ndarray, y: np.ndarray, offset: float) -> tuple[float | None, float]:
    """The line through the pile (hits within the tolerance of ``y = x + offset``) that holds most hits.

    Slopes across the accepted time-scale change are tried at once, each turned about the
    pile's middle; least squares alone, started from the pile, can settle on the pile's
    own short stretch when the hypothesis is a few per cent off. Returns ``(slope,
    intercept)``, or ``(None, offset)`` when there are too few hits to fit.
    """
    pile = np.abs(y - x - offset) <= TOLERANCE
    if np.count_nonzero(pile) < FIT_MIN_HITS // 2 or len(x) < FIT_MIN_HITS:
        return None, offset
    xc = float(np.median(x[pile]))
    yc = xc + offset
    slopes = 1.0 + np.linspace(-FIT_SPREAD, FIT_SPREAD, FIT_SLOPES)
    step = -(-len(x) // FIT_SAMPLE)  # a long clip's hits, thinned evenly: the table stays small
    dx, dy = (x - xc)[::step], (y - yc)[::step]
    held = (np.abs(dy[None, :] - slopes[:, None] * dx[None, :]) <= FIT_RESIDUAL).sum(axis=1)
    a = float(slopes[int(np.argmax(held))])
    return a, yc - a * xc


def _quiet_lead_in(
    landmarks: np.ndarray, start: float, first: float, last: float, fps: float, audible: np.ndarray | None
) -> float:
    """Where the track's audio begins in the clip: at ``start`` (where the alignment puts the track's
    start, or the clip's) when the clip is quiet but audible from there to the ``first`` matching
    frame (a soft intro: few landmarks to match), else at ``first`` (something else plays there,
    or nothing: silence is not the track). Within a second of each other, the alignment's
    ``start`` is the more precise of the two.
    """
    if first - start <= fps:
        return start
    dense = np.count_nonzero((landmarks >= first) & (landmarks <= last)) / max(1.0, last - first)
    gap = np.count_nonzero((landmarks >= start) & (landmarks < first)) / (first - start)
    if gap >= QUIET_SHARE * dense:
        return first
    if audible is not None and np.mean(audible[int(start) : max(int(start) + 1, int(first))]) < 0.5:
        return first
    return start


def audible_frames(clip: np.ndarray, *, params: FingerprintParams = DEFAULT) -> np.ndarray:
    """Per analysis frame of ``clip``, whether it holds any sound (peak above -80 dBFS): silence is not music."""
    n = len(clip) // params.hop
    return np.abs(clip[: n * params.hop]).reshape(n, params.hop).max(axis=1, initial=0.0) > SILENCE_LEVEL


def _matched_span(frames: np.ndarray, fps: float) -> tuple[float, float, int]:
    """First and last clip frame of the stretch where aligned hits are dense, and how many seconds hold any.

    Chance hits line up with a true alignment now and then outside the matching
    stretch too (noise before the song, another song after it); a second counts as
    matching when it holds at least :data:`SPAN_DENSITY` of the hits of the median
    matching second.
    """
    if len(frames) == 0:
        return 0.0, 0.0, 0
    second = (frames / fps).astype(np.int64)
    counts = np.bincount(second)
    busy = np.flatnonzero(counts)
    dense = busy[counts[busy] >= max(2.0, SPAN_DENSITY * np.median(counts[busy]))]
    if len(dense) == 0:
        dense = busy
    inside = (second >= dense[0]) & (second <= dense[-1])
    held = busy[(busy >= dense[0]) & (busy <= dense[-1])]
    return float(frames[inside].min()), float(frames[inside].max()), len(held)


def search(
    pairs: Pairs,
    lookup: Lookup,
    *,
    k: int = 5,
    fps: float = DEFAULT.frames_per_second,
    clip_seconds: float = 10.0,
    min_confidence: float | None = None,
    exhaustive: bool = False,
    wide_pairs: Pairs | None = None,
    audible: np.ndarray | None = None,
    library_hours: float = CALIBRATION_LIBRARY_HOURS,
    batch: int = 1,
) -> list[Pile]:
    """Matches of up to ``k`` distinct tracks, best first; empty for "no match".

    Stages run in order until one yields a pile that passes verification (its
    :func:`confidence` at least ``min_confidence``, by default :data:`MIN_CONFIDENCE`);
    inside a stage, hypotheses run likeliest first until one gives a pile of the
    stage's ``sure_score`` that passes verification (a high pile that does not, a tempo
    hypothesis catching part of a sped-up clip in a large library, must not end the
    search before the hypothesis that explains the whole clip). Each pile's time scale and start are
    refined (see :func:`_refine`) before it is judged; a match found without a pitch
    change whose time scale turns out changed is also tried as a speed change, and
    the better explanation kept. ``lookup(hashes)`` returns every live posting of the
    hashes as ``(query index, track index, frame within the track)``.

    The first stage searches ``pairs``, later ones ``wide_pairs`` when given (the
    unshifted analysis: see :func:`clip_analyses`); ``audible`` (see :func:`audible_frames`)
    tells a quiet passage of the track from silence. With ``exhaustive``, every stage
    runs to the end and every judged pile is returned whatever its confidence (for
    calibrating :func:`confidence`). ``batch`` hypotheses are looked up in one call (see
    :class:`_Prefetch`): the answer is the same whatever it is.
    """
    floor = MIN_CONFIDENCE if min_confidence is None else min_confidence
    judged: list[Pile] = []
    for g, stage in enumerate(STAGES):
        best: dict[int, Pile] = {}
        these = pairs if g == 0 or wide_pairs is None else wide_pairs
        fetch = _Prefetch(lookup, these, stage.hypotheses, batch)
        for i in range(len(stage.hypotheses)):
            votes = fetch.votes(i, 2 * k + 2)
            if votes is None:
                continue
            for pile in votes.piles:
                if pile.score >= stage.min_score and (pile.track not in best or pile.score > best[pile.track].score):
                    best[pile.track] = _judged(_refine(votes, pile, fps, audible), g, fps, clip_seconds, library_hours)
            if not exhaustive and any(c.score >= stage.sure_score and c.confidence >= floor for c in best.values()):
                break
        if exhaustive:
            judged.extend(best.values())
            continue
        found = sorted((p for p in best.values() if p.confidence >= floor), key=lambda c: -c.score)[:k]
        if found:
            found[0] = _rescored(these, lookup, found[0], fps, clip_seconds, audible, library_hours)
            return found
    return judged


def _judged(pile: Pile, stage: int, fps: float, clip_seconds: float, library_hours: float) -> Pile:
    return replace(
        pile, stage=stage, confidence=confidence(pile, stage, fps, clip_seconds, library_hours=library_hours)
    )


def _rescored(
    pairs: Pairs,
    lookup: Lookup,
    pile: Pile,
    fps: float,
    clip_seconds: float,
    audible: np.ndarray | None,
    library_hours: float,
) -> Pile:
    """``pile`` re-scored at its refined time scale, as a speed change (pitch and tempo together) and,
    when it was found with the pitch kept, as a tempo change; the best explanation is kept.

    A pile caught by a hypothesis a step away from the truth (the plain one for a clip
    10 % faster, or a speed one step off) holds only the hits of the part of the clip
    where the two agree; at the fitted scale every hit lines up.
    """
    scale = pile.time_scale
    if abs(scale - 1.0) < MIN_SPEED_CHANGE:
        return pile
    tries = [(scale, scale)] if abs(scale - pile.freq_scale) >= FIT_PRECISION else []
    if pile.freq_scale == 1.0:
        tries.append((scale, 1.0))
    best = pile
    for time_scale, freq_scale in tries:
        votes = _vote(pairs, lookup, time_scale, freq_scale, 4)
        if votes is None:
            continue
        for other in votes.piles:
            if other.track == pile.track and other.score > best.score:
                best = _judged(_refine(votes, other, fps, audible), pile.stage, fps, clip_seconds, library_hours)
                break
    return best


def features(pile: Pile, fps: float, clip_seconds: float) -> np.ndarray:
    """What verification weighs (see :func:`confidence`).

    - the score, on a log scale;
    - the score per second of the matched stretch: a true match lines up landmarks
      all along, a chance alignment a few here and there;
    - the coverage: the share of the matched stretch's seconds holding aligned hits
      (Panako's check);
    - the clip's length, on a log scale (a longer clip offers chance more hashes).
    """
    seconds = max(1.0, (pile.last - pile.first) / fps + 1.0)
    return np.array(
        [
            np.log(max(pile.score, 1)),
            np.log(max(pile.score, 1) / seconds),
            min(1.0, pile.covered / np.ceil(seconds)),
            np.log(max(clip_seconds, 1.0)),
        ]
    )


def confidence(
    pile: Pile, stage: int, fps: float, clip_seconds: float, *, library_hours: float = CALIBRATION_LIBRARY_HOURS
) -> float:
    """Estimated probability that ``pile`` is a true match: a logistic model of its :func:`features`.

    The weights were fitted on the plain hypothesis's piles of clips of half the
    benchmark library's tracks (true matches, degraded every way the benchmark degrades
    them) against clips of one source of unrelated music, and checked on the other
    half and on three other sources (``benchmarks/calibrate_identify.py``; the
    reliability table is in benchmarks/RESULTS.md). A pile of the wide stage, which
    tries many hypotheses and so gives chance many tries, pays :data:`WIDE_STAGE_PENALTY`
    in log-odds. So does a library larger than the one the weights were fitted on: chance
    has as many more places to line up, and the odds of the best chance alignment grow
    with their number (a 10 h library pays ln(10 / 2.36) = 1.4).
    """
    z = CONFIDENCE_BIAS + float(np.dot(CONFIDENCE_WEIGHTS, features(pile, fps, clip_seconds)))
    if stage > 0:
        z -= WIDE_STAGE_PENALTY
    z -= max(0.0, float(np.log(max(library_hours, 1e-9) / CALIBRATION_LIBRARY_HOURS)))
    return float(1.0 / (1.0 + np.exp(-z)))
