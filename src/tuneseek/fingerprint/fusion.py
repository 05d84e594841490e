"""Two identifiers as one: the landmarks and a learned fingerprint, their evidence fused per track.

:class:`FusedIdentifier` asks the first identifier (the landmarks: precise offsets, speed and
tempo, certain on clean clips) and, unless that one is already certain, the second (the learned
fingerprint: stronger in heavy noise and for pitch shifts). Their candidates are merged per track:

* a track the first engine names (at or above one half) gets the noisy-OR of the two calibrated
  probabilities, ``1 - (1 - p1)(1 - p2)`` (the second's counted whatever it is, below one half
  too: it is a probability, and small ones add little), and the first engine's offset, speed,
  tempo, clip stretch and score (a landmark alignment is exact to a frame, a learned one to a
  query step);
* a track only the second engine names must be *borne out by the first* at the place the second
  puts it: the first engine counts the landmark hits of the clip that line up with that track
  within :data:`AGREE` seconds of the second's offset, and the most that line up at any other offset
  nearby (:meth:`~tuneseek.fingerprint.index.LandmarkIndex.lined_up`); :class:`Corroboration`
  turns the second's confidence and the excess of the first count over the second into one
  probability, reported from one half.

Why the second step. The shipped learned fingerprint puts segments of similar-sounding music
close together: alone, it matched 8 of 120 10 s clips of rock not in the library to a rock song
that is, at confidences up to 0.99. Two or three landmark hits line up with that song at the
learned offset, and four or five at other offsets nearby: the two share drum sounds and a tempo,
so chance alignments recur at every beat. Most short noisy clips of a library track that the
landmarks cannot name hold 6-14 hits at the learned offset and 3-8 elsewhere, even where the
learned engine's own confidence is a few per cent. Where the place is given, an excess of a
handful is evidence; a search over every track and offset meets as many by chance somewhere. The
weights are fitted on clips the benchmark does not score (``benchmarks/learned_fingerprint.py
--steps calibrate``; benchmarks/RESULTS.md), then moved until at most 0.5 % of about 400 clips of
unknown music of each length (three soundtracks, one of rock with drum kits) would pass. With them,
an excess of one hit passes from a learned confidence of 1.6 %, two from 0.25 %, three from 0.07 %:
the landmarks carry the decision. On the benchmark no clip of music not in the library passed this
way (the first weights, fitted on 182 clips of one orchestral soundtrack, let 4 of 120 3 s rock clips
through).

A clip the first engine refuses (too little to fingerprint) is answered by the second alone, at
its own threshold: nothing checks it, so its false positives there are the second engine's own (the
shipped model's threshold is calibrated to the same 0.5 % of unknown clips of each length). Writes go
to both, inside the caller's catalogue transaction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from tuneseek.errors import AudioError, UsageError
from tuneseek.identifier import Candidate, Identifier

#: The first engine's best confidence at or above which the second is not asked (the clip is answered).
CERTAIN = 0.99
#: Seconds from the second engine's offset within which the first engine's landmarks count (two learned query steps).
AGREE = 0.5
#: Hypotheses of the second engine weighed per clip (its best ones, whatever their confidence).
PROPOSALS = 8
#: Fused candidates below this confidence are not reported ("no match").
MIN_CONFIDENCE = 0.5


class Aligner(Identifier, Protocol):
    """An identifier that can also count the evidence it holds for a placement another engine proposes:
    ``(here, elsewhere)`` per ``(track id, offset)``, as :meth:`~tuneseek.fingerprint.index.LandmarkIndex.lined_up`."""

    def lined_up(
        self, clip: np.ndarray, placements: Sequence[tuple[int, float]], window: float, *, name: str = "<samples>"
    ) -> list[tuple[int, int]]: ...


class Proposer(Identifier, Protocol):
    """An identifier that can list its hypotheses below its own threshold too (``floor`` 0: all it judged)."""

    def candidates(
        self, clip: np.ndarray, k: int = 5, *, name: str = "<samples>", floor: float = MIN_CONFIDENCE
    ) -> list[Candidate]: ...


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class Corroboration:
    """Probability that a track only the second engine names is the clip's, from the second's
    confidence ``p`` and the first engine's landmarks lined up at its offset (``here``) and at the
    best other offset nearby (``elsewhere``):
    ``sigmoid(bias + per_logit * logit(p) + per_excess * log(1 + here - elsewhere))``, and 0 unless
    ``here`` stands at least ``min_excess`` above ``elsewhere``: the first engine must bear the
    placement out, however sure the second is (the second's confidence was calibrated on music
    unlike the library's, and similar music can make it sure of the wrong track)."""

    bias: float
    per_logit: float
    per_excess: float
    min_excess: int = 1

    def confidence(self, p: float, here: int, elsewhere: int) -> float:
        if here - elsewhere < self.min_excess:
            return 0.0
        [[logit, excess]] = self.features([p], [here], [elsewhere])
        z = self.bias + self.per_logit * logit + self.per_excess * excess
        return 1.0 / (1.0 + math.exp(-z))

    def to_dict(self) -> dict[str, float]:
        """What a model's ``calibration.json`` records under "fusion" (``Corroboration(**d)`` reads it back)."""
        return {
            "bias": self.bias,
            "per_logit": self.per_logit,
            "per_excess": self.per_excess,
            "min_excess": self.min_excess,
        }

    @staticmethod
    def features(p: Sequence[float], here: Sequence[int], elsewhere: Sequence[int]) -> np.ndarray:
        """``(logit(p), log(1 + max(0, here - elsewhere)))`` per row: what the weights multiply (for fitting)."""
        excess = np.maximum(0, np.asarray(here, np.float64) - np.asarray(elsewhere, np.float64))
        return np.column_stack([[_logit(float(x)) for x in p], np.log1p(excess)])


#: The shipped model's corroboration (its ``calibration.json`` holds the same): the default for a fingerprint
#: run whose calibration has none. Fitted by ``benchmarks/learned_fingerprint.py --steps calibrate``.
DEFAULT_CORROBORATION = Corroboration(bias=0.741, per_logit=0.781, per_excess=3.580, min_excess=1)


class FusedIdentifier:
    """:class:`~tuneseek.identifier.Identifier` over ``first`` (the landmarks, an :class:`Aligner`) and
    ``second`` (a learned fingerprint, a :class:`Proposer`); ``certain``: the first's best confidence from
    which the second is skipped (``None``: always ask both, as a benchmark of the fusion does);
    ``corroboration``: the weights for tracks only the second names (a model's ``calibration.json``
    may hold its own).

    ``add`` takes ``(track id, (first's data, second's data))`` per track: what each engine's workers
    computed. Both engines must take clips at one sample rate.
    """

    def __init__(
        self,
        first: Aligner,
        second: Proposer,
        *,
        certain: float | None = CERTAIN,
        corroboration: Corroboration = DEFAULT_CORROBORATION,
    ):
        if first.sample_rate != second.sample_rate:
            raise UsageError(
                f"cannot fuse {first.name} ({first.sample_rate} Hz) with {second.name} ({second.sample_rate} Hz)"
            )
        self.first, self.second = first, second
        self.certain = certain
        self.corroboration = corroboration
        self.name = f"{first.name}+{second.name}"
        self.sample_rate = first.sample_rate

    @property
    def version(self) -> str:
        """Both engines' versions (asked when needed: a second engine may be loaded only when first asked)."""
        return f"{self.first.version}+{self.second.version}"

    def add(self, tracks: Sequence[tuple[int, tuple[Any, Any]]]) -> None:
        """Index tracks just inserted in the caller's transaction in both engines."""
        self.first.add([(track_id, data[0]) for track_id, data in tracks])
        self.second.add([(track_id, data[1]) for track_id, data in tracks])

    def remove(self, track_ids: Sequence[int]) -> None:
        self.first.remove(track_ids)
        self.second.remove(track_ids)

    def candidates(self, clip: np.ndarray, k: int = 5, *, name: str = "<samples>") -> list[Candidate]:
        """Up to ``k`` tracks, best fused confidence first; empty for "no match".

        A clip one engine refuses (the landmarks find too few peaks in it) is answered by the
        other; :class:`~tuneseek.errors.AudioError` only when both refuse it (the first's reason).
        """
        refused: AudioError | None = None
        try:
            first = self.first.candidates(clip, k, name=name)
        except AudioError as e:
            first, refused = [], e
        if refused is None and self.certain is not None and first and first[0].confidence >= self.certain:
            return first
        try:
            second = self.second.candidates(clip, max(k, PROPOSALS), name=name, floor=0.0)
        except AudioError:
            if refused is not None:
                raise refused from None
            second = []
        if refused is not None:
            return [c for c in second if c.confidence >= MIN_CONFIDENCE][:k]
        return fuse(first, self._borne_out(clip, name, second, {c.track_id for c in first}))[:k]

    def _borne_out(self, clip: np.ndarray, name: str, second: list[Candidate], named: set[int]) -> list[Candidate]:
        """The second engine's candidates, each track the first did not name (``named``) re-judged by
        :attr:`corroboration` (see the module's docstring) and left out below one half."""
        alone = [c for c in second if c.track_id not in named]
        lined = self.first.lined_up(clip, [(c.track_id, c.offset) for c in alone], AGREE, name=name) if alone else []
        judged = [replace(c, confidence=self.corroboration.confidence(c.confidence, *n)) for c, n in zip(alone, lined)]
        return [c for c in second if c.track_id in named] + [c for c in judged if c.confidence >= MIN_CONFIDENCE]


def fuse(first: list[Candidate], second: list[Candidate]) -> list[Candidate]:
    """The candidates of two engines merged per track (see the module's docstring), best first."""
    by_track = {c.track_id: c for c in second}
    by_track.update({c.track_id: c for c in first})  # the first engine's alignment where it has one
    p1 = {c.track_id: c.confidence for c in first}
    p2 = {c.track_id: c.confidence for c in second}
    fused = [replace(c, confidence=1.0 - (1.0 - p1.get(t, 0.0)) * (1.0 - p2.get(t, 0.0))) for t, c in by_track.items()]
    # ties (two certain tracks) go to a track both engines name, then to the first engine's
    return sorted(fused, key=lambda c: (-c.confidence, c.track_id not in p2, c.track_id not in p1))
