"""Segment-level hit rates of a trained fingerprint on a split of the origin/sample layout.

The field reports a neural fingerprint at two levels (Chang et al., ICASSP 2021): the *segment*
level, where each 1 s segment of a query is looked up alone, and the *song* level, where a
query's segments vote for a track and an offset (that is the search's work,
:mod:`tuneseek.fingerprint`). This module measures the first, with nothing but the network and
a brute-force inner product, so that a run can be judged before any library is built:

* the index: every audible segment of every origin of the split, :data:`HOP_SECONDS` apart;
* the queries: every audible segment of every positive sample of the split, at the same hop,
  each with its true place in the origin (the sample's span, from its file name; a sample whose
  length differs from its span, a speed change, is read at the matching rate);
* a query segment is an *exact* hit when its nearest index segment is of its track and starts
  within half a hop of its true place (the nearest segment there is), a *near* hit within one
  more hop, and a *track* hit when it is of its track at all.

Several origins of one label (versions) all count as the label's: a hit on any is right.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tuneseek.data.datasets import SPLITS, Item, open_dataset
from tuneseek.errors import ModelError, UsageError
from tuneseek.models import checkpoint
from tuneseek.models.fingerprint_net import HOP_SECONDS, SEGMENT_SECONDS
from tuneseek.train import items as it
from tuneseek.train.fingerprint_pairs import audible_starts

__all__ = ["segment_rates", "hit_rates"]

#: Segments the network embeds at a time, and query segments searched at a time.
EMBED_BATCH = 256
SEARCH_BATCH = 1024


def segment_rates(run: str | Path, *, data: str, split: str = "test", cache: Path, workers: int = 1, say=print) -> dict:
    """The segment-level hit rates of the fingerprint in ``run`` on ``split`` of ``data`` (``queries:DIR``):
    ``exact``, ``near`` and ``track`` (see the module docstring), the counts they are over, and the files left out
    (``(path, reason)``, each said once through ``say``). Audio is decoded into ``cache`` by ``workers`` processes.

    :class:`~tuneseek.errors.UsageError` when the run is not a fingerprint, the data is not the origin/sample
    layout, or the split holds no positive sample of at least one segment.
    """
    model, config = checkpoint.load(run)
    if config.get("task") != "fingerprint":
        raise ModelError(f"not a fingerprint run (its task is {config.get('task')!r})", run)
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    ds = open_dataset(data)
    if not ds.queries:
        raise UsageError(f"{data} is not the origin/sample layout: segment-level rates need samples (queries:DIR)")
    queryset = ds.queries[split]
    sr = model.spec.sample_rate
    n, hop = model.spec.samples(SEGMENT_SECONDS), model.spec.samples(HOP_SECONDS)

    origins = [Item(key=str(o.path), path=o.path, labels=(o.label,)) for o in queryset.origins]
    samples = [s for s in queryset.positives if s.duration >= SEGMENT_SECONDS]
    sample_items = [Item(key=str(s.path), path=s.path, labels=(s.label,)) for s in samples]
    left_out = it.prepare(origins + sample_items, sample_rate=sr, cache=cache, workers=workers)
    for item, reason in left_out:
        say(f"left out {item.path}: {reason}")
    bad = {id(item) for item, _ in left_out}

    index_labels, index_times, index_vectors = [], [], []
    for item in origins:
        if id(item) in bad:
            continue
        x = _load(cache, item, sr)
        starts = audible_starts(x, n=n, hop=hop)
        index_vectors.append(_embed(model, x, starts, n))
        index_labels += [item.labels[0]] * len(starts)
        index_times.append(starts / sr)
    query_labels, query_times, query_vectors, used = [], [], [], 0
    for sample, item in zip(samples, sample_items):
        if id(item) in bad:
            continue
        y = _load(cache, item, sr)
        starts = audible_starts(y, n=n, hop=hop)
        factor = sample.duration * sr / max(1, len(y))  # the span of the origin per second of the sample
        query_vectors.append(_embed(model, y, starts, n))
        query_labels += [sample.label] * len(starts)
        query_times.append(sample.start + starts / sr * factor)
        used += bool(len(starts))
    if not query_labels or not index_labels:
        raise UsageError(f"the {split} split of {data} holds no audible origin or positive sample of a segment or more")

    rates = hit_rates(
        (np.array(index_labels), np.concatenate(index_times), np.concatenate(index_vectors)),
        (np.array(query_labels), np.concatenate(query_times), np.concatenate(query_vectors)),
    )
    return {
        "split": split,
        "data": data,
        "index_segments": len(index_labels),
        "query_segments": len(query_labels),
        "samples": used,
        "hop_seconds": HOP_SECONDS,
        **rates,
        "left_out": [{"path": str(item.path), "reason": reason} for item, reason in left_out],
    }


def hit_rates(index: tuple[np.ndarray, ...], queries: tuple[np.ndarray, ...]) -> dict[str, float]:
    """``exact``, ``near`` and ``track`` hit rates (see the module docstring) of ``queries`` looked up in ``index``,
    each ``(labels, times in s, unit vectors)``: the nearest index segment by inner product, ties to the first."""
    index_labels, index_times, index_vectors = index
    query_labels, query_times, query_vectors = queries
    nearest = np.concatenate(
        [
            np.argmax(query_vectors[lo : lo + SEARCH_BATCH] @ index_vectors.T, axis=1)
            for lo in range(0, len(query_vectors), SEARCH_BATCH)
        ]
    )
    track = index_labels[nearest] == query_labels
    off = np.abs(index_times[nearest] - query_times)
    return {
        "exact": float(np.mean(track & (off <= HOP_SECONDS / 2 + 1e-6))),
        "near": float(np.mean(track & (off <= 1.5 * HOP_SECONDS + 1e-6))),
        "track": float(np.mean(track)),
    }


def _load(cache: Path, item: Item, sr: int) -> np.ndarray:
    x = np.load(it.cache_path(cache, item, sample_rate=sr), mmap_mode="r")
    return x.astype(np.float32) / 32767


def _embed(model, x: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """The unit vectors of the ``n``-sample segments of ``x`` at ``starts`` (a short ``x`` repeated to fill one)."""
    if len(x) < n:
        x = np.concatenate([x] * -(-n // len(x)))
    out = [np.zeros((0, model.embedding_dim), np.float32)]
    with torch.inference_mode():
        for lo in range(0, len(starts), EMBED_BATCH):
            batch = np.stack([x[s : s + n] for s in starts[lo : lo + EMBED_BATCH]])
            out.append(model.embed(torch.from_numpy(batch)).numpy())
    return np.concatenate(out)
