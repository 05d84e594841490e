"""Monitoring a recording of any length: a timeline of which track plays when, and the unknown stretches.

The recording is read as a stream and cut into overlapping windows; each window is
identified on its own (the per-track voting finds every track a window holds, and
which part of the window each covers). Consecutive windows that agree on a track
*and* on its alignment (the track time at the recording's start, given the speed)
join into one :class:`Segment`; what no segment covers is reported as unknown.
Memory holds one window of samples and the segments still open, whatever the
recording's length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from tuneseek.identifier import Candidate
from tuneseek.results import Duplicate, Match, Segment, TrackInfo

#: seconds of audio identified at once, and between window starts
WINDOW_SECONDS = 10.0
HOP_SECONDS = 5.0
#: candidates sought per window (a window may hold the end of one track and the start of the next)
WINDOW_CANDIDATES = 3
#: two windows agree on a track when their alignments differ by less than this (seconds of track time)
ALIGN_TOLERANCE = 1.0
#: a segment stays open across this many windows without evidence (a quiet or noisy passage)
MAX_MISSED_WINDOWS = 1
#: a segment shorter than this (or seen in one window only) must be at least this sure,
#: else it is taken for chance
MIN_SEGMENT_SECONDS = 5.0
SINGLE_WINDOW_CONFIDENCE = 0.999
#: gaps between segments shorter than this are not reported as unknown
MIN_UNKNOWN_SECONDS = 1.0


@dataclass
class _Run:
    """A segment being built: a track seen in consecutive windows at one alignment."""

    track_id: int
    align: float  # track time at recording time 0, given the rate
    rate: float  # track seconds per recording second
    start: float
    end: float
    last_window: int
    best: Candidate
    windows: int = 1


def windows(
    chunks: Iterable[np.ndarray], *, sr: int, window: float = WINDOW_SECONDS, hop: float = HOP_SECONDS
) -> Iterator[tuple[float, float, np.ndarray]]:
    """``(start, end seconds, samples)`` of overlapping windows over a stream of sample chunks.

    Only one window (plus one chunk) is held at a time. The last window ends with
    the recording and may be shorter.
    """
    size, step = int(round(window * sr)), int(round(hop * sr))
    buf = np.zeros(0, np.float32)
    at = 0  # recording sample of buf[0]
    for chunk in chunks:
        buf = np.concatenate([buf, np.asarray(chunk, np.float32)])
        while len(buf) >= size:
            yield at / sr, (at + size) / sr, buf[:size]
            buf = buf[step:]
            at += step
    if len(buf) > 0 and (at == 0 or len(buf) > size - step):
        yield at / sr, (at + len(buf)) / sr, buf


def timeline(
    window_stream: Iterable[tuple[float, float, object]],
    identify: Callable[[object], list[Candidate]],
    track_of: Callable[[int], object],
) -> Iterator[Segment]:
    """Segments of the recording in order, unknown stretches included, as the windows are identified.

    ``window_stream`` gives ``(start, end seconds, window)`` (see :func:`windows`: the
    window is samples; any other form ``identify`` understands will do);
    ``identify(window)`` a window's candidates; ``track_of(track_id)`` the library's
    track for a candidate.
    """
    open_runs: list[_Run] = []
    done: list[_Run] = []
    recent: deque[_Run] = deque(maxlen=8)  # the last runs given out, for _shadowed
    covered = 0.0  # the recording is accounted for up to here
    end = 0.0
    index = -1
    for index, (t0, end, window) in enumerate(window_stream):  # noqa: B007 - `end` is the recording's end after the loop
        for c in identify(window):
            _extend(open_runs, c, t0, index)
        for run in [r for r in open_runs if index - r.last_window > MAX_MISSED_WINDOWS]:
            open_runs.remove(run)
            if _credible(run) and not _shadowed(run, [*open_runs, *done, *recent]):
                done.append(run)
        earliest_open = min((r.start for r in open_runs), default=np.inf)
        for run in sorted((r for r in done if r.start < earliest_open), key=lambda r: r.start):
            done.remove(run)
            recent.append(run)
            seg = _segment(run, track_of)
            yield from _with_gap(covered, seg)
            covered = max(covered, seg.end)
    last = [r for r in open_runs if _credible(r, last=index)]
    done.extend(r for r in last if not _shadowed(r, [*last, *done, *recent]))
    for run in sorted(done, key=lambda r: r.start):
        seg = _segment(run, track_of)
        yield from _with_gap(covered, seg)
        covered = max(covered, seg.end)
    if index >= 0 and end - covered >= MIN_UNKNOWN_SECONDS:
        yield Segment(covered, end)


def _extend(runs: list[_Run], c: Candidate, t0: float, index: int) -> None:
    """Join candidate ``c`` of the window starting at ``t0`` to the run it continues, or start a run."""
    rate = c.speed * c.tempo
    align = c.offset - t0 * rate  # track time at recording time 0
    start, stop = t0 + c.clip_start, t0 + c.clip_end
    for run in runs:
        if run.track_id == c.track_id and abs(run.align - align) < ALIGN_TOLERANCE and run.last_window < index:
            run.start, run.end = min(run.start, start), max(run.end, stop)
            run.last_window = index
            run.windows += 1
            if c.score > run.best.score:
                run.best = c
            return
    runs.append(_Run(c.track_id, align, rate, start, stop, index, c))


def _credible(run: _Run, last: int | None = None) -> bool:
    """Whether a run is evidence of a track rather than a chance alignment.

    Overlapping windows see the same stretch twice, so two windows agreeing on a short
    stretch are one piece of evidence: a run must span at least :data:`MIN_SEGMENT_SECONDS`
    (then windows that overlap only partly agree), or be very sure on its own, or be
    all the recording there is (a single window).
    """
    long_enough = run.windows > 1 and run.end - run.start >= MIN_SEGMENT_SECONDS
    return long_enough or run.best.confidence >= SINGLE_WINDOW_CONFIDENCE or last == 0


def _shadowed(run: _Run, others: Iterable[_Run]) -> bool:
    """Whether a stronger run of the same track covers most of ``run`` at another alignment.

    A piece that repeats itself matches a stretch of the recording at two places of the
    track; the place with more evidence is the one that plays.
    """
    span = run.end - run.start
    return any(
        o is not run
        and o.track_id == run.track_id
        and (o.windows, o.best.score) > (run.windows, run.best.score)
        and min(o.end, run.end) - max(o.start, run.start) >= 0.5 * span
        for o in others
    )


def _segment(run: _Run, track_of: Callable[[int], object]) -> Segment:
    b = run.best
    return Segment(
        start=round(run.start, 2),
        end=round(run.end, 2),
        track=track_of(run.track_id),
        track_start=max(0.0, run.align + run.start * run.rate),
        track_end=run.align + run.end * run.rate,
        score=b.score,
        confidence=b.confidence,
        speed=b.speed,
        tempo=b.tempo,
        coverage=b.coverage,
        windows=run.windows,
    )


def _with_gap(covered: float, seg: Segment) -> Iterator[Segment]:
    if seg.start - covered >= MIN_UNKNOWN_SECONDS:
        yield Segment(round(covered, 2), seg.start)
    yield seg


def longest_per_track(segments: Iterable[Segment], k: int) -> list[Match]:
    """The ``k`` best matches of a monitored recording: each track's longest segment, most confident first."""
    best: dict[int, Segment] = {}
    for seg in segments:
        if seg.track is not None:
            held = best.get(seg.track.id)
            if held is None or seg.end - seg.start > held.end - held.start:
                best[seg.track.id] = seg
    ranked = sorted(best.values(), key=lambda s: (-s.confidence, -(s.end - s.start)))[:k]
    return [
        Match(
            s.track,
            s.track_start - s.start * s.speed * s.tempo,
            s.score,
            s.confidence,
            s.speed,
            s.tempo,
            s.start,
            s.end,
            s.coverage,
        )
        for s in ranked
    ]


def duplicates(index, track_of: Callable[[int], TrackInfo]) -> list[Duplicate]:
    """Tracks of ``index`` (a :class:`~tuneseek.fingerprint.index.LandmarkIndex`) that hold the same audio.

    Each track's own landmarks are matched against the rest of the index window by window
    (no audio is decoded), and agreeing windows are joined as in :func:`timeline`; every pair
    of tracks is reported once, with its longest shared span, longest first.
    """
    fps = index.params.frames_per_second
    size, step = int(WINDOW_SECONDS * fps), int(HOP_SECONDS * fps)
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
            return [
                c for c in index.landmark_candidates(h, anchor, seconds, WINDOW_CANDIDATES) if c.track_id != track_id
            ]

        for seg in timeline(stretches(), identify, track_of):
            if seg.track is None:
                continue
            dup = Duplicate.of(track_of(track_id), seg)
            key = (dup.track.id, dup.other.id)
            if key not in found or dup.seconds > found[key].seconds:
                found[key] = dup
    return sorted(found.values(), key=lambda d: (-d.seconds, d.track.id, d.other.id))
