"""Landmarks: pairs of peaks packed into 21-bit hashes.

A landmark joins an anchor peak (t1, f1) to a later target peak (t2, f2) and is
hashed as ``f1 (8 bits) | f2 - f1 (7 bits) | t2 - t1 (6 bits)``; it is stored
under the anchor's time so that matching hashes of a clip and a track vote for
the time offset between them.

Pairing is vectorised: each anchor looks at the next ``lookahead`` peaks in time
order at once, as a 2-D array, and keeps the first ``fanout`` that fall inside
its target zone. The 2-D arrays are built for :data:`PAIR_CHUNK` anchors at a
time (with the ``lookahead`` peaks after the last one), so memory stays bounded
however long the track; :class:`LandmarkStream` does the same on peaks that
arrive in pieces. Both give exactly the pairs of one pass over all the peaks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tuneseek.fingerprint.params import DEFAULT, FingerprintParams
from tuneseek.fingerprint.peaks import Peaks
from tuneseek.store.landmarks import HASH_SPACE as SEGMENT_HASH_SPACE

F1_BITS, DF_BITS, DT_BITS = 8, 7, 6
HASH_BITS = F1_BITS + DF_BITS + DT_BITS
HASH_SPACE = 1 << HASH_BITS
if HASH_SPACE != SEGMENT_HASH_SPACE:
    raise ImportError("landmark hashes and the segment store disagree on the hash space")


@dataclass(frozen=True)
class Pairs:
    """Peak pairs in continuous coordinates (frames, bins), before quantisation."""

    t1: np.ndarray
    f1: np.ndarray
    f2: np.ndarray
    dt: np.ndarray


#: Anchors paired at once: the 2-D arrays of one chunk take about 1 kB per anchor (4 MB).
PAIR_CHUNK = 4096


def _pair_block(
    t: np.ndarray, f: np.ndarray, n_anchors: int, fanout: int, dt_max: float, df_max: float, lookahead: int
) -> Pairs:
    """Pairs of the first ``n_anchors`` peaks of ``t, f``, whose targets lie among all of ``t, f``.

    ``t, f`` must hold the ``lookahead`` peaks after the last anchor, or end where the
    track's peaks end: a target index past the end counts as no peak, as for the last
    anchors of a track. ``t, f`` are int32 (peak frames and bins): the 2-D work is cheaper
    in 32 bits.
    """
    n = len(t)
    j = np.arange(n_anchors, dtype=np.int32)[:, None] + np.arange(1, lookahead + 1, dtype=np.int32)[None, :]
    inside = j < n
    j = np.minimum(j, n - 1)
    a_t, a_f = t[:n_anchors, None], f[:n_anchors, None]
    dt = t[j] - a_t
    df = f[j] - a_f
    ok = inside & (dt >= 1) & (dt <= dt_max) & (np.abs(df) < df_max)
    ok &= np.cumsum(ok, axis=1, dtype=np.int32) <= fanout
    a, b = np.nonzero(ok)
    return Pairs(*(x.astype(np.float64) for x in (t[a], f[a], f[j[a, b]], dt[a, b])))


def _pair_chunks(
    t: np.ndarray, f: np.ndarray, n_anchors: int, fanout: int, dt_max: float, df_max: float, lookahead: int
) -> Iterator[Pairs]:
    """:func:`_pair_block` over the first ``n_anchors`` peaks, :data:`PAIR_CHUNK` anchors at a time, in order."""
    for start in range(0, n_anchors, PAIR_CHUNK):
        stop = min(start + PAIR_CHUNK, n_anchors)
        end = min(stop + lookahead, len(t))
        yield _pair_block(t[start:end], f[start:end], stop - start, fanout, dt_max, df_max, lookahead)


def pair_peaks(peaks: Peaks, fanout: int, dt_max: float, df_max: float, lookahead: int) -> Pairs:
    """For each peak, the first ``fanout`` later peaks with 1 <= dt <= dt_max and |df| < df_max."""
    n = len(peaks)
    if n < 2:
        empty = np.zeros(0, np.float64)
        return Pairs(empty, empty, empty, empty)
    parts = list(_pair_chunks(peaks.t, peaks.f, n, fanout, dt_max, df_max, lookahead))
    return Pairs(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("t1", "f1", "f2", "dt")))


def quantise(pairs: Pairs, *, time_scale: float = 1.0, freq_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Hashes and anchor times of ``pairs`` seen through a speed hypothesis.

    A clip whose time runs ``time_scale`` times slower than the track's and whose
    frequencies are ``freq_scale`` times higher maps back to track coordinates as
    ``t * time_scale`` and ``f / freq_scale``. Pairs that leave the hash's range
    are dropped. Returns ``(hash uint32, anchor time int64)``.
    """
    f1 = np.rint(pairs.f1 / freq_scale).astype(np.int64)
    df = np.rint(pairs.f2 / freq_scale).astype(np.int64) - f1
    dt = np.rint(pairs.dt * time_scale).astype(np.int64)
    half = 1 << (DF_BITS - 1)
    ok = (f1 >= 0) & (f1 < (1 << F1_BITS)) & (df > -half) & (df < half) & (dt >= 1) & (dt < (1 << DT_BITS))
    h = (f1[ok] << (DF_BITS + DT_BITS)) | ((df[ok] + half) << DT_BITS) | dt[ok]
    return h.astype(np.uint32), np.rint(pairs.t1[ok] * time_scale).astype(np.int64)


