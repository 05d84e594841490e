"""What the library answers with: the public result types, each with one ``to_dict()``.

Every face prints these and nothing else: the command line's ``--json`` and the HTTP API give
exactly ``to_dict()``, so a key means the same everywhere. A result that names a track says
``track_id``, ``track`` (its name) and ``path``; seconds are rounded to what a person can hear
(milliseconds for offsets, centiseconds for spans) and probabilities to four places.

These are plain data: they import nothing of the engines or stores, and anything may import them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

__all__ = [
    "TrackInfo",
    "Match",
    "Segment",
    "Duplicate",
    "Similar",
    "SearchResult",
    "Tags",
    "Embedding",
    "AddReport",
    "LibraryStats",
    "track_time",
    "DUPLICATE_WHOLE",
    "DUPLICATE_SLACK",
]


def track_time(offset: float, clip_time: float, speed: float, tempo: float) -> float:
    """The track time at ``clip_time`` seconds into a clip whose first sample is at ``offset`` in
    the track and which runs ``speed * tempo`` times faster (never before the track's start)."""
    return max(0.0, offset + clip_time * speed * tempo)


@dataclass(frozen=True)
class TrackInfo:
    """A track of the library as a person sees it: its file, what its header says, when it came in."""

    id: int
    path: str
    duration: float  # seconds
    sample_rate: int
    channels: int
    title: str | None
    artist: str | None
    content_hash: str  # BLAKE2 of the file's bytes: the same file elsewhere is the same track
    size: int  # bytes
    mtime_ns: int
    n_landmarks: int
    added_at: float  # Unix time

    @property
    def name(self) -> str:
        """What to call the track: its title (and artist) if tagged, else its file name."""
        if self.title:
            return f"{self.artist} - {self.title}" if self.artist else self.title
        return Path(self.path).name

    @classmethod
    def of(cls, record) -> TrackInfo:
        """The public fields of any record that has them (the catalogue's row holds more)."""
        return cls(**{f.name: getattr(record, f.name) for f in fields(cls)})

    def to_dict(self) -> dict:
        return {
            "track_id": self.id,
            "track": self.name,
            "path": self.path,
            "duration": round(self.duration, 3),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "title": self.title,
            "artist": self.artist,
            "content_hash": self.content_hash,
            "size": self.size,
            "landmarks": self.n_landmarks,
            "added_at": round(self.added_at, 3),
        }


def _track_keys(track: TrackInfo | None) -> dict:
    """The three keys by which every result names its track."""
    if track is None:
        return {"track_id": None, "track": None, "path": None}
    return {"track_id": track.id, "track": track.name, "path": track.path}


@dataclass(frozen=True)
class Match:
    """Where a clip comes from: the track, where in it, which part of the clip, how sure."""

    track: TrackInfo
    offset: float  # seconds into the track at the clip's start; negative when the clip starts before the track
    score: int  # landmarks of the clip aligned with the track at that offset
    confidence: float  # 0..1: estimated probability that the match is right
    speed: float  # playback-speed factor of the clip relative to the track (1.0 = as indexed)
    tempo: float  # tempo factor with pitch kept (1.0 = as indexed)
    clip_start: float = 0.0  # seconds into the clip where the track's audio starts
    clip_end: float = 0.0  # ... and where it stops matching (the clip's end, or the track's)
    coverage: float = 1.0  # share of the seconds between clip_start and clip_end with aligned landmarks

    @property
    def track_start(self) -> float:
        """Seconds into the track where the matched audio begins (at :attr:`clip_start` in the clip)."""
        return track_time(self.offset, self.clip_start, self.speed, self.tempo)

    def to_dict(self) -> dict:
        return {
            **_track_keys(self.track),
            "offset": round(self.offset, 3),
            "track_start": round(self.track_start, 3),
            "clip_start": round(self.clip_start, 2),
            "clip_end": round(self.clip_end, 2),
            "score": self.score,
            "confidence": round(self.confidence, 4),
            "coverage": round(self.coverage, 3),
            "speed": self.speed,
            "tempo": self.tempo,
        }


@dataclass(frozen=True)
class Segment:
    """A stretch of a monitored recording: a track (with the span of it that plays) or, with ``track`` None, unknown."""

    start: float  # seconds into the recording
    end: float
    track: TrackInfo | None = None
    track_start: float | None = None  # seconds into the track at ``start``
    track_end: float | None = None
    score: int = 0  # the best window's score
    confidence: float = 0.0  # the best window's confidence
    speed: float = 1.0
    tempo: float = 1.0
    coverage: float = 0.0  # the best window's share of seconds with aligned landmarks
    windows: int = 0  # windows that found it

    def to_dict(self) -> dict:
        out = {"start": round(self.start, 2), "end": round(self.end, 2), **_track_keys(self.track)}
        if self.track is not None:
            out.update(
                track_start=round(self.track_start, 2),
                track_end=round(self.track_end, 2),
                score=self.score,
                confidence=round(self.confidence, 4),
                speed=self.speed,
                tempo=self.tempo,
                windows=self.windows,
            )
        return out


#: a duplicate span covering this share of a track (less the slack, in seconds) covers all of it
DUPLICATE_WHOLE = 0.9
DUPLICATE_SLACK = 3.0


@dataclass(frozen=True)
class Duplicate:
    """Two library tracks that hold the same audio, and where: ``track`` (the older) from ``start`` to
    ``end`` is ``other`` from ``other_start`` to ``other_end`` (seconds)."""

    track: TrackInfo
    start: float
    end: float
    other: TrackInfo
    other_start: float
    other_end: float
    score: int
    confidence: float

    @classmethod
    def of(cls, queried: TrackInfo, seg: Segment) -> Duplicate:
        """From a monitored segment of ``queried``'s own landmarks that matched ``seg.track``; older track first."""
        if queried.id < seg.track.id:
            return cls(
                queried, seg.start, seg.end, seg.track, seg.track_start, seg.track_end, seg.score, seg.confidence
            )
        return cls(seg.track, seg.track_start, seg.track_end, queried, seg.start, seg.end, seg.score, seg.confidence)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def kind(self) -> str:
        """ "same recording" when the span is (nearly) all of both, "contained" when all of one, else "shared"."""
        whole = [self.seconds >= DUPLICATE_WHOLE * t.duration - DUPLICATE_SLACK for t in (self.track, self.other)]
        return "same recording" if all(whole) else "contained" if any(whole) else "shared"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            **_track_keys(self.track),
            "start": round(self.start, 2),
            "end": round(self.end, 2),
            "other_id": self.other.id,
            "other": self.other.name,
            "other_path": self.other.path,
            "other_start": round(self.other_start, 2),
            "other_end": round(self.other_end, 2),
            "score": self.score,
            "confidence": round(self.confidence, 4),
        }


