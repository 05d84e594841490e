"""The identification seam: what any identifier (landmarks today, a learned fingerprint later) promises.

An identifier turns a clip into :class:`Candidate` tracks with the evidence for each; the
library turns candidates into the :class:`~tuneseek.results.Match` results people see. A
second identifier plugs in beside the first by implementing :class:`Identifier`; their
candidates can then be fused per track.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tuneseek.results import track_time


@dataclass(frozen=True)
class Candidate:
    """One track a clip may come from, and where.

    Times are in seconds. ``offset`` is the track time at the clip's first sample:
    negative when the clip starts before the track (a recording that begins with
    noise, silence or other music). ``clip_start`` and ``clip_end`` delimit the part
    of the clip that holds the track, as far as the evidence shows.
    """

    track_id: int
    offset: float
    clip_start: float
    clip_end: float
    score: int  # distinct aligned landmarks, less what the surroundings of the alignment hold
    confidence: float  # estimated probability that this is a true match
    speed: float  # playback-speed factor (pitch and tempo together) of the clip relative to the track
    tempo: float  # tempo factor with pitch kept
    coverage: float  # share of the clip's seconds with aligned landmarks, within [clip_start, clip_end]

    @property
    def track_start(self) -> float:
        """Track time at :attr:`clip_start`: where in the track the matched audio begins."""
        return track_time(self.offset, self.clip_start, self.speed, self.tempo)


class Identifier(Protocol):
    """Finds the tracks a clip comes from, over the tracks the catalogue holds.

    Writes happen inside the catalogue transaction that inserts or deletes the tracks, so an
    identifier's data and the catalogue never disagree after a commit (or a crash). What a
    track's audio becomes (landmarks, learned vectors) is computed beforehand, by the indexing
    workers; ``add`` only stores it.
    """

    name: str  # the catalogue's extractor name for what it stores ("landmarks")
    version: str  # changes when stored data of an older version cannot be queried
    sample_rate: int  # the rate clips must be given at (mono float32)

    def add(self, tracks: Sequence[tuple[int, Any]]) -> None:
        """Index ``(track id, what the workers computed from its audio)`` for tracks just inserted."""
        ...

    def remove(self, track_ids: Sequence[int]) -> None:
        """Forget tracks just deleted from the catalogue."""
        ...

    def candidates(self, clip: np.ndarray, k: int = 5, *, name: str = "<samples>") -> list[Candidate]:
        """Up to ``k`` distinct tracks, best first; an empty list means "no match". ``name`` names the clip
        in errors (:class:`~tuneseek.errors.AudioError` for a clip with nothing to identify)."""
        ...
