"""Scoring identification on a query set (the origin/sample layout).

Every sample is identified against a library holding the split's origins (anything that answers
as :class:`tuneseek.Library` does: :class:`Identifies`); a
sample whose label has an origin is correct when the top match is one of that
label's tracks, and a sample without one (music not in the library) is a false
positive when anything matches at all. A sample that cannot be identified (a file that
does not decode, too short, silent) counts as an error, and the report says why.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from tuneseek.data.querysets import QuerySet, Sample
from tuneseek.errors import AudioError, TuneseekError
from tuneseek.results import Match, TrackInfo

#: An offset counts as right within this many seconds of the true start.
OFFSET_TOLERANCE = 0.5


class Identifies(Protocol):
    """What is identified against: a :class:`tuneseek.Library`, or anything that answers as it does."""

    def candidates(self, clip: str | Path, *, k: int = 5) -> list[Match]:
        """Up to ``k`` matches of the clip, best first (no match: an empty list)."""
        ...

    def tracks(self) -> list[TrackInfo]:
        """Every track held, with its path (to tell which origin each is)."""
        ...


@dataclass(frozen=True)
class QueryResult:
    sample: Sample
    matches: list[Match]
    latency: float  # seconds, decoding included
    error: str | None = None  # why the sample could not be identified (one line, without its path)

    @property
    def top(self) -> Match | None:
        return self.matches[0] if self.matches else None


@dataclass(frozen=True)
class IdentifyReport:
    results: list[QueryResult]
    metrics: dict

    def to_dict(self) -> dict:
        return dict(self.metrics)


def _track_labels(library: Identifies, qs: QuerySet) -> dict[int, str]:
    """Track id -> label, matching files by their real path (origins are often symlinks)."""
    by_path = {os.path.realpath(o.path): o.label for o in qs.origins}
    labels = {}
    for t in library.tracks():
        real = os.path.realpath(t.path)
        if real in by_path:
            labels[t.id] = by_path[real]
    return labels


def score(results: list[QueryResult], labels: dict[int, str]) -> dict:
    """Top-1/top-5 accuracy, offset accuracy, false positives and latency over ``results``.

    Clips of a track the indexer refused (a silent file, say) are left out of the
    accuracy and counted apart: the library cannot know a track it was never given.
    ``errors`` counts the other samples that could not be identified, and ``failed``
    lists them: ``{"sample": path, "error": reason}`` each.
    """
    indexed = set(labels.values())
    pos = [r for r in results if r.sample.in_library and r.sample.label in indexed]
    neg = [r for r in results if not r.sample.in_library]
    unindexed = [r for r in results if r.sample.in_library and r.sample.label not in indexed]

    def right(m: Match | None, r: QueryResult) -> bool:
        return m is not None and labels.get(m.track.id) == r.sample.label

    top1 = [r for r in pos if right(r.top, r)]
    top5 = [r for r in pos if any(right(m, r) for m in r.matches[:5])]
    offset_ok = [r for r in top1 if abs(r.top.offset - r.sample.start) <= OFFSET_TOLERANCE]
    offset_err = [abs(r.top.offset - r.sample.start) for r in top1]
    lat = np.array([r.latency for r in results]) * 1000
    return {
        "queries": len(results),
        "in_library": len(pos),
        "not_in_library": len(neg),
        "origin_not_indexed": len(unindexed),
        "errors": sum(r.error is not None for r in pos + neg),
        "failed": [{"sample": str(r.sample.path), "error": r.error} for r in pos + neg if r.error is not None],
        "top1": len(top1) / len(pos) if pos else None,
        "top5": len(top5) / len(pos) if pos else None,
        "offset_within_0.5s": len(offset_ok) / len(pos) if pos else None,
        "median_offset_error_s": float(np.median(offset_err)) if offset_err else None,
        "false_positive_rate": sum(r.top is not None for r in neg) / len(neg) if neg else None,
        "latency_ms_mean": float(lat.mean()) if len(lat) else None,
        "latency_ms_median": float(np.median(lat)) if len(lat) else None,
        "latency_ms_p95": float(np.percentile(lat, 95)) if len(lat) else None,
    }


def evaluate_identify(
    library: Identifies,
    qs: QuerySet,
    *,
    on_result: Callable[[QueryResult], None] | None = None,
    engine: str | None = None,
) -> IdentifyReport:
    """Identify every sample of ``qs`` in ``library`` (which must hold ``qs.origins``), by its ``engine``
    when one is named (a :class:`tuneseek.Library`'s "landmarks", "learned" or "fused")."""
    ask = {} if engine is None else {"engine": engine}
    results = []
    for sample in qs.samples:
        t0 = time.perf_counter()
        try:
            matches, error = library.candidates(sample.path, k=5, **ask), None
        except AudioError as e:
            matches, error = [], e.reason  # the report names the sample itself
        except TuneseekError as e:
            matches, error = [], str(e)
        result = QueryResult(sample, matches, time.perf_counter() - t0, error)
        results.append(result)
        if on_result:
            on_result(result)
    return IdentifyReport(results, score(results, _track_labels(library, qs)))
