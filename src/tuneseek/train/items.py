"""Dataset items as model inputs: windows of audio (or of precomputed log-mel) with their targets.

Audio is decoded once, at the model's sample rate, into a cache of 16-bit ``.npy`` files that
later epochs, later runs and evaluation memory-map: decoding a 4-minute MP3 costs about 0.25 s,
reading its cached window almost nothing. (16-bit halves the cache: MagnaTagATune at 16 kHz
takes 24 GB.) :func:`usable` fills the cache in parallel before training (and evaluation), in
worker processes of :mod:`tuneseek.processes` or on a given executor, keeps the items that can be
read and names the others, so that a bad file costs one line, never a crashed run.

Training takes ``windows_per_item`` random windows per item per epoch (the random start is the
time shift; one by default, more to give an epoch of a small dataset enough optimizer steps)
and augments each; validation and evaluation take evenly spaced windows, deterministic. Items
shorter than a window are repeated to fill it.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from pathlib import Path

import numpy as np
import torch

from tuneseek import audio, processes
from tuneseek.data.datasets import Item
from tuneseek.errors import TuneseekError
from tuneseek.fileio import atomic_write_bytes
from tuneseek.models.frontend import MelSpec, fit_window
from tuneseek.train.augment import Augment


def cache_path(cache: Path, item: Item, *, sample_rate: int) -> Path:
    key = hashlib.sha1(f"{os.path.abspath(item.path)}|{sample_rate}".encode()).hexdigest()[:20]
    return cache / f"{key}.npy"


def _decode_into_cache(args: tuple[Item, int, Path]) -> str | None:
    """Decode one item into the cache; ``None`` when done, else the reason it cannot be used."""
    item, sample_rate, cache = args
    target = cache_path(cache, item, sample_rate=sample_rate)
    if target.exists():
        return None
    try:
        x = audio.load(item.path, sample_rate)
    except TuneseekError as e:
        return getattr(e, "reason", str(e))
    except Exception as e:  # a decoder bug costs one file
        return f"unexpected {type(e).__name__}: {e}"
    if len(x) == 0 or not np.any(np.abs(x) > 1e-4):
        return "silent"
    buf = io.BytesIO()
    np.save(buf, np.round(np.clip(x, -1.0, 1.0) * 32767).astype(np.int16))
    atomic_write_bytes(target, buf.getvalue())
    return None


def prepare(
    items: Sequence[Item],
    *,
    sample_rate: int,
    cache: Path,
    workers: int = 1,
    executor: Executor | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[tuple[Item, str]]:
    """Decode every item that is read as audio (it has no precomputed features) at ``sample_rate`` into
    ``cache``; returns ``(item, reason)`` for those that failed. ``workers`` processes decode (see
    :func:`tuneseek.processes.in_order`), or ``executor``; ``progress(1)`` is called per item."""
    cache.mkdir(parents=True, exist_ok=True)
    todo = [(it, sample_rate, cache) for it in items if it.features is None]
    failed = []
    decoded = processes.in_order(_decode_into_cache, todo, workers=workers, executor=executor, preload=[__name__])
    for (item, _, _), reason in zip(todo, decoded):
        if reason:
            failed.append((item, reason))
        if progress:
            progress(1)
    return failed


def usable(
    items: Sequence[Item],
    targets: np.ndarray | None,
    *,
    sample_rate: int,
    cache: Path,
    workers: int = 1,
    executor: Executor | None = None,
) -> tuple[list[Item], np.ndarray | None, list[tuple[Item, str]]]:
    """:func:`prepare` ``items``, then keep those that can be read: ``(items, their targets, failures)``."""
    failed = prepare(items, sample_rate=sample_rate, cache=cache, workers=workers, executor=executor)
    bad = {id(item) for item, _ in failed}
    keep = [i for i, item in enumerate(items) if id(item) not in bad]
    return [items[i] for i in keep], None if targets is None else targets[keep], failed


def _as_float(x: np.ndarray) -> np.ndarray:
    """Cached 16-bit audio as float32 in [-1, 1]; features as they are, in float32."""
    return x.astype(np.float32) / 32767 if x.dtype == np.int16 else x.astype(np.float32)


def shorter_than(items: Sequence[Item], *, spec: MelSpec, window_seconds: float, cache: Path) -> list[Item]:
    """The items (already in the cache, or with features) too short for one window: training repeats them to fill it."""
    out = []
    for item in items:
        x = Excerpts([item], None, spec=spec, window_seconds=window_seconds, cache=cache).source(0)
        n = spec.frames(window_seconds) if x.ndim == 2 else spec.samples(window_seconds)
        if x.shape[-1] < n:
            out.append(item)
    return out


def windows_held(items: Sequence[Item], *, spec: MelSpec, window_seconds: float, cache: Path) -> int:
    """How many side-by-side windows the typical item (the median) holds, at least 1: how many distinct
    random windows per item an epoch can usefully draw. Reads the cached arrays' headers only."""
    excerpts = Excerpts(items, None, spec=spec, window_seconds=window_seconds, cache=cache)
    held = []
    for i in range(len(items)):
        x = excerpts.source(i)
        held.append(x.shape[-1] // (spec.frames(window_seconds) if x.ndim == 2 else spec.samples(window_seconds)))
    return max(1, int(np.median(held))) if held else 1


def window_starts(length: int, n: int, *, count: int) -> list[int]:
    """``count`` evenly spaced starts of ``n``-long windows in ``length``: one window is the middle one;
    an item shorter than a window has one, at 0."""
    if length <= n:
        return [0]
    if count == 1:
        return [(length - n) // 2]
    return sorted(set(np.linspace(0, length - n, count).round().astype(int).tolist()))


class Excerpts(torch.utils.data.Dataset):
    """``(window, target)`` pairs: random augmented windows of each item for training (``windows_per_item``
    of them per epoch: index ``i`` is item ``i % len(items)``), the middle one otherwise.

    A window is audio ``(samples,)`` at ``spec.sample_rate``, or log-mel ``(n_mels, frames)``
    when the items carry precomputed features. :meth:`windows` gives several evenly spaced
    windows of one item, for evaluation.
    """

    def __init__(
        self,
        items: Sequence[Item],
        targets: np.ndarray | None,
        *,
        spec: MelSpec,
        window_seconds: float,
        cache: Path | None,
        train: bool = False,
        augment: Augment | None = None,
        windows_per_item: int = 1,
    ):
        if windows_per_item < 1 or (windows_per_item > 1 and not train):
            raise ValueError(f"windows_per_item must be 1, or more when training; got {windows_per_item}")
        self.items = list(items)
        self.windows_per_item = windows_per_item
        self.targets = targets
        self.spec = spec
        self.train = train
        self.augment = augment if (train and augment is not None) else Augment.none()
        self.cache = cache
        self.n_samples = spec.samples(window_seconds)
        self.n_frames = spec.frames(window_seconds)

    def __len__(self) -> int:
        return len(self.items) * self.windows_per_item

    def _rng(self) -> np.random.Generator:
        # torch's generator is seeded per worker (and per epoch) by the loader: reproducible with a seed
        return np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()))

    def source(self, i: int) -> np.ndarray:
        """The whole item: audio ``(samples,)`` or features ``(n_mels, frames)``."""
        item = self.items[i]
        if item.features is not None:
            return np.load(item.features, mmap_mode="r", allow_pickle=False)
        return np.load(cache_path(self.cache, item, sample_rate=self.spec.sample_rate), mmap_mode="r")  # int16

    def windows(self, i: int, count: int) -> np.ndarray:
        """``count`` (or fewer, for a short item) evenly spaced windows of item ``i``, stacked."""
        x = self.source(i)
        n = self.n_frames if x.ndim == 2 else self.n_samples
        return np.stack([_as_float(fit_window(x, n, s)) for s in window_starts(x.shape[-1], n, count=count)])

    def random_window(
        self, i: int, rng: np.random.Generator, *, near: int | None = None, spread: int = 0
    ) -> tuple[np.ndarray, int]:
        """A random window of item ``i`` (augmented when training) and its start; with ``near``,
        one starting within ``spread`` samples (or frames) of that start."""
        x = self.source(i)
        n = self.n_frames if x.ndim == 2 else self.n_samples
        last = max(0, x.shape[-1] - n)
        if near is None:
            start = int(rng.integers(0, last + 1))
        else:
            start = int(np.clip(near + rng.integers(-spread, spread + 1), 0, last))
        w = _as_float(fit_window(x, n, start))
        if w.ndim == 1:
            w = self.augment(w, self.spec.sample_rate, rng)
        return w, start

    def __getitem__(self, i: int):
        i %= len(self.items)
        w = self.random_window(i, self._rng())[0] if self.train else self.windows(i, 1)[0]
        target = self.targets[i] if self.targets is not None else -1
        return torch.from_numpy(np.ascontiguousarray(w)), torch.as_tensor(target)


