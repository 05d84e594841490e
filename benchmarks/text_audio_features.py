#!/usr/bin/env python3
"""Would the text–audio model gain from musicnn's pooled layers instead of its penultimate one? (issue 14, part 5)

    python benchmarks/text_audio_features.py --cache bench-work/smalldata/cache --seeds 0,1,2,3,4

``tuneseek train text-audio`` projects the library's stored segment vectors, musicnn's 200-d penultimate
layer, into the joint space: it has no option for other features, and a model over other features
could not be used by a library that stores only the penultimate layer. This measures, before anyone
builds that, whether it would help: the same model (:class:`tuneseek.models.text_audio.TextAudioModel`),
the same Lightning module, loss, stochastic sentences, crops, optimiser, schedule, early stopping and
best-epoch choice as ``train text-audio`` (imported from :mod:`tuneseek.train.text_audio`, its defaults:
30 epochs, patience 5, batch 64, lr 1e-3, 3 segments a crop), trained on each of these segment vectors:

* ``penultimate`` — the 200-d penultimate layer (what ``train text-audio`` uses today);
* ``pooled`` — the 753-d ``max_pool`` and 753-d ``mean_pool`` mid-level layers (1 506);
* ``pooled+penultimate`` — both (1 706).

The segments are the probe's cached musicnn windows (3 s side by side,
:func:`tuneseek.train.probe.dataset_windows`), not the library's 3.7 s segments: the same for every arm.
Data, each split 80/10/10 by track with the folder reader's seeds (``--seeds``), one model per arm and
seed, the valid split choosing the epoch, the test split scored once:

* ``soundtracks`` — ``folder:bench-work/smalldata/soundtracks`` as a tag dataset (each clip's text is its
  game's name, as ``train text-audio --data folder:DIR`` reads it): 11 queries on a test split;
* ``synthcap`` — synthetic songs (:mod:`tuneseek.synth`, 30 s, 16 kHz, the first 500 of catalogue seed
  2024; 438 fall in a tempo band) captioned by how they were rendered: tempo (slow 70–94, medium 102–124, fast 132–160 bpm; the songs between are
  not used), ``major key``/``minor key``, and the melody's instrument (``organ``, ``square wave lead``,
  ``sawtooth lead``, ``bell``, ``plucked``); built once into ``bench-work/item5/synthcap`` (one folder
  per tempo band, one clip per song) with ``synthcap.json`` naming each clip's tags.

Scores on the test split (:func:`tuneseek.train.metrics.retrieval`): text→audio R@1, R@5, R@10, mAP@10
and MRR with each distinct full sentence a query (its matches: the clips with exactly that text), and
for ``synthcap`` also each single tag a query (``fast``, ``bell``...: its matches, every clip with that
tag), with the zero-shot tag search (:func:`tuneseek.text.zero_shot` on the same clips' mean musicnn
tag probabilities) and chance beside them. Results: ``bench-work/item5/text_audio_features.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from tuneseek import analysis
from tuneseek.data.captions import Pair
from tuneseek.data.datasets import open_dataset
from tuneseek.embed.pooled import BLOCK_COLUMNS
from tuneseek.errors import UsageError
from tuneseek.text import TagTable, TextEncoder, zero_shot
from tuneseek.train.metrics import chance, queries, retrieval
from tuneseek.train.parallel import quiet_lightning
from tuneseek.train.probe import dataset_windows
from tuneseek.train.run import best_path, fit, make_trainer
from tuneseek.train.text_audio import MONITOR, TextAudioSettings, collate, full_sentence, loaders_and_task

OUT = Path("bench-work/item5")
SYNTH = OUT / "synthcap"
SYNTH_SEED, SYNTH_SONGS = 2024, 500
BANDS = {"slow": (70, 94), "medium": (102, 124), "fast": (132, 160)}
INSTRUMENT = {
    "organ": "organ",
    "square": "square wave lead",
    "saw": "sawtooth lead",
    "bell": "bell",
    "pluck": "plucked",
}
ARMS = {
    "penultimate": ["penultimate"],
    "pooled": ["max_pool", "mean_pool"],
    "pooled+penultimate": ["max_pool", "mean_pool", "penultimate"],
}


def build_synthcap() -> dict[str, list[str]]:
    """The synthetic captioned songs (once), and ``{file name: tags}``."""
    manifest = SYNTH.with_suffix(".json")
    if manifest.exists():
        return json.loads(manifest.read_text())
    import soundfile as sf

    from tuneseek.synth import synth_catalog

    tags = {}
    for t in synth_catalog(SYNTH_SONGS, duration=30.0, sr=16000, seed=SYNTH_SEED):
        band = next((b for b, (lo, hi) in BANDS.items() if lo <= t.tempo <= hi), None)
        if band is None:
            continue
        (SYNTH / band).mkdir(parents=True, exist_ok=True)
        sf.write(SYNTH / band / f"{t.name}.flac", t.audio, 16000)
        tags[f"{t.name}.flac"] = [band, t.key.split()[1] + " key", INSTRUMENT[t.timbre]]
    manifest.write_text(json.dumps(tags, indent=1) + "\n")
    return tags


def split_pairs(dataset: str, seed: int, cache: str, captions: dict | None):
    """``{split: (pairs, window matrices)}`` of a folder's split ``seed``; tags from ``captions`` or the labels."""
    ds = open_dataset(dataset, seed=seed)
    out = {}
    for split in ("train", "valid", "test"):
        items = ds.splits[split]
        windows, kept, failed = dataset_windows(items, ["musicnn"], cache=cache)
        if failed:
            raise UsageError(f"{len(failed)} item(s) of {dataset} cannot be described")
        pairs = [
            Pair(it.key, it.path, None, None, (), tuple(captions[it.path.name]) if captions else it.labels, it.group)
            for it in (items[i] for i in kept)
        ]
        out[split] = (pairs, [w["musicnn"] for w in windows])
    return out


