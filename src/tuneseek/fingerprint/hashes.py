"""Landmarks: pairs of peaks packed into 21-bit hashes.

A landmark joins an anchor peak (t1, f1) to a later target peak (t2, f2) and is
hashed as ``f1 (8 bits) | f2 - f1 (7 bits) | t2 - t1 (6 bits)``; it is stored
under the anchor's time so that matching hashes of a clip and a track vote for
the time offset between them.

Pairing is vectorised: each anchor looks at the next ``lookahead`` peaks in time
order at once, as a 2-D array, and keeps the first ``fanout`` that fall inside
its target zone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuneseek.fingerprint.params import DEFAULT, FingerprintParams
from tuneseek.fingerprint.peaks import Peaks

F1_BITS, DF_BITS, DT_BITS = 8, 7, 6
HASH_BITS = F1_BITS + DF_BITS + DT_BITS
HASH_SPACE = 1 << HASH_BITS


@dataclass(frozen=True)
class Pairs:
    """Peak pairs in continuous coordinates (frames, bins), before quantisation."""

    t1: np.ndarray
    f1: np.ndarray
    f2: np.ndarray
    dt: np.ndarray


def pair_peaks(peaks: Peaks, fanout: int, dt_max: float, df_max: float, lookahead: int) -> Pairs:
    """For each peak, the first ``fanout`` later peaks with 1 <= dt <= dt_max and |df| < df_max."""
    n = len(peaks)
    if n < 2:
        empty = np.zeros(0, np.float64)
        return Pairs(empty, empty, empty, empty)
    t, f = peaks.t, peaks.f  # int32: the 2-D work below is cheaper in 32 bits
    j = np.arange(n, dtype=np.int32)[:, None] + np.arange(1, lookahead + 1, dtype=np.int32)[None, :]
    inside = j < n
    j = np.minimum(j, n - 1)
    dt = t[j] - t[:, None]
    df = f[j] - f[:, None]
    ok = inside & (dt >= 1) & (dt <= dt_max) & (np.abs(df) < df_max)
    ok &= np.cumsum(ok, axis=1, dtype=np.int32) <= fanout
    a, b = np.nonzero(ok)
    return Pairs(*(x.astype(np.float64) for x in (t[a], f[a], f[j[a, b]], dt[a, b])))


def quantise(pairs: Pairs, time_scale: float = 1.0, freq_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
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


def landmarks(peaks: Peaks, params: FingerprintParams = DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """The hashes a track is indexed under: ``(hash uint32, anchor frame int64)``."""
    pairs = pair_peaks(peaks, params.fanout, params.dt_max, params.df_max, params.lookahead)
    return quantise(pairs)
