#!/usr/bin/env python3
"""Probes and the MFCC baseline over several splits of one labelled folder (issue 14, part 4).

    python benchmarks/probe_splits.py --data folder:bench-work/smalldata/soundtracks \\
        --cache bench-work/smalldata/cache --seeds 0,1,2,3,4

One held-out split of a few hundred clips is a small sample: the soundtracks set's test split is 63 clips
of 22 tracks, and one source (asc) has a single test track. This fits each contender on the train split of
``--seeds`` different splits by track (the folder reader's ``seed`` option: another 80/10/10 draw of the
tracks, stratified by label) and scores it on that split's test part, so the table gives the mean and the
spread over splits. Each fit sees its own training split only (C by cross-validation on it), and nothing is
chosen on the test splits. Contenders (``tuneseek train classifier --features GROUPS``, through the Python
API):

* ``mfcc`` — MFCC statistics and logistic regression, the classic baseline;
* ``musicnn-penultimate/mean`` — the 200-d penultimate layer averaged over windows: the embedding the
  library stores, as the team's first probe used it;
* ``probe`` — the default probe: musicnn (penultimate, pooled layers, both vocabularies' tags), rhythm
  and timbre descriptors, six statistics;
* ``probe-no-rhythm`` — the same without the rhythm descriptors.

The window matrices come from the probe's cache (``--cache``), so only the first run describes audio.
Results: ``bench-work/smalldata/splits/<dataset>.json`` and a markdown table printed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from tuneseek.evaluate.trained import evaluate_run
from tuneseek.train.probe import ProbeSettings, train_probe

OUT = Path("bench-work/smalldata/splits")
CONTENDERS = {
    "mfcc": (("mfcc",), ("mean", "std", "max", "q10", "q50", "q90")),
    "musicnn-penultimate/mean": (("musicnn-penultimate",), ("mean",)),
    "probe": (("musicnn", "rhythm", "timbre"), ("mean", "std", "max", "q10", "q50", "q90")),
    "probe-no-rhythm": (("musicnn", "timbre"), ("mean", "std", "max", "q10", "q50", "q90")),
}


def quiet(_msg: str) -> None:
    pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, metavar="folder:PATH")
    ap.add_argument("--cache", help="the probe's cache folder (window matrices are reused)")
    ap.add_argument("--seeds", default="0,1,2,3,4", help="split seeds, comma-separated (default 0,1,2,3,4)")
    ap.add_argument("--only", help="contenders, comma-separated (default all)")
    ap.add_argument("--workers", type=int, default=1, help="processes for describing and for the folds")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.only.split(",") if args.only else list(CONTENDERS)
    OUT.mkdir(parents=True, exist_ok=True)
    out_file = OUT / f"{Path(args.data.partition(':')[2]).name}.json"
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    for name in names:
        groups, stats = CONTENDERS[name]
        for seed in seeds:
            if str(seed) in results.get(name, {}):
                continue
            started = time.time()
            with tempfile.TemporaryDirectory() as tmp:
                settings = ProbeSettings(
                    data=args.data,
                    out=f"{tmp}/run",
                    groups=groups,
                    stats=stats,
                    data_options={"seed": seed},
                    seed=seed,
                    workers=args.workers,
                    cache=args.cache,
                )
                summary = train_probe(settings, say=quiet)
                test = evaluate_run(f"{tmp}/run", split="test", cache=args.cache, workers=args.workers, say=quiet)
            results.setdefault(name, {})[str(seed)] = {
                "accuracy": test["accuracy"],
                "balanced_accuracy": test["balanced_accuracy"],
                "valid_balanced_accuracy": summary["valid"]["balanced_accuracy"],
                "chosen_C": summary["cross_validation"]["chosen_C"],
                "test_items": test["items"],
                "seconds": round(time.time() - started, 1),
            }
            out_file.write_text(json.dumps(results, indent=2) + "\n")
            print(f"{name} seed {seed}: test accuracy {test['accuracy']:.3f}", flush=True)
    lines = [
        f"{args.data}, splits by track with seeds {args.seeds}: test accuracy and balanced accuracy, "
        "mean ± standard deviation over the splits",
        "",
        "| contender | test accuracy | test balanced accuracy | per split (accuracy) |",
        "| --- | ---: | ---: | --- |",
    ]
    for name in names:
        runs = [results[name][str(s)] for s in seeds if str(s) in results.get(name, {})]
        acc = np.array([r["accuracy"] for r in runs])
        bal = np.array([r["balanced_accuracy"] for r in runs])
        lines.append(
            f"| {name} | {100 * acc.mean():.1f} ± {100 * acc.std():.1f} % | {100 * bal.mean():.1f} ± "
            f"{100 * bal.std():.1f} % | {', '.join(f'{100 * a:.1f}' for a in acc)} |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
