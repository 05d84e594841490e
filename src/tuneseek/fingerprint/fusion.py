"""Two identifiers as one: the landmarks and a learned fingerprint, their evidence fused per track.

:class:`FusedIdentifier` asks the first identifier (the landmarks: precise offsets, speed and
tempo, certain on clean clips) and, unless that one is already certain, the second (the learned
fingerprint: stronger in heavy noise, for short clips and pitch shifts). Their candidates are
merged per track:

* one confidence, the noisy-OR of the two calibrated probabilities, ``1 - (1 - p1)(1 - p2)``
  (an engine that did not name the track counts as ``p = 0``): each engine's probability is
  calibrated on its own, and a track both name is more certain than either alone. Each engine
  reports only candidates at or above one half, so the fused answer never holds a track neither
  engine would have named, and its false matches are at most the two engines' together;
* where it holds the track, the first engine's offset, speed, tempo, clip stretch and score (a
  landmark alignment is exact to a frame, a learned one to a query step), else the second's.

Writes go to both, inside the caller's catalogue transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from tuneseek.errors import AudioError, UsageError
from tuneseek.identifier import Candidate, Identifier

#: The first engine's best confidence at or above which the second is not asked (the clip is answered).
CERTAIN = 0.99


class FusedIdentifier:
    """:class:`~tuneseek.identifier.Identifier` over ``first`` (the landmarks) and ``second`` (a learned
    fingerprint); ``certain``: the first's best confidence from which the second is skipped
    (``None``: always ask both, as a benchmark of the fusion does).

    ``add`` takes ``(track id, (first's data, second's data))`` per track: what each engine's workers
    computed. Both engines must take clips at one sample rate.
    """

    def __init__(self, first: Identifier, second: Identifier, *, certain: float | None = CERTAIN):
        if first.sample_rate != second.sample_rate:
            raise UsageError(
                f"cannot fuse {first.name} ({first.sample_rate} Hz) with {second.name} ({second.sample_rate} Hz)"
            )
        self.first, self.second = first, second
        self.certain = certain
        self.name = f"{first.name}+{second.name}"
        self.version = f"{first.version}+{second.version}"
        self.sample_rate = first.sample_rate

    def add(self, tracks: Sequence[tuple[int, tuple[Any, Any]]]) -> None:
        """Index tracks just inserted in the caller's transaction in both engines."""
        self.first.add([(track_id, data[0]) for track_id, data in tracks])
        self.second.add([(track_id, data[1]) for track_id, data in tracks])

    def remove(self, track_ids: Sequence[int]) -> None:
        self.first.remove(track_ids)
        self.second.remove(track_ids)

    def candidates(self, clip: np.ndarray, k: int = 5, name: str = "<samples>") -> list[Candidate]:
        """Up to ``k`` tracks, best fused confidence first; empty for "no match".

        A clip one engine refuses (the landmarks find too few peaks in it) is answered by the
        other; :class:`~tuneseek.errors.AudioError` only when both refuse it (the first's reason).
        """
        refused: AudioError | None = None
        try:
            first = self.first.candidates(clip, k, name)
        except AudioError as e:
            first, refused = [], e
        if refused is None and self.certain is not None and first and first[0].confidence >= self.certain:
            return first
        try:
            second = self.second.candidates(clip, k, name)
        except AudioError:
            if refused is not None:
                raise refused from None
            second = []
        return fuse(first, second)[:k]


def fuse(first: list[Candidate], second: list[Candidate]) -> list[Candidate]:
    """The candidates of two engines merged per track (see the module's docstring), best first."""
    by_track = {c.track_id: c for c in second}
    by_track.update({c.track_id: c for c in first})  # the first engine's alignment where it has one
    p1 = {c.track_id: c.confidence for c in first}
    p2 = {c.track_id: c.confidence for c in second}
    fused = [replace(c, confidence=1.0 - (1.0 - p1.get(t, 0.0)) * (1.0 - p2.get(t, 0.0))) for t, c in by_track.items()]
    # ties (two certain tracks) go to a track both engines name, then to the first engine's
    return sorted(fused, key=lambda c: (-c.confidence, c.track_id not in p2, c.track_id not in p1))
