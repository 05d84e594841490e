"""Spectral peak picking: the constellation map of Wang (2003).

A peak is a time–frequency cell that is the maximum of its neighbourhood in the
log-magnitude spectrogram and stands out from the local mean ("whitened"
strength), so that broadband noise, which raises the mean, does not create
peaks of its own. At most ``peaks_per_frame`` of the strongest are kept per
frame: a per-frame rule gives the same peaks whatever the position of a clip in
its track, unlike top-k per fixed block.

:class:`PeakStream` does the same on audio that arrives in chunks, with just
enough context kept between chunks that the result equals one pass over the
whole signal; memory stays bounded for hours-long files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuneseek.features import frame_count, stft_magnitude
from tuneseek.fingerprint.params import DEFAULT, FingerprintParams


@dataclass(frozen=True)
class Peaks:
    """Peaks as parallel arrays, sorted by time then frequency."""

    t: np.ndarray  # int32 frame index
    f: np.ndarray  # int32 FFT bin
    strength: np.ndarray  # float32 whitened log magnitude
    frames: int  # frames analysed (the signal's length in frames)
    loud_frames: int  # frames with any energy above the floor

    def __len__(self) -> int:
        return len(self.t)

    @staticmethod
    def concatenate(parts: list[Peaks]) -> Peaks:
        if not parts:
            return Peaks(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32), 0, 0)
        return Peaks(
            np.concatenate([p.t for p in parts]),
            np.concatenate([p.f for p in parts]),
            np.concatenate([p.strength for p in parts]),
            sum(p.frames for p in parts),
            sum(p.loud_frames for p in parts),
        )


def _running_max(a: np.ndarray, width: int, axis: int) -> np.ndarray:
    """Maximum over windows of ``width`` along ``axis`` ("valid" part only).

    Built by doubling (max of 2, of 4, ...) with whole-array ``np.maximum`` on
    shifted views: faster here than ``scipy.ndimage.maximum_filter``, which was
    the single largest cost of indexing.
    """

    def cut(x: np.ndarray, start: int, n: int) -> np.ndarray:
        return x[start : start + n] if axis == 0 else x[:, start : start + n]

    span, out = 1, a
    while span < width:
        step = min(span, width - span)
        n = out.shape[axis] - step
        out = np.maximum(cut(out, 0, n), cut(out, step, n))
        span += step
    return out


def box_mean(a: np.ndarray, size_t: int, size_f: int) -> np.ndarray:
    """Mean over the ``size_t`` x ``size_f`` box around each cell, edges extended: what
    ``scipy.ndimage.uniform_filter(a, (size_t, size_f), mode="nearest")`` gives (odd sizes).

    Running sums in double precision, as ndimage accumulates. Written here because importing
    scipy.ndimage was a third of the start-up of a command that identifies one clip.
    """
    out = a.astype(np.float64)
    for axis, size in ((0, size_t), (1, size_f)):
        half = size // 2
        pad = [(0, 0), (0, 0)]
        pad[axis] = (half + 1, half)
        sums = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis)
        n = out.shape[axis]
        out = (np.take(sums, np.arange(size, size + n), axis=axis) - np.take(sums, np.arange(n), axis=axis)) / size
    return out.astype(np.float32)


def _neighbourhood_max(a: np.ndarray, rt: int, rf: int) -> np.ndarray:
    """Max over the (2rt+1) x (2rf+1) box around each cell, edges extended (scipy's "nearest")."""
    padded = np.pad(a, ((rt, rt), (rf, rf)), mode="edge")
    return _running_max(_running_max(padded, 2 * rf + 1, axis=1), 2 * rt + 1, axis=0)


def _context(p: FingerprintParams) -> int:
    """Frames of context on each side that make a block's peaks exact."""
    return max(p.t_radius, p.smooth_t // 2) + 1


def _peaks_in_block(mag: np.ndarray, lo: int, own: slice, p: FingerprintParams) -> Peaks:
    """Peaks of spectrogram ``mag`` (frames lo.. of the signal) whose frame is in ``own``."""
    logmag = np.log(np.maximum(mag, p.floor))
    smooth = box_mean(logmag, p.smooth_t, p.smooth_f)
    local_max = _neighbourhood_max(logmag, p.t_radius, p.f_radius)
    band = (own, slice(p.min_bin, p.max_bin))
    t, f = np.nonzero(logmag[band] == local_max[band])  # sparse: test the rest only here
    t += own.start
    f += p.min_bin
    s = logmag[t, f] - smooth[t, f]
    ok = (s > p.min_strength) & (mag[t, f] > p.floor)
    t, f, s = t[ok], f[ok], s[ok]
    # keep the strongest peaks_per_frame of each frame: order by (frame, -strength),
    # then rank inside each frame run
    order = np.lexsort((-s, t))
    t, f, s = t[order], f[order], s[order]
    first = np.searchsorted(t, t, side="left")
    keep = (np.arange(len(t)) - first) < p.peaks_per_frame
    t, f, s = t[keep], f[keep], s[keep]
    order = np.lexsort((f, t))
    loud = int(np.count_nonzero((mag[own] > p.floor).any(axis=1)))
    return Peaks(
        (t[order] + lo).astype(np.int32),
        f[order].astype(np.int32),
        s[order].astype(np.float32),
        own.stop - own.start,
        loud,
    )


def find_peaks(audio: np.ndarray, *, params: FingerprintParams = DEFAULT) -> Peaks:
    """Peaks of a whole signal at ``params.sr`` (used for query clips)."""
    mag = stft_magnitude(audio, params.n_fft, params.hop)
    return _peaks_in_block(mag, 0, slice(0, len(mag)), params)


class PeakStream:
    """Incremental :func:`find_peaks` over audio fed in chunks of any size.

    ``feed`` returns the peaks that became final; ``finish`` returns the rest.
    Frame numbers are global (counted from the first sample fed).
    """

    def __init__(self, params: FingerprintParams = DEFAULT, *, block_frames: int = 1024):
        self.p = params
        self.block = block_frames
        self.ctx = _context(params)
        self._buf = np.zeros(0, np.float32)
        self._buf0 = 0  # global sample index of _buf[0]; a multiple of hop
        self._next = 0  # first frame not yet emitted

    def _available(self) -> int:
        return frame_count(self._buf0 + len(self._buf), self.p.n_fft, self.p.hop)

    def _emit(self, end: int, hi: int) -> Peaks:
        p = self.p
        lo = max(0, self._next - self.ctx)
        a = lo * p.hop - self._buf0
        b = (hi - 1) * p.hop + p.n_fft - self._buf0
        mag = stft_magnitude(self._buf[a:b], p.n_fft, p.hop)
        out = _peaks_in_block(mag, lo, slice(self._next - lo, end - lo), p)
        self._next = end
        keep_from = max(0, self._next - self.ctx) * p.hop
        self._buf = self._buf[keep_from - self._buf0 :]
        self._buf0 = keep_from
        return out

    def feed(self, chunk: np.ndarray) -> Peaks:
        self._buf = np.concatenate([self._buf, np.asarray(chunk, np.float32)])
        parts = []
        while self._available() - self.ctx - self._next >= self.block:
            end = self._next + self.block
            parts.append(self._emit(end, end + self.ctx))
        return Peaks.concatenate(parts)

    def finish(self) -> Peaks:
        avail = self._available()
        if avail <= self._next:
            return Peaks.concatenate([])
        return self._emit(avail, avail)