class LandmarkStream:
    """:func:`landmarks` of peaks that arrive in pieces (in time order), in bounded memory.

    ``feed`` returns the landmarks of the anchors whose ``lookahead`` following peaks have
    all arrived, and keeps only the peaks still needed; ``finish`` returns the rest. Anchor
    times are given as ``uint32`` frames, the type the library stores. Concatenated, the
    pieces equal ``landmarks`` of all the peaks at once, byte for byte.
    """

    def __init__(self, params: FingerprintParams = DEFAULT):
        self.p = params
        self._t = np.zeros(0, np.int32)
        self._f = np.zeros(0, np.int32)

    def _pairs(self, n_anchors: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.p
        hashes, frames = [np.zeros(0, np.uint32)], [np.zeros(0, np.uint32)]
        for pairs in _pair_chunks(self._t, self._f, n_anchors, p.fanout, p.dt_max, p.df_max, p.lookahead):
            h, t = quantise(pairs)
            hashes.append(h)
            frames.append(t.astype(np.uint32))
        self._t, self._f = self._t[n_anchors:], self._f[n_anchors:]
        return np.concatenate(hashes), np.concatenate(frames)

    def feed(self, peaks: Peaks) -> tuple[np.ndarray, np.ndarray]:
        """Add ``peaks`` (all later than those fed before); landmarks now final: ``(hash uint32, frame uint32)``."""
        self._t = np.concatenate([self._t, peaks.t])
        self._f = np.concatenate([self._f, peaks.f])
        return self._pairs(max(0, len(self._t) - self.p.lookahead))

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """The landmarks of the last anchors, whose targets end with the track."""
        return self._pairs(len(self._t))


def landmarks(peaks: Peaks, *, params: FingerprintParams = DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """The hashes a track is indexed under: ``(hash uint32, anchor frame int64)``.

    Paired and hashed :data:`PAIR_CHUNK` anchors at a time: only the hashes and frames are
    ever held for the whole track.
    """
    if len(peaks) < 2:
        return quantise(pair_peaks(peaks, params.fanout, params.dt_max, params.df_max, params.lookahead))
    parts = [
        quantise(pairs)
        for pairs in _pair_chunks(
            peaks.t, peaks.f, len(peaks), params.fanout, params.dt_max, params.df_max, params.lookahead
        )
    ]
    return np.concatenate([h for h, _ in parts]), np.concatenate([t for _, t in parts])