@dataclass(frozen=True)
class Similar:
    """One track that sounds like the query (or fits a description)."""

    track: TrackInfo
    score: float  # cosine similarity -1..1 (zero-shot text search: standard deviations of the tags)
    time: float | None = None  # clip queries: start of the best-matching segment in the track, in seconds

    def to_dict(self) -> dict:
        out = {**_track_keys(self.track), "score": round(self.score, 4)}
        if self.time is not None:
            out["time"] = round(self.time, 2)
        return out


@dataclass(frozen=True)
class MapPoint:
    """Where one track lies on the library's embedding map (two coordinates of no unit)."""

    track: TrackInfo
    x: float
    y: float

    def to_dict(self) -> dict:
        return {**_track_keys(self.track), "x": round(self.x, 4), "y": round(self.y, 4)}


@dataclass(frozen=True)
class SearchResult:
    """Tracks for a description, best first, and how they were found."""

    query: str  # as the text model read it (blanks collapsed, cut when too long)
    mode: str  # "zero-shot" or "trained"
    model: str  # what ranked them, for a person
    hits: list[Similar]
    explanation: str  # zero-shot: the tags the query drove; trained: ""
    notices: tuple[str, ...]  # for the person who typed the query (cut, non-English script)

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "mode": self.mode,
            "model": self.model,
            "results": [h.to_dict() for h in self.hits],
            "explanation": self.explanation,
            "notices": list(self.notices),
        }


def _r4(x: float) -> float:
    return round(float(x), 4)


