"""Tags and multi-scale embeddings of 16 kHz mono audio with a musicnn model.

* :func:`tag` — one probability per tag for the whole clip: the mean over its non-overlapping
  3 s (187-frame) patches, musicnn's own convention (``musicnn.tagger.top_tags`` averages the
  taggram of ``extractor(..., input_length=3)``), so the numbers agree with the original;
  a trailing partial patch is dropped, as there.
* :func:`tag_over_time` — the same per patch, with each patch's start time (the taggram).
* :func:`embed` — one vector per window of ``window`` seconds (any ``window >= 0.5``), windows
  ``hop`` seconds apart (default ``window / 2``), from the ``penultimate`` layer (200-d) or the
  ``max_pool`` / ``mean_pool`` layers (753-d). The network is convolutional in time with global
  pooling at the end, so one set of weights serves a 31-frame (0.5 s), 231-frame (3.7 s) or
  1812-frame (29 s) window.

Window lengths follow musicnn's conversion ``librosa.time_to_frames(seconds, sr=16000,
n_fft=512, hop_length=256) + 1`` (3 s -> 187 frames); hops are rounded to whole frames (256
samples, 16 ms). Times are window *start* times in seconds (frame ``k`` is centred on sample
``256 k``). Audio shorter than one window is padded by repetition (musicnn's training used
``repeat-pad``), never rejected here (:mod:`tuneseek.analysis` refuses files shorter than 3 s); only audio shorter than one STFT frame (512 samples, 32 ms)
or holding NaN/inf is refused, with a :class:`~tuneseek.errors.UsageError`. Silence gives
finite, defined outputs (its log-mel is all zeros).

:class:`MusicnnStream` does the same on audio that arrives in chunks (a file decoded as it is
read): the log-mel is computed as the samples come, each request's windows run as soon as a
batch of them is complete, and only the outputs are kept, so memory stays bounded however long
the file; the results equal those of the functions above on the whole signal.

Results are deterministic: windows are batched (by a frame budget, not by count, so memory
stays bounded for 29 s windows) and every window is computed on its own zero-padded edges,
exactly as the original would compute it alone. All work runs under
``torch.inference_mode()`` with whatever thread count torch is set to (one process per core
with ``torch.set_num_threads(1)`` is the efficient way to use many cores).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from tuneseek.errors import UsageError
from tuneseek.features import (
    MUSICNN_HOP,
    MUSICNN_N_FFT,
    MUSICNN_N_MELS,
    MUSICNN_SR,
    musicnn_logmel,
)

__all__ = [
    "LAYERS",
    "MIN_WINDOW_SECONDS",
    "PATCH_FRAMES",
    "LogmelStream",
    "MusicnnStream",
    "WindowBatches",
    "embed",
    "prepare",
    "run_windows",
    "seconds_to_frames",
    "tag",
    "tag_over_time",
    "window_frames",
]

PATCH_FRAMES = 187  # 3 s, the length musicnn was trained on
MIN_WINDOW_SECONDS = 0.5
LAYERS = ("penultimate", "max_pool", "mean_pool")
FRAME_SECONDS = MUSICNN_HOP / MUSICNN_SR
# Frames per network call: bounds memory (about 10 kB of activations per frame) while keeping
# per-call overhead negligible; a patch count is derived from it for each window length.
BATCH_FRAMES = 4096


def seconds_to_frames(seconds: float) -> int:
    """Frames in a window of ``seconds``, by musicnn's rule (``time_to_frames(s) + 1``): 3 s -> 187."""
    samples = int(round(seconds * MUSICNN_SR))
    return max(1, (samples - MUSICNN_N_FFT // 2) // MUSICNN_HOP + 1)


def _check_audio(audio_16k: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio_16k, dtype=np.float32)
    if audio.ndim != 1:
        raise UsageError(f"expected mono 16 kHz audio as a 1-D array, got shape {audio.shape}")
    if len(audio) < MUSICNN_N_FFT:
        raise UsageError(
            f"audio of {len(audio)} samples ({len(audio) / MUSICNN_SR:.3f} s) is too short to analyse: "
            f"at least {MUSICNN_N_FFT} samples ({MUSICNN_N_FFT / MUSICNN_SR:.3f} s) at 16 kHz are needed"
        )
    if not np.isfinite(audio).all():
        raise UsageError("audio contains NaN or infinite samples")
    return audio


def prepare(audio_16k: np.ndarray, *, min_frames: int = PATCH_FRAMES, features: np.ndarray | None = None) -> np.ndarray:
    """The log-mel frames ``(frames, 96)`` to analyse, at least ``min_frames`` of them.

    Audio too short for ``min_frames`` is repeated end to end (then cut to exactly
    ``min_frames`` frames' worth) before the spectrogram is taken. ``features``, when given,
    must be ``musicnn_logmel(audio_16k)`` and saves computing it again (for a second model).
    """
    audio = _check_audio(audio_16k)
    n_frames = 1 + len(audio) // MUSICNN_HOP
    if n_frames < min_frames:
        return musicnn_logmel(np.resize(audio, (min_frames - 1) * MUSICNN_HOP))
    if features is not None:
        if features.shape != (n_frames, MUSICNN_N_MELS):
            raise UsageError(f"features of shape {features.shape} do not belong to {len(audio)} samples of audio")
        return features
    return musicnn_logmel(audio)


def _window_starts(n_total: int, n: int, h: int) -> np.ndarray:
    return np.arange(0, n_total - n + 1, h, dtype=np.int64)


def run_windows(
    logmel: np.ndarray,
    model: torch.nn.Module,
    n: int,
    h: int,
    *,
    outputs: tuple[str, ...] = ("prob",),
    batch_frames: int = BATCH_FRAMES,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run every ``n``-frame window, ``h`` frames apart, of ``logmel`` through ``model``.

    Returns ``(starts, {output: (windows, dim) float32})`` with ``starts`` in frames; windows
    are batched ``max(1, batch_frames // n)`` at a time. ``logmel`` must have ``>= n`` frames.
    """
    if len(logmel) < n:
        raise UsageError(f"{len(logmel)} frames are fewer than one {n}-frame window")
    starts = _window_starts(len(logmel), n, h)
    lm = np.ascontiguousarray(logmel, dtype=np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(lm, (n, lm.shape[1]))[::h, 0]  # (W, n, 96), a view
    per_batch = max(1, batch_frames // n)
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in outputs}
    with torch.inference_mode():
        for i in range(0, len(starts), per_batch):
            batch = torch.from_numpy(np.array(windows[i : i + per_batch]))  # a writable copy
            out = model(batch)
            for k in outputs:
                chunks[k].append(out[k].numpy().astype(np.float32, copy=False))
    return starts, {k: np.concatenate(v) for k, v in chunks.items()}


def tag_over_time(
    audio_16k: np.ndarray, model: torch.nn.Module, *, features: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Tag probabilities per non-overlapping 3 s patch: ``(start times in s (P,), probs (P, classes))``."""
    logmel = prepare(audio_16k, min_frames=PATCH_FRAMES, features=features)
    starts, out = run_windows(logmel, model, PATCH_FRAMES, PATCH_FRAMES, outputs=("prob",))
    return starts * FRAME_SECONDS, out["prob"]


def tag(audio_16k: np.ndarray, model: torch.nn.Module, *, features: np.ndarray | None = None) -> np.ndarray:
    """Each tag's probability for the whole clip (mean over its 3 s patches), shape ``(classes,)``.

    The tag names are ``model.labels`` (set by :func:`tuneseek.embed.weights.load_musicnn`).
    """
    return tag_over_time(audio_16k, model, features=features)[1].mean(axis=0)


def window_frames(window: float, *, hop: float | None = None, layer: str = "penultimate") -> tuple[int, int]:
    """``(frames per window, frames between windows)`` of an :func:`embed` request, checked."""
    if layer not in LAYERS:
        raise UsageError(f"unknown embedding layer {layer!r} (choose from {', '.join(LAYERS)})")
    if not np.isfinite(window) or window < MIN_WINDOW_SECONDS:
        raise UsageError(f"window of {window} s is too short: at least {MIN_WINDOW_SECONDS} s")
    hop = window / 2 if hop is None else hop
    if not np.isfinite(hop) or hop <= 0:
        raise UsageError(f"hop must be a positive number of seconds, got {hop}")
    return seconds_to_frames(window), max(1, int(round(hop / FRAME_SECONDS)))


def embed(
    audio_16k: np.ndarray,
    model: torch.nn.Module,
    *,
    window: float = 3.7,
    hop: float | None = None,
    layer: str = "penultimate",
    features: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of ``layer`` for windows of ``window`` s every ``hop`` s (default ``window / 2``).

    Returns ``(times, vectors)``: window start times in seconds ``(N,)`` and float32 vectors
    ``(N, dim)`` (200 for ``penultimate``, 753 for ``max_pool`` / ``mean_pool``). A clip shorter
    than one window is repeated to fill it and gives one vector.
    """
    n, h = window_frames(window, hop=hop, layer=layer)
    logmel = prepare(audio_16k, min_frames=n, features=features)
    starts, out = run_windows(logmel, model, n, h, outputs=(layer,))
    return starts * FRAME_SECONDS, out[layer]


class WindowBatches:
    """Windows of ``n`` items, ``h`` apart, of an array that arrives in pieces along its first axis.

    Each time ``per_batch`` windows are complete, ``run`` gets the block of items that holds
    exactly them (``(per_batch - 1) * h + n`` items, the first window at its start) and its
    result is kept; ``finish`` runs the windows left (the last start ``<= total - n``, as in
    one pass over the whole array). Only the items the next windows need are buffered.
    Shared by musicnn (log-mel frames) and trained models (audio samples).
    """

    def __init__(self, n: int, h: int, *, per_batch: int, run: Callable[[np.ndarray], object]):
        self.n, self.h, self.per_batch, self.run = n, h, per_batch, run
        self.results: list = []
        self.total = 0  # items received
        self.windows = 0  # windows run
        self._buf: np.ndarray | None = None  # the last items received, from the next window's start on

    def _run(self, k: int) -> None:
        start = self.windows * self.h - (self.total - len(self._buf))
        self.results.append(self.run(self._buf[start : start + (k - 1) * self.h + self.n]))
        self.windows += k

    def _trim(self) -> None:
        drop = self.windows * self.h - (self.total - len(self._buf))
        if drop > 0:
            self._buf = self._buf[drop:]

    def feed(self, items: np.ndarray) -> None:
        self._buf = items if self._buf is None else np.concatenate([self._buf, items])
        self.total += len(items)
        block = (self.per_batch - 1) * self.h + self.n
        while self.total - self.windows * self.h >= block:
            self._run(self.per_batch)
        self._trim()

    def finish(self) -> list:
        """The results of every batch, in order (none when fewer than ``n`` items came)."""
        if self.total >= self.n:
            k = (self.total - self.n) // self.h + 1 - self.windows
            if k > 0:
                self._run(k)
        self._buf = None
        return self.results


class LogmelStream:
    """:func:`~tuneseek.features.musicnn_logmel` of 16 kHz audio fed in chunks.

    Frame ``k`` covers samples ``[256 k - 256, 256 k + 256)`` (zeros before the start and
    after the end, as in one pass); ``feed`` returns the frames whose samples have all come,
    ``finish`` the rest. Each piece is the log-mel of the samples it covers, computed exactly as
    for the whole signal (frame by frame), and only the last 256 samples are kept between calls.
    """

    def __init__(self) -> None:
        self._next = 0  # first frame not returned yet
        self._buf = np.zeros(0, np.float32)  # samples from 256 * (next - 1) on (from 0 while next is 0)
        self.samples = 0

    def _frames(self, stop: int, end: int) -> np.ndarray:
        """Frames ``next .. stop - 1`` from the buffered samples up to global sample ``end``."""
        lead = 1 if self._next else 0
        start = self.samples - len(self._buf)  # global index of _buf[0]
        out = musicnn_logmel(self._buf[: end - start])[lead : lead + stop - self._next]
        self._next = stop
        keep = (stop - 1) * MUSICNN_HOP - start
        self._buf = self._buf[keep:]
        return out

    def feed(self, chunk: np.ndarray) -> np.ndarray:
        self._buf = np.concatenate([self._buf, np.asarray(chunk, np.float32)])
        self.samples += len(chunk)
        stop = (self.samples - MUSICNN_HOP) // MUSICNN_HOP + 1 if self.samples >= MUSICNN_HOP else 0
        if stop <= self._next:
            return np.zeros((0, MUSICNN_N_MELS), np.float32)
        return self._frames(stop, stop * MUSICNN_HOP)

    def finish(self) -> np.ndarray:
        stop = 1 + self.samples // MUSICNN_HOP
        if self.samples == 0 or stop <= self._next:
            return np.zeros((0, MUSICNN_N_MELS), np.float32)
        return self._frames(stop, self.samples)


class MusicnnStream:
    """Windows of musicnn networks over 16 kHz audio fed in chunks, sharing one log-mel.

    ``requests`` are ``(model, n, h, outputs)``: windows of ``n`` frames every ``h`` frames
    through ``model``, keeping ``outputs`` (as :func:`run_windows`, in the same batches, so the
    numbers are those of one pass). ``finish`` returns, per request, ``(starts in frames,
    {output: (windows, dim)})``. Audio shorter than a request's window is repeated to fill it
    (:func:`prepare`), so the first ``(n - 1) * 256`` samples are kept until the audio is longer.
    """

    def __init__(
        self, requests: Sequence[tuple[torch.nn.Module, int, int, tuple[str, ...]]], *, batch_frames: int = BATCH_FRAMES
    ):
        self.requests = list(requests)
        self._logmel = LogmelStream()
        self._runs = [
            WindowBatches(n, h, per_batch=max(1, batch_frames // n), run=self._runner(model, n, h, outputs))
            for model, n, h, outputs in self.requests
        ]
        self._head_samples = (max(n for _, n, _, _ in self.requests) - 1) * MUSICNN_HOP
        self._head: list[np.ndarray] | None = []  # the first samples, while the audio may be shorter than a window

    @staticmethod
    def _runner(model, n: int, h: int, outputs: tuple[str, ...]) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
        return lambda block: run_windows(block, model, n, h, outputs=outputs)[1]

    @property
    def samples(self) -> int:
        return self._logmel.samples

    def feed(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk, np.float32)
        if self._head is not None:
            self._head.append(chunk)
            if self.samples + len(chunk) >= self._head_samples:
                self._head = None
        self._push(self._logmel.feed(chunk))

    def _push(self, frames: np.ndarray) -> None:
        if len(frames):
            for run in self._runs:
                run.feed(frames)

    def finish(self) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
        self._push(self._logmel.finish())
        out = []
        for (model, n, h, outputs), run in zip(self.requests, self._runs):
            results = run.finish()
            if not results:  # shorter than one window: the audio repeated to fill it
                audio = np.concatenate(self._head) if self._head else np.zeros(0, np.float32)
                results = [run_windows(prepare(audio, min_frames=n), model, n, h, outputs=outputs)[1]]
            starts = np.arange(sum(len(r[outputs[0]]) for r in results), dtype=np.int64) * h
            out.append((starts, {k: np.concatenate([r[k] for r in results]) for k in outputs}))
        return out