def train_arm(data: dict, blocks: list[str], seed: int, encoder_name: str | None) -> tuple[object, dict]:
    """Train the text–audio model on ``blocks`` of the windows, as ``train text-audio`` does; the best epoch's
    model and what the run did."""
    s = TextAudioSettings(pairs="-", out="-", seed=seed, text_model=encoder_name)
    columns = np.concatenate([BLOCK_COLUMNS[b] for b in blocks])
    used = {split: (pairs, [w[:, columns] for w in windows]) for split, (pairs, windows) in data.items()}
    train_loader, valid_loader, task = loaders_and_task(used, s, text_dim=384)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        trainer, best = make_trainer(
            out,
            MONITOR,
            epochs=s.epochs,
            seed=seed,
            patience=s.patience,
            tensorboard=False,
            steps_per_epoch=len(train_loader),
            say=lambda _m: None,
        )
        fit(trainer, task, train_loader, valid_loader, ckpt_path=None)
        trained = type(task).load_from_checkpoint(best_path(out, best), map_location="cpu")
        run = {"epochs_run": int(trainer.current_epoch), "best_valid_selection": float(best.best_model_score)}
    trained.eval()
    return trained, {**run, "test_windows": used["test"][1]}


def scores_of(task, windows: list[np.ndarray], texts: list[str]) -> np.ndarray:
    """``(texts, items)`` dot products in the trained space: every window of an item, averaged as in validation."""
    segments, mask, _ = collate([(torch.from_numpy(w), "") for w in windows])
    with torch.no_grad():
        audio = task.model.embed_audio(segments, mask=mask)
        text = task.model.embed_text(task.sentence_vectors(texts))
    return (text @ audio.T).numpy()


def tag_queries(pairs: list[Pair]) -> tuple[list[str], np.ndarray]:
    """Each single tag of the pairs a query; its matches every pair with that tag."""
    tags = sorted({t for p in pairs for t in p.tags})
    return tags, np.array([[t in p.tags for p in pairs] for t in tags])


def classified(score, pairs: list[Pair], groups: dict[str, list[str]]) -> dict:
    """Audio→text classification: for each group of texts (the games; tempo, key, instrument), each clip's
    best-scoring text against the one among its tags; accuracy and balanced accuracy."""
    out = {}
    for name, texts in groups.items():
        truth = np.array([next(i for i, t in enumerate(texts) if t in p.tags) for p in pairs])
        predicted = np.asarray(score(texts)).argmax(axis=0)
        recalls = [float((predicted[truth == c] == c).mean()) for c in np.unique(truth)]
        out[name] = {"accuracy": float((predicted == truth).mean()), "balanced_accuracy": float(np.mean(recalls))}
    return out


