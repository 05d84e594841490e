"""What tuneseek records about an audio file when it indexes it.

Shared by the indexer (which gathers it) and the catalogue (which stores it with
the track), so that the two agree field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class FileFacts:
    """Where a file is, what its bytes hash to, and what its header says."""

    path: str
    content_hash: str
    size: int
    mtime_ns: int
    duration: float
    sample_rate: int
    channels: int
    title: str | None
    artist: str | None

    def facts(self) -> dict:
        """Just the :class:`FileFacts` fields, as a dict (also for subclasses)."""
        return {f.name: getattr(self, f.name) for f in fields(FileFacts)}
