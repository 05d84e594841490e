"""Offset voting: from hash hits to the best (track, offset) piles, with scores.

Every hit of a clip hash in the index gives a *global* reference frame (tracks
are laid end to end, with gaps, on one frame axis: see the landmark store). The
difference ``reference frame - clip frame`` is the same for all true hits of one
track, so the tallest pile of equal differences names both the track and the
offset. Everything here is array arithmetic on all hits at once.

A pile's score is sharpened twice against coincidences between unrelated music:

- it counts the *distinct hash values* among its hits, not the hits: two pieces
  with the same drum sounds at the same tempo line up the same few hashes bar
  after bar, while a true match lines up many different ones;
- it subtracts the pile's *surroundings*: held chords that two pieces share
  match at every offset across the held stretch and raise a broad plateau,
  while a true match is a narrow peak. The mean hit count of the windows within
  ``FLANK`` frames on either side is taken off.
"""

from __future__ import annotations

import numpy as np

#: frames on each side of a pile whose hits estimate its background
FLANK = 25
#: Above this many hits, piles are only sought in the densest regions of a coarse
#: histogram (bins of 2**COARSE_SHIFT frames, folded into about as many counters as
#: there are hits): a linear-time pass instead of sorting every hit, which was
#: most of a query's time. (Counters are kept few: big fresh arrays cost page faults.)
PREFILTER_HITS = 20_000
COARSE_SHIFT = 3


def _largest(items: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` items of largest small-integer ``values`` (ties broken by position).

    A counting selection: ``argpartition`` degrades badly on the many equal
    small counts a hit histogram has.
    """
    at_least = np.cumsum(np.bincount(values)[::-1])[::-1]  # items with value >= v
    cut = int(np.flatnonzero(at_least >= k)[-1])
    above = items[values > cut]
    return np.concatenate([above, items[values == cut][: k - len(above)]])


def _coarse(keys: np.ndarray) -> np.ndarray:
    """Coarse bin of each key, with the high 32 bits (the track, in per-track voting) scattered.

    Keys of one track stay in consecutive bins; keys of different tracks land far
    apart once folded into the counters, instead of piling onto the same few (with
    a plain shift every track's offsets would share the counters of its low bits, and
    a long clip's chance hits over many tracks would bury a true pile).
    """
    return ((keys & 0xFFFFFFFF) >> COARSE_SHIFT) + (keys >> 32) * _SCATTER


#: an odd multiplier (2**32 / golden ratio) that spreads consecutive track numbers over the counters
_SCATTER = 0x9E3779B1


def _dense_regions(offsets: np.ndarray, regions: int, tolerance: int) -> tuple[np.ndarray, np.ndarray]:
    """Hits in (and around) the ``regions`` densest coarse bins, and which table keys are their cores.

    Returns ``(keep, core, mask)``: ``keep`` masks the hits to pile exactly (the
    dense bins and enough neighbours to measure their background); ``core`` is a
    table, indexed by ``(offset >> COARSE_SHIFT) & mask``, that is true for the
    coarse bins a pile may be centred in.
    """
    mask = (1 << min(20, max(14, int(len(offsets)).bit_length()))) - 1
    key = _coarse(offsets) & mask
    counts = np.bincount(key, minlength=mask + 1)
    pairs = counts.copy()  # a pile may straddle two bins
    pairs[:-1] += counts[1:]
    pairs[-1] += counts[0]
    busy = np.flatnonzero(pairs)
    dense = busy if len(busy) <= regions else _largest(busy, pairs[busy], regions)
    core = np.zeros(mask + 1, bool)
    core[dense] = True
    core[(dense + 1) & mask] = True
    reach = -(-(FLANK + tolerance) >> COARSE_SHIFT) + 1
    wanted = np.zeros(mask + 1, bool)
    for d in range(-reach, reach + 2):
        wanted[(dense + d) & mask] = True
    return wanted[key], core, mask


def best_offsets(
    offsets: np.ndarray, tolerance: int, *, top: int = 10, hashes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``top`` piles of offsets within ``+-tolerance`` frames of each other, best first.

    ``offsets`` are plain frame offsets, or per-track keys (the track in the bits
    above 32, the offset biased to be non-negative below): piles never straddle a
    multiple of 2**32.

    Candidate piles are found by hit count above their background (see the module
    docstring); each is then scored by that, or, when ``hashes`` (the hash of each
    hit) is given, by the number of distinct hashes among its hits less the
    background. Piles closer than ``2 * tolerance`` to a better one are dropped.
    Returns ``(offsets, scores)``.
    """
    if len(offsets) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    core = None
    if len(offsets) > PREFILTER_HITS:
        keep, core, mask = _dense_regions(offsets, 4 * top, tolerance)
        offsets = offsets[keep]
        hashes = hashes[keep] if hashes is not None else None
    order = np.argsort(offsets, kind="stable")
    o = offsets[order]
    uniq = o[np.concatenate(([True], o[1:] != o[:-1]))]  # np.unique without its second sort
    lo = np.searchsorted(o, uniq - tolerance, side="left")
    hi = np.searchsorted(o, uniq + tolerance, side="right")
    wide = np.searchsorted(o, uniq + tolerance + FLANK, side="right") - np.searchsorted(
        o, uniq - tolerance - FLANK, side="left"
    )
    count = hi - lo
    background = (wide - count) * (2 * tolerance + 1) / (2 * FLANK)
    sharp = count - background
    if core is not None:  # piles at the edge of the kept regions have no full background
        sharp[~core[_coarse(uniq) & mask]] = -np.inf
    chosen: list[int] = []
    for i in np.argsort(-sharp, kind="stable")[: top * (2 * tolerance + 1) * 4]:
        if all(abs(uniq[i] - uniq[c]) > 2 * tolerance for c in chosen):
            chosen.append(int(i))
            if len(chosen) == top:
                break
    idx = np.array(chosen, np.int64)
    if hashes is None:
        raw = count[idx]
    else:
        h = hashes[order]
        raw = np.array([len(np.unique(h[lo[i] : hi[i]])) for i in idx], np.int64)
    scores = np.maximum(0, np.floor(raw - background[idx])).astype(np.int64)
    rank = np.argsort(-scores, kind="stable")
    return uniq[idx][rank], scores[rank]
