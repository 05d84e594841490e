"""Evaluating any run folder of ``tuneseek train``, whichever kind it is (``tuneseek evaluate model RUN``).

A run's ``config.json`` says what it holds, and that decides how it is scored:

- a text–audio run: text→audio retrieval on a split of its pairs, beside the zero-shot mode
  (:mod:`tuneseek.evaluate.text_audio`);
- any other run given ``labels``, or ``musicnn`` / ``musicnn:LAYER`` (the pretrained network's
  layers): its embeddings against that labelled dataset (:mod:`tuneseek.evaluate.embeddings`);
- a tagger or classifier: the field's metrics on a split of the dataset it was trained on
  (:mod:`tuneseek.evaluate.trained`).

Faces call :func:`evaluate_model` and print :func:`format_model_report`, so that they need not
know the kinds of runs nor read checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tuneseek.errors import UsageError
from tuneseek.evaluate.embeddings import evaluate_embeddings, format_embedding_table
from tuneseek.evaluate.text_audio import evaluate_text_audio, format_text_audio_table
from tuneseek.evaluate.trained import evaluate_run
from tuneseek.models import checkpoint
from tuneseek.train.fingerprint_eval import segment_rates
from tuneseek.train.run import default_cache

__all__ = ["KINDS", "evaluate_model", "format_model_report"]

#: What ``evaluate_model`` says it scored: the ``kind`` of its result.
KINDS = ("tagger", "classifier", "embedding", "text-audio")


def evaluate_model(
    run: str | Path,
    *,
    split: str = "test",
    data: str | None = None,
    labels: str | None = None,
    data_options: dict | None = None,
    crops: int = 8,
    map_method: str = "tsne",
    cache: str | None = None,
    say: Callable[[str], None] = print,
) -> dict:
    """The metrics of the run folder ``run``, as written to its ``eval/`` folder, and its ``kind`` (:data:`KINDS`).

    ``split`` is the split scored (taggers, classifiers, text–audio runs), of the dataset the run was
    trained on or of ``data`` (``KIND:PATH``, taggers and classifiers); ``labels`` a labelled
    dataset (``KIND:PATH``): an embedding run is scored against it, a text–audio run also
    classifies it zero-shot by prompts; ``data_options`` are the reader's options for ``data`` or ``labels``
    (``{"label": "family"}`` for a ``csv:`` table's column; ``seed``). ``crops`` windows per item are averaged (not for
    text–audio runs); ``map_method`` draws the map of an embedding run (``"tsne"`` or ``"pca"``);
    ``cache`` is the decoded-audio cache; ``say`` gets progress lines.

    Raises :class:`~tuneseek.errors.ModelError` when ``run`` is not a readable run folder,
    and :class:`~tuneseek.errors.UsageError` when it cannot be scored as asked (an embedding run
    without ``labels``, ``labels`` for a tagger).
    """
    pretrained = str(run).partition(":")[0] == "musicnn" and not Path(str(run)).expanduser().exists()
    task = None if pretrained else checkpoint.read_config(Path(run).expanduser()).get("task")
    if task == "text-audio":
        return {"kind": "text-audio", **evaluate_text_audio(run, split=split, labels=labels, cache=cache, say=say)}
    if task == "fingerprint":
        if data is None:
            raise UsageError(
                f"{run} is a learned fingerprint: score it on an origin/sample layout with --data queries:DIR "
                "(segment level; `evaluate identify DIR --fingerprint RUN` gives the song level)"
            )
        where = Path(cache).expanduser() if cache else default_cache()
        return {
            "kind": "fingerprint",
            "run": str(run),
            **segment_rates(run, data=data, split=split, cache=where, say=say),
        }
    if pretrained and not labels:
        raise UsageError(
            f"{run} is the pretrained musicnn: score its layers against labelled data with --labels KIND:PATH"
        )
    if labels:
        return {
            "kind": "embedding",
            **evaluate_embeddings(
                run, labels, labels_options=data_options, crops=crops, cache=cache, say=say, map_method=map_method
            ),
        }
    result = evaluate_run(run, split=split, data=data, data_options=data_options, crops=crops, cache=cache, say=say)
    return {"kind": "tagger" if result["task"] == "multi-label" else "classifier", **result}


def _confusion_lines(result: dict) -> list[str]:
    """The confusion matrix as text, columns numbered by the rows' order."""
    labels = list(result["per_class_recall"])
    width = max(4, *(len(str(v)) + 1 for row in result["confusion"] for v in row))
    name = max(len(label) for label in labels)
    head = " " * (name + 8) + "".join(f"{j + 1:>{width}}" for j in range(len(labels)))
    rows = [
        f"    {i + 1:>2} {label:<{name}} " + "".join(f"{v:>{width}}" for v in row)
        for i, (label, row) in enumerate(zip(labels, result["confusion"]))
    ]
    return [head, *rows]


def format_model_report(result: dict, *, show: int = 5) -> str:
    """The terminal report of :func:`evaluate_model`'s ``result``; a tagger's worst ``show`` tags are listed."""
    if result["kind"] == "text-audio":
        return format_text_audio_table(result)
    if result["kind"] == "embedding":
        return format_embedding_table(result)
    if result["kind"] == "fingerprint":
        return "\n".join(
            [
                f"{result['run']}: {result['split']} split of {result['data']}: {result['query_segments']} query segments "
                f"of {result['samples']} samples against {result['index_segments']} origin segments "
                f"({result['hop_seconds']:g} s apart)",
                f"  exact hit (right track, within half a hop)   {100 * result['exact']:.1f} %",
                f"  near hit (right track, within 1.5 hops)      {100 * result['near']:.1f} %",
                f"  right track                                  {100 * result['track']:.1f} %",
            ]
        )
    per_item = f"{result['windows_per_item']} windows each" if result["windows_per_item"] else "each pooled whole"
    lines = [f"{result['run']}: {result['split']} split of {result['data']}, {result['items']} items, {per_item}"]
    if result["kind"] == "tagger":
        lines += [f"  ROC-AUC (macro)   {result['roc_auc']:.4f}", f"  PR-AUC (macro)    {result['pr_auc']:.4f}"]
        worst = sorted(result["per_tag"].items(), key=lambda kv: kv[1]["roc_auc"])
        lines += [
            f"    {label:<20} ROC-AUC {m['roc_auc']:.3f}  PR-AUC {m['pr_auc']:.3f}  ({m['positives']} positives)"
            for label, m in worst[:show]
        ]
        if result["tags_without_both_classes"]:
            lines.append(
                "  not scored (no positive or no negative in this split): "
                f"{', '.join(result['tags_without_both_classes'])}"
            )
    else:
        lines += [
            f"  accuracy            {result['accuracy']:.4f}",
            f"  balanced accuracy   {result['balanced_accuracy']:.4f}",
        ]
        lines += [
            f"    {label:<20} recall {r:.3f}" if r is not None else f"    {label:<20} no example in this split"
            for label, r in result["per_class_recall"].items()
        ]
        lines += ["  confusion matrix (rows: true, columns: predicted)", *_confusion_lines(result)]
    lines.append(f"  written: {result['written']}")
    return "\n".join(lines)