def random_scores(texts: list[str], *, items: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((len(texts), items))


def zero_shot_scores(texts: list[str], windows: list[np.ndarray], encoder: TextEncoder) -> np.ndarray:
    vocab = analysis.vocabularies()
    probs = {v: np.stack([w[:, BLOCK_COLUMNS[f"{v}_tags"]].mean(axis=0) for w in windows]) for v in vocab}
    table = TagTable(vocab, np.arange(len(windows)), probs)
    out = np.zeros((len(texts), len(windows)))
    for q, text in enumerate(texts):
        ids, values = zip(*zero_shot(text, encoder, table).tracks)
        out[q, list(ids)] = values
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="the probe's cache (window matrices; made where missing)")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--datasets", default="soundtracks,synthcap")
    ap.add_argument("--out", default=str(OUT / "text_audio_features.json"))
    args = ap.parse_args()
    out_file = Path(args.out)
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    quiet_lightning()
    encoder = TextEncoder(None)
    for name in args.datasets.split(","):
        captions = build_synthcap() if name == "synthcap" else None
        spec = f"folder:{SYNTH}" if name == "synthcap" else "folder:bench-work/smalldata/soundtracks"
        for seed in (int(s) for s in args.seeds.split(",")):
            key = f"{name}/{seed}"
            if key in results:
                continue
            started = time.time()
            data = split_pairs(spec, seed, args.cache, captions)
            test_pairs, test_windows = data["test"]
            sentences = [full_sentence(p) for p in test_pairs]
            first, relevant = queries(sentences)
            views = {"sentences": ([sentences[i] for i in first], relevant)}
            if captions:
                views["tags"] = tag_queries(test_pairs)
                groups = {
                    "tempo": list(BANDS),
                    "key": ["major key", "minor key"],
                    "instrument": list(INSTRUMENT.values()),
                }
            else:
                groups = {"game": sorted({t for pairs, _ in data.values() for p in pairs for t in p.tags})}
            row = {
                "items": {split: len(pairs) for split, (pairs, _) in data.items()},
                "queries": {v: len(texts) for v, (texts, _) in views.items()},
            }
            for view, (texts, rel) in views.items():
                row.setdefault("chance", {})[view] = chance(rel)
                if captions:
                    row.setdefault("zero_shot", {})[view] = retrieval(
                        zero_shot_scores(texts, test_windows, encoder), rel
                    )
            row["chance"]["classification"] = classified(
                partial(random_scores, items=len(test_pairs), seed=seed), test_pairs, groups
            )
            if captions:
                row["zero_shot"]["classification"] = classified(
                    partial(zero_shot_scores, windows=test_windows, encoder=encoder), test_pairs, groups
                )
            for arm, blocks in ARMS.items():
                task, run = train_arm(data, blocks, seed, None)
                windows = run.pop("test_windows")
                row[arm] = {"run": run}
                for view, (texts, rel) in views.items():
                    row[arm][view] = retrieval(scores_of(task, windows, texts), rel)
                row[arm]["classification"] = classified(partial(scores_of, task, windows), test_pairs, groups)
            row["seconds"] = round(time.time() - started, 1)
            results[key] = row
            out_file.write_text(json.dumps(results, indent=2) + "\n")
            summary = ", ".join(f"{arm} {row[arm]['sentences']['mAP@10']:.3f}" for arm in ARMS)
            print(f"{key}: sentence mAP@10 {summary} ({row['seconds']:.0f} s)", flush=True)
    report(results)


def report(results: dict) -> None:
    """Mean ± std over the seeds of each dataset, arm and view."""
    lines = []
    for name in sorted({k.split("/")[0] for k in results}):
        rows = [r for k, r in results.items() if k.split("/")[0] == name]
        for view in ("sentences", "tags"):
            if view not in rows[0]["penultimate"]:
                continue
            lines += [
                f"\n{name}, {view} as queries, test split, {len(rows)} split(s): mean ± std",
                "| features | R@1 | R@5 | R@10 | mAP@10 | MRR |",
                "| --- | ---: | ---: | ---: | ---: | ---: |",
            ]
            for arm in [*ARMS, "zero_shot", "chance"]:
                if arm not in rows[0] or view not in rows[0][arm]:
                    continue
                m = [r[arm][view] for r in rows]
                cells = [
                    f"{np.mean([x[k] for x in m]):.3f} ± {np.std([x[k] for x in m]):.3f}"
                    for k in ("R@1", "R@5", "R@10", "mAP@10", "MRR")
                ]
                lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        groups = list(rows[0]["penultimate"]["classification"])
        lines += [
            f"\n{name}, audio→text classification (accuracy / balanced accuracy), test split, mean ± std",
            "| features | " + " | ".join(groups) + " |",
            "| --- |" + " ---: |" * len(groups),
        ]
        for arm in [*ARMS, "zero_shot", "chance"]:
            if arm not in rows[0]:
                continue
            cells = []
            for g in groups:
                acc = [r[arm]["classification"][g]["accuracy"] for r in rows]
                bal = [r[arm]["classification"][g]["balanced_accuracy"] for r in rows]
                cells.append(f"{np.mean(acc):.3f} ± {np.std(acc):.3f} / {np.mean(bal):.3f}")
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
