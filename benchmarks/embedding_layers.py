#!/usr/bin/env python3
"""Which musicnn layer and pooling finds "music like this" best (issue 14, part 6).

    python benchmarks/embedding_layers.py --data folder:bench-work/smalldata/soundtracks \\
        --data folder:bench-work/smalldata/composers --cache bench-work/smalldata/cache

The library's ``similar`` ranks tracks by the cosine of their vectors after subtracting the library's
mean vector; a track's vector is the mean of its segment vectors. This measures, for the candidate
vectors below, how often a track's nearest neighbours *from other tracks* carry its label, on labelled
folders (the label: which soundtrack, which composer), so that the space the library stores is chosen by
measurement. Candidates, each from musicnn's windows of 3 s side by side (the probe's cached window
matrices, :func:`tuneseek.train.probe.dataset_windows`; the library's segments are 3.7 s, close enough to
rank layers):

* ``penultimate`` — the MagnaTagATune network's 200-d penultimate layer, mean over windows (what the
  library stores today);
* ``mean_pool``, ``max_pool`` — its 753-d pooled mid-level layers, mean over windows; ``pooled`` both;
* ``tags`` — both vocabularies' 100 tag probabilities;
* ``pooled+penultimate``;
* each also *standardised*: every dimension divided by its standard deviation over the collection
  (state a store could keep beside the mean), marked ``/z``.

Scores, over the items of a split, each query ranking every item of the same split from another group
(track): precision of the nearest 1 and 5 neighbours (P@1, P@5: the share with the query's label) and
mean average precision (mAP) over the whole ranking. An item with no other track of its label in the
split is not a query (the composers' test split has one track per composer: no query at all, "n/a"). Choose on ``train`` (the larger split); ``test`` is
reported beside it to show whether the choice holds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tuneseek.data.datasets import open_dataset
from tuneseek.embed.pooled import MUSICNN_BLOCKS
from tuneseek.train.probe import dataset_windows

OUT = Path("bench-work/smalldata/layers")
_EDGES = np.cumsum([0, *MUSICNN_BLOCKS.values()])
BLOCK = {name: slice(_EDGES[i], _EDGES[i + 1]) for i, name in enumerate(MUSICNN_BLOCKS)}
CANDIDATES = {
    "penultimate": ["penultimate"],
    "mean_pool": ["mean_pool"],
    "max_pool": ["max_pool"],
    "pooled": ["max_pool", "mean_pool"],
    "tags": ["mtt_tags", "msd_tags"],
    "pooled+penultimate": ["max_pool", "mean_pool", "penultimate"],
}


def track_vector(windows: np.ndarray, blocks: list[str]) -> np.ndarray:
    return np.concatenate([windows[:, BLOCK[b]].mean(axis=0) for b in blocks])


def scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, standardise: bool) -> dict:
    """P@1, P@5 and mAP of cosine ranking after centring (and optionally standardising) on these items."""
    x = x - x.mean(axis=0)
    if standardise:
        x = x / np.maximum(x.std(axis=0), 1e-8)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T
    p1, p5, aps = [], [], []
    for i in range(len(x)):
        other = groups != groups[i]
        order = np.argsort(-sim[i][other], kind="stable")
        hits = (y[other][order] == y[i]).astype(float)
        if not hits.any():  # no other track of its label in this split: not a query
            continue
        p1.append(hits[0])
        p5.append(hits[:5].mean())
        aps.append(float((np.cumsum(hits) / np.arange(1, len(hits) + 1))[hits > 0].mean()))
    if not aps:
        return {"P@1": None, "P@5": None, "mAP": None, "queries": 0}
    return {"P@1": float(np.mean(p1)), "P@5": float(np.mean(p5)), "mAP": float(np.mean(aps)), "queries": len(aps)}


def measure(spec: str, cache: str | None, workers: int) -> dict:
    ds = open_dataset(spec)
    out = {}
    for split in ("train", "test"):
        items = ds.splits[split]
        windows, kept, failed = dataset_windows(items, ["musicnn"], cache=cache, workers=workers)
        y = ds.targets(split)[kept]
        groups = np.array([items[i].group for i in kept])
        for name, blocks in CANDIDATES.items():
            x = np.stack([track_vector(w["musicnn"], blocks) for w in windows])
            for z in (False, True):
                out.setdefault(name + ("/z" if z else ""), {})[split] = scores(x, y, groups, standardise=z)
    return out


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", action="append", required=True, metavar="folder:PATH", help="labelled folders")
    ap.add_argument("--cache", help="the probe's cache folder (window matrices are reused)")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results, lines = {}, []
    for spec in args.data:
        started = time.time()
        results[spec] = measure(spec, args.cache, args.workers)
        lines += [
            f"\n{spec} ({time.time() - started:.0f} s)",
            "| vector | train P@1 | train P@5 | train mAP | test P@1 | test P@5 | test mAP |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, r in results[spec].items():
            cells = [_cell(r[split][m]) for split in ("train", "test") for m in ("P@1", "P@5", "mAP")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUT / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