@dataclass(frozen=True)
class Tags:
    """Tag probabilities of a file or track: overall, and per model window (the tag curve; empty for stored tags)."""

    path: str
    model: str
    labels: tuple[str, ...]
    probs: np.ndarray  # (tags,), mean over the windows
    times: np.ndarray  # (windows,), start of each window in seconds
    curve: np.ndarray  # (windows, tags)

    def top(self, n: int) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs)[:n]
        return [(self.labels[i], float(self.probs[i])) for i in order]

    def to_dict(self, over_time: bool = False) -> dict:
        out = {"file": self.path, "model": self.model, "tags": dict(zip(self.labels, map(_r4, self.probs)))}
        if over_time:
            out["times"] = [round(float(t), 3) for t in self.times]
            out["curve"] = {label: [_r4(v) for v in self.curve[:, i]] for i, label in enumerate(self.labels)}
        return out


@dataclass(frozen=True)
class Embedding:
    """Vectors of one layer for windows of a file (or one pooled vector)."""

    path: str
    window: float
    hop: float
    layer: str
    times: np.ndarray  # (frames,), window starts in seconds; empty when pooled
    vectors: np.ndarray  # (frames, dims), or (1, dims) when pooled

    def to_dict(self) -> dict:
        return {
            "file": self.path,
            "window": self.window,
            "hop": self.hop,
            "layer": self.layer,
            "times": [round(float(t), 3) for t in self.times],
            "vectors": [[_r4(v) for v in row] for row in self.vectors],
        }


@dataclass
class AddReport:
    """What ``add`` did, file by file."""

    added: list[TrackInfo] = field(default_factory=list)
    reindexed: list[TrackInfo] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    moved: list[TrackInfo] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (skipped path, indexed twin)
    failed: list[tuple[str, str]] = field(default_factory=list)
    analysed: list[TrackInfo] = field(default_factory=list)  # already indexed; given tags/embeddings they lacked
    analysis_failed: list[tuple[str, str]] = field(default_factory=list)  # indexed, but without tags/embeddings
    analysis_skipped: str | None = None  # why no file got musicnn tags/embeddings, when none could
    models_skipped: list[tuple[str, str]] = field(
        default_factory=list
    )  # (trained model's extractor, why it did not run)
    audio_seconds: float = 0.0
    elapsed: float = 0.0

    def summary(self) -> str:
        parts = [f"{len(self.added)} added"]
        for name, items in (
            ("re-indexed", self.reindexed),
            ("unchanged", self.unchanged),
            ("moved", self.moved),
            ("given tags and embeddings", self.analysed),
            ("duplicates skipped", self.duplicates),
            ("failed", self.failed),
            ("without tags and embeddings", self.analysis_failed),
        ):
            if items:
                parts.append(f"{len(items)} {name}")
        speed = (
            f", {self.audio_seconds / self.elapsed:.0f}x real time" if self.elapsed > 0 and self.audio_seconds else ""
        )
        return f"{', '.join(parts)} ({self.audio_seconds / 3600:.2f} h of audio in {self.elapsed:.1f} s{speed})"

    def to_dict(self) -> dict:
        return {
            "added": [t.to_dict() for t in self.added],
            "reindexed": [t.to_dict() for t in self.reindexed],
            "unchanged": list(self.unchanged),
            "moved": [t.to_dict() for t in self.moved],
            "duplicates": [{"path": p, "twin": twin} for p, twin in self.duplicates],
            "failed": [{"path": p, "reason": why} for p, why in self.failed],
            "analysed": [t.to_dict() for t in self.analysed],
            "analysis_failed": [{"path": p, "reason": why} for p, why in self.analysis_failed],
            "analysis_skipped": self.analysis_skipped,
            "models_skipped": [{"extractor": ex, "reason": why} for ex, why in self.models_skipped],
            "audio_seconds": round(self.audio_seconds, 3),
            "elapsed": round(self.elapsed, 3),
        }


@dataclass(frozen=True)
class LibraryStats:
    """How big a library is and what it holds."""

    path: str
    tracks: int
    audio_hours: float
    landmarks: int
    segments: int
    index_bytes: int
    catalog_bytes: int
    tagged: int  # tracks with tags
    embedded: int  # tracks with musicnn embeddings
    spaces: dict[str, int] = field(default_factory=dict)  # embedding space -> tracks embedded in it
    models: dict[str, str] = field(default_factory=dict)  # trained model's extractor -> its run folder
    #: a learned fingerprint ("fingerprint:RUN") -> (tracks with its vectors, bytes of its vectors in the catalogue)
    fingerprints: dict[str, tuple[int, int]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)
