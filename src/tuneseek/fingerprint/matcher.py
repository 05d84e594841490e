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


def best_offsets(
    offsets: np.ndarray, tolerance: int, top: int = 10, hashes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``top`` piles of offsets within ``+-tolerance`` frames of each other, best first.

    Candidate piles are found by hit count above their background (see the module
    docstring); each is then scored by that, or, when ``hashes`` (the hash of each
    hit) is given, by the number of distinct hashes among its hits less the
    background. Piles closer than ``2 * tolerance`` to a better one are dropped.
    Returns ``(offsets, scores)``.
    """
    if len(offsets) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
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
