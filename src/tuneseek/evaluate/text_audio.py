"""Text-to-music retrieval as the field reports it, for a trained text–audio run and for zero-shot search.

``evaluate_text_audio(run)`` takes the held-out pairs of the run's own source (the test split by
default, cut as in training), and scores two ways of finding their audio from their text, side
by side, with the chance level beside them:

* ``trained``: the run's joint space (:mod:`tuneseek.embed.text_audio`): the pair's musicnn
  segments and the query projected, ranked by dot product;
* ``zero_shot``: the search that works before any training (:func:`tuneseek.text.zero_shot`):
  the musicnn tags (MagnaTagATune and MSD vocabularies) of the same audio, weighted by the
  query, standardised over the evaluated pairs as a library standardises them over its tracks.

Each distinct full sentence of the held-out pairs (:func:`tuneseek.train.text_audio.full_sentence`)
is one query; its matches are the pairs that carry exactly that sentence (one, for free-text
captions; every clip tagged just "rock, guitar" for a tag dataset), so that identical queries
are not counted twice and their matches are not counted as misses. The metrics are those
training validates with (:mod:`tuneseek.train.metrics`): R@1, R@5, R@10, mAP@10, the median rank
of the first match and the mean reciprocal rank, ties counted against the query.

With ``labels="folder:DIR"`` (one sub-folder per class), both modes also classify every audio
file of the folder zero-shot: the class whose prompt ("a {label} song") scores the file
highest; accuracy and balanced accuracy, with the majority-class and 1/classes levels beside.

The result is written to ``RUN/eval/<split>/metrics.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

import numpy as np

from tuneseek import analysis
from tuneseek.data.captions import Pair, open_pairs
from tuneseek.data.datasets import SPLITS, open_dataset
from tuneseek.embed.text_audio import TextAudioRun, load_text_audio
from tuneseek.errors import UsageError
from tuneseek.fileio import atomic_write_bytes
from tuneseek.text import TagTable, TextEncoder, tag_weights, zero_shot
from tuneseek.train.metrics import KS, MAP_AT, chance, classification, queries, retrieval
from tuneseek.train.run import default_cache
from tuneseek.train.text_audio import full_sentence, pair_features

__all__ = ["PROMPT", "evaluate_text_audio", "format_text_audio_table"]

#: The zero-shot classification prompt of both modes.
PROMPT = "a {label} song"
MODES = ("trained", "zero_shot", "chance")


def evaluate_text_audio(
    run: str | Path,
    *,
    split: str = "test",
    labels: str | None = None,
    cache: str | None = None,
    say: Callable[[str], None] = print,
    workers: int = 1,
    executor: Executor | None = None,
) -> dict:
    """Retrieval metrics of the run in ``run`` on ``split`` of its pairs, trained and zero-shot side by side;
    with ``labels`` (``folder:DIR``), zero-shot classification accuracy of both. Written to
    ``RUN/eval/<split>/metrics.json`` and returned. ``workers`` processes, or ``executor``, compute
    the musicnn features that are not cached yet (see :func:`~tuneseek.train.text_audio.pair_features`).

    Raises :class:`~tuneseek.errors.ModelError` when ``run`` is not a text–audio run or its
    text model is not this machine's, :class:`UsageError` for an unknown split, labels that are
    not one class per item, or no usable audio, and :class:`~tuneseek.errors.DatasetError` when
    the pairs or the labelled folder cannot be read.
    """
    ta = load_text_audio(run)
    if split not in SPLITS:
        raise UsageError(f"no split {split!r} (have {', '.join(SPLITS)})")
    source, seed = ta.config["pairs"]["source"], ta.config["pairs"]["seed"]
    pairs = open_pairs(source, seed=seed)
    cache_dir = Path(cache).expanduser() if cache else default_cache()
    extractors = [analysis.EMBEDDING_EXTRACTOR, *analysis.TAG_EXTRACTORS]
    vocabularies = analysis.vocabularies()
    kept, features, failed = pair_features(
        pairs.splits[split], extractors, cache_dir, say=say, workers=workers, executor=executor
    )
    left_out = [{"key": p.key, "path": str(p.path), "reason": r} for p, r in failed]
    if failed:
        say(f"left out {len(failed)} pair(s) whose audio cannot be used (listed in metrics.json)")
    if not kept:
        raise UsageError(f"no usable audio in the {split} split of {source}")

    sentences = [full_sentence(p) for p in kept]
    first, relevant = queries(sentences)
    texts = [sentences[i] for i in first]
    say(f"ranking {len(kept)} pairs for {len(texts)} queries, trained and zero-shot")
    trained = ta.text_vectors(texts) @ ta.audio_vectors([f[analysis.EMBEDDING_EXTRACTOR] for f in features]).T
    table = _tag_table(vocabularies, features)
    zero, refused = _zero_shot_scores(texts, ta.encoder, table)
    notes = list(pairs.notes)
    if refused:
        notes.append(
            f"{refused} quer(ies) the zero-shot search refuses (no words its text model knows) count as finding nothing"
        )
    result: dict = {
        "run": str(ta.folder),
        "model": ta.version,
        "text_model": ta.encoder.version,
        "pairs_source": source,
        "split": split,
        "retrieval": {
            "pairs": len(kept),
            "queries": len(texts),
            "trained": retrieval(trained, relevant),
            "zero_shot": retrieval(zero, relevant),
            "chance": chance(relevant),
        },
        "classification": None,
        "left_out": left_out,
        "notes": notes,
    }
    if labels is not None:
        result["classification"] = _classification(
            ta, labels, extractors, vocabularies, cache_dir, say=say, workers=workers, executor=executor
        )
        result["left_out"] += result["classification"].pop("left_out")

    folder = ta.folder / "eval" / split
    folder.mkdir(parents=True, exist_ok=True)
    result["files"] = {"metrics": str(folder / "metrics.json")}
    atomic_write_bytes(folder / "metrics.json", (json.dumps(result, indent=2) + "\n").encode())
    return result


def _tag_table(vocabularies: dict[str, list[str]], features: list[dict[str, np.ndarray]]) -> TagTable:
    """The zero-shot :class:`~tuneseek.text.TagTable` of the items, in their order (track id = index)."""
    probs = {v: np.stack([f[f"tags:{v}"] for f in features]) for v in vocabularies}
    return TagTable(vocabularies, np.arange(len(features)), probs)


def _zero_shot_scores(texts: list[str], encoder: TextEncoder, table: TagTable) -> tuple[np.ndarray, int]:
    """``(queries, items)`` zero-shot scores, and how many queries were refused (their row all zeros: found nothing)."""
    scores = np.zeros((len(texts), len(table)), np.float64)
    refused = 0
    for q, text in enumerate(texts):
        try:
            ranking = zero_shot(text, encoder, table)
        except UsageError:
            refused += 1
            continue
        ids, values = zip(*ranking.tracks)
        scores[q, list(ids)] = values
    return scores, refused


def _classification(
    ta: TextAudioRun,
    spec: str,
    extractors: list[str],
    vocabularies: dict[str, list[str]],
    cache: Path,
    *,
    say: Callable[[str], None],
    workers: int,
    executor: Executor | None,
) -> dict:
    """Zero-shot classification of every audio file of a labelled folder, by prompts, in both modes."""
    ds = open_dataset(spec)
    if ds.task != "single-label":
        what = "has no labels" if ds.task == "unlabelled" else "gives several labels per item"
        raise UsageError(
            f"{spec} {what}: zero-shot classification needs one class per file (a folder with one sub-folder per class)"
        )
    classes = list(ds.labels)
    items = [Pair(it.key, it.path, None, None, (), it.labels, it.group) for s in SPLITS for it in ds.splits[s]]
    kept, features, failed = pair_features(items, extractors, cache, say=say, workers=workers, executor=executor)
    if not kept:
        raise UsageError(f"no usable audio in {spec}")
    say(f"classifying {len(kept)} files of {spec} into {len(classes)} classes by prompts")
    y = np.array([classes.index(p.tags[0]) for p in kept])
    prompts = [PROMPT.format(label=c) for c in classes]
    trained = ta.audio_vectors([f[analysis.EMBEDDING_EXTRACTOR] for f in features]) @ ta.text_vectors(prompts).T
    table = _tag_table(vocabularies, features)
    zero = np.stack([table.z @ tag_weights(p, ta.encoder, table.vocabularies).weights for p in prompts], axis=1)
    counts = np.bincount(y, minlength=len(classes))
    return {
        "labels_dataset": spec,
        "prompt": PROMPT,
        "classes": classes,
        "items": len(kept),
        "trained": classification(y, trained, labels=classes),
        "zero_shot": classification(y, zero, labels=classes),
        "chance": {"accuracy": float(counts.max() / counts.sum()), "balanced_accuracy": 1.0 / len(classes)},
        "left_out": [{"key": p.key, "path": str(p.path), "reason": r} for p, r in failed],
    }


def format_text_audio_table(result: dict) -> str:
    """The terminal report of :func:`evaluate_text_audio`: both modes and chance side by side, the notes, the file."""
    r = result["retrieval"]
    header = f"  {'':<20}{'trained':>10}{'zero-shot':>11}{'chance':>10}"
    lines = [
        f"{result['run']}: text→audio retrieval on the {result['split']} split of {result['pairs_source']}",
        f"  {r['pairs']} pairs, {r['queries']} distinct queries (a query's matches: the pairs that carry its text)",
        header,
    ]
    for key, label in [(f"R@{k}", f"R@{k}") for k in KS] + [
        (f"mAP@{MAP_AT}", f"mAP@{MAP_AT}"),
        ("median_rank", "median rank"),
    ]:
        digits = 1 if key == "median_rank" else 4
        lines.append(
            f"  {label:<20}" + "".join(f"{r[m][key]:>{10 if m != 'zero_shot' else 11}.{digits}f}" for m in MODES)
        )
    c = result.get("classification")
    if c:
        lines += [
            f"zero-shot classification of {c['labels_dataset']}: {c['items']} files, {len(c['classes'])} classes, "
            f'prompts "{c["prompt"]}"',
            header,
        ]
        for key, label in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy")):
            lines.append(f"  {label:<20}" + "".join(f"{c[m][key]:>{10 if m != 'zero_shot' else 11}.4f}" for m in MODES))
        lines.append("  (chance: the majority class's share for accuracy, 1 / classes for balanced accuracy)")
    if result["left_out"]:
        lines.append(
            f"left out {len(result['left_out'])} file(s) or pair(s) whose audio cannot be used (listed in metrics.json)"
        )
    lines += [f"note: {n}" for n in result["notes"]]
    lines.append(f"written: {result['files']['metrics']}")
    return "\n".join(lines)
