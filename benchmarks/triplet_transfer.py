#!/usr/bin/env python3
"""Does the triplet embedding gain from starting at the pretrained musicnn? (issue 14, part 5)

    python benchmarks/triplet_transfer.py --labels folder:bench-work/smalldata/soundtracks \\
        --cache bench-work/smalldata/cache --space scratch=RUN1 --space musicnn-init=RUN2 \\
        --space musicnn:penultimate

Scores embedding spaces on one labelled folder's own split (the folder reader's, seed 0 unless
``--data-option seed=N``): the triplet runs trained on that folder's train split (without its labels)
and the pretrained layers they are compared with. A space is ``NAME=RUN`` (the run's exported best epoch),
``NAME=FILE.ckpt`` (a Lightning checkpoint of a triplet task, e.g. another epoch's; a run's own
``lightning/last.ckpt`` holds its best epoch, not its last: Lightning 2.6 writes it only beside a new best),
``NAME=untrained:RUN`` (the run's network with random weights, seed 0) or ``musicnn:LAYER``. Two views:

* what ``tuneseek evaluate model SPACE --labels folder:DIR`` reports (:func:`tuneseek.train.metrics.embedding`):
  a linear probe fitted on the train split and scored on the test split, k-means on the test split
  (purity, NMI), and kNN precision@k on the test split (k = 5, clipped to one less than the smallest
  class). Its neighbours include the other excerpts of the query's own track, which a triplet is trained
  to pull together, so it flatters a triplet;
* retrieval as ``similar`` does it (as ``benchmarks/embedding_layers.py``): track vectors centred on the
  split's mean, ranked by cosine, each query's neighbours from **other tracks** only: P@1, P@5 and mAP
  (an item with no other track of its label in the split is not a query).

Item vectors are those of ``evaluate``: the mean of the unit vectors of 8 evenly spaced windows,
scaled to unit length (musicnn's layers: its cached 3 s windows, centred on the train split's mean
window). Nothing is tuned here; the runs chose their best epoch on the valid split. Results:
``bench-work/item5/triplet_transfer.json`` and a markdown table printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tuneseek.data.datasets import open_dataset
from tuneseek.evaluate import embeddings as ev
from tuneseek.models import checkpoint, registry
from tuneseek.train import metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embedding_layers import scores  # noqa: E402  (a sibling script: the layer comparison's ranking)

OUT = Path("bench-work/item5")


def other_track_scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict:
    """P@1, P@5 and mAP of cosine ranking after centring on these items, neighbours from other groups only
    (``embedding_layers.scores``, unstandardised: the same ranking as the layer comparison's)."""
    return scores(x, y, groups, standardise=False)


def space_vectors(space: str, labels: str, data_options: dict, cache: Path, crops: int):
    """``{split: (item vectors, class indices, groups)}`` for train and test, and the label names."""
    ds = open_dataset(labels, **data_options)
    layer = ev._musicnn_layer(space)
    if layer is None and space.endswith(".ckpt"):  # a Lightning checkpoint of a triplet task
        from tuneseek.train.tasks import TripletTask

        model = TripletTask.load_from_checkpoint(space, map_location="cpu").model.eval()
        used, left_out, embed_split = ev._network_splits(model, ds, cache, crops)
    elif layer is None and space.startswith("untrained:"):  # the run's network with random weights (seed 0)
        torch.manual_seed(0)
        model = registry.build(checkpoint.load(Path(space.partition(":")[2]))[1]).eval()
        used, left_out, embed_split = ev._network_splits(model, ds, cache, crops)
    elif layer is None:
        model, _ = checkpoint.load(Path(space))
        used, left_out, embed_split = ev._network_splits(model, ds, cache, crops)
    else:
        used, left_out, embed_split = ev._musicnn_splits(layer, ds, cache, crops)
    if left_out:
        raise SystemExit(f"{space}: {len(left_out)} item(s) left out; this benchmark expects none")
    out = {}
    for split, (items, y) in used.items():
        vectors = embed_split(split, items)
        out[split] = (np.stack([v[0] for v in vectors]), np.asarray(y), np.array([i.group or i.key for i in items]))
    return out, list(ds.labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--labels", required=True, metavar="folder:PATH")
    ap.add_argument("--space", action="append", required=True, help="NAME=RUN, or musicnn:LAYER")
    ap.add_argument("--cache", required=True)
    ap.add_argument("--crops", type=int, default=8)
    ap.add_argument("--data-option", action="append", default=[], help="KEY=VALUE for the folder reader")
    ap.add_argument("--out", default=str(OUT / "triplet_transfer.json"))
    args = ap.parse_args()
    options = {k: json.loads(v) for k, _, v in (o.partition("=") for o in args.data_option)}
    results = {}
    for entry in args.space:
        name, _, where = entry.rpartition("=") if "=" in entry else (entry, "", entry)
        started = time.time()
        vecs, labels = space_vectors(where, args.labels, options, Path(args.cache), args.crops)
        (tx, ty, _), (sx, sy, sg) = vecs["train"], vecs["test"]
        m = metrics.embedding(tx, ty, sx, sy, labels=labels, k=5)
        results[name] = {
            "space": where,
            "probe_accuracy": m["linear_probe"]["accuracy"],
            "probe_macro_f1": m["linear_probe"]["macro_f1"],
            "kmeans_purity": m["kmeans"]["purity"],
            "kmeans_nmi": m["kmeans"]["nmi"],
            "knn_k": m["knn"]["k"],
            "knn_precision": m["knn"]["precision_at_k"],
            "knn_chance": m["knn"]["chance"],
            "other_tracks": {
                "test": other_track_scores(sx, sy, sg),
                "train": other_track_scores(*vecs["train"]),
            },
            "items": {"train": len(ty), "test": len(sy)},
            "seconds": round(time.time() - started, 1),
        }
        print(f"{name}: done in {results[name]['seconds']} s", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "| space | probe acc. | probe macro F1 | k-means purity | NMI | kNN P@k (any track) | other tracks: "
        "P@1 | P@5 | mAP | train-split mAP |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        t = r["other_tracks"]["test"]
        lines.append(
            f"| {name} | {r['probe_accuracy']:.3f} | {r['probe_macro_f1']:.3f} | {r['kmeans_purity']:.3f} | "
            f"{r['kmeans_nmi']:.3f} | {r['knn_precision']:.3f} (k={r['knn_k']}) | {t['P@1']:.3f} | {t['P@5']:.3f} | {t['mAP']:.3f} | "
            f"{r['other_tracks']['train']['mAP']:.3f} |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