class Triplets(Excerpts):
    """Tile2Vec-style triplets with no labels: ``(anchor, neighbour, distant)`` stacked, target unused.

    The anchor is a random window of an item; the neighbour a window of the same item starting
    within ``neighbourhood_seconds`` of it; the distant one a random window of an item of
    another group (another track, or another artist where the dataset knows it). Validation
    triplets are drawn from a generator seeded by the index, so they are the same every epoch.
    """

    def __init__(
        self,
        items: Sequence[Item],
        *,
        spec: MelSpec,
        window_seconds: float,
        cache: Path | None,
        train: bool = False,
        augment: Augment | None = None,
        neighbourhood_seconds: float = 10.0,
        windows_per_item: int = 1,
    ):
        super().__init__(
            items,
            None,
            spec=spec,
            window_seconds=window_seconds,
            cache=cache,
            train=train,
            augment=augment,
            windows_per_item=windows_per_item,
        )
        self.groups = np.array([it.group or it.key for it in self.items])
        if len(set(self.groups.tolist())) < 2:
            raise TuneseekError("triplets need items of at least two tracks (distant patches come from another one)")
        self.spread_samples = spec.samples(neighbourhood_seconds)
        self.spread_frames = spec.frames(neighbourhood_seconds)

    def __getitem__(self, i: int):
        i %= len(self.items)
        rng = self._rng() if self.train else np.random.default_rng(i)
        anchor, start = self.random_window(i, rng)
        spread = self.spread_frames if anchor.ndim == 2 else self.spread_samples
        neighbour, _ = self.random_window(i, rng, near=start, spread=spread)
        others = np.flatnonzero(self.groups != self.groups[i])
        distant, _ = self.random_window(int(rng.choice(others)), rng)
        return torch.from_numpy(np.stack([anchor, neighbour, distant])), torch.as_tensor(-1)
