"""Evaluating a trained tagger or classifier on a split of its dataset (``tuneseek evaluate model RUN``).

Each item is scored by the mean of the model's outputs over evenly spaced windows of it (8 by
default: the usual practice for taggers evaluated on whole clips), then the field's metrics
are computed (:mod:`tuneseek.train.metrics`). Results go beside the checkpoint, in
``RUN/eval/<split>/``: ``metrics.json``, and for classifiers ``confusion-matrix.png``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tuneseek import plots
from tuneseek.data.datasets import open_dataset
from tuneseek.errors import UsageError
from tuneseek.fileio import atomic_write_bytes
from tuneseek.models import checkpoint
from tuneseek.train import items as it
from tuneseek.train import metrics
from tuneseek.train.run import default_cache


def evaluate_run(
    run: str | Path,
    split: str = "test",
    *,
    crops: int = 8,
    cache: str | None = None,
    say: Callable[[str], None] = print,
) -> dict:
    """Metrics of the model in ``run`` on ``split`` of the dataset it was trained on, written to
    ``RUN/eval/<split>/`` and returned; ``crops`` windows per item, ``cache`` the decoded-audio cache
    (default :func:`~tuneseek.train.run.default_cache`), ``say`` gets progress lines.

    Raises :class:`UsageError` for a run that has no labels of its own (an embedding or text–audio
    run), a dataset whose labels changed since training, or an unknown split.
    """
    run = Path(run).expanduser()
    model, config = checkpoint.load(run)
    task = config.get("task")
    if task not in ("multi-label", "single-label"):
        raise UsageError(
            f"{run} holds a {task or 'model without a task'} model: it has no labels of its own to score; "
            "evaluate its embeddings against labelled data with --labels KIND:PATH"
        )
    data = config["data"]
    ds = open_dataset(data["spec"], **data.get("options", {}))
    if list(ds.labels) != list(config["labels"]):
        raise UsageError(f"the dataset's labels no longer match the model's ({data['spec']} changed since training)")
    if split not in ds.splits:
        raise UsageError(f"no split {split!r} (have {', '.join(ds.splits)})")
    cache_dir = Path(cache).expanduser() if cache else default_cache()
    items, y, failed = it.usable(
        ds.splits[split], ds.targets(split), sample_rate=model.spec.sample_rate, cache=cache_dir
    )
    if failed:
        say(f"left out {len(failed)} item(s) that cannot be decoded")
    excerpts = it.Excerpts(items, None, spec=model.spec, window_seconds=model.window_seconds, cache=cache_dir)
    scores = []
    with torch.inference_mode():
        for i in range(len(items)):
            out = model(torch.from_numpy(excerpts.windows(i, crops)))
            probs = torch.sigmoid(out) if task == "multi-label" else torch.softmax(out, dim=1)
            scores.append(probs.mean(dim=0).numpy())
    scores = np.stack(scores)
    labels = list(ds.labels)
    score = metrics.tagging if task == "multi-label" else metrics.classification
    result = score(y, scores, labels=labels)
    result = {"run": str(run), "split": split, "task": task, "windows_per_item": crops, **result}
    folder = run / "eval" / split
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "metrics.json", (json.dumps(result, indent=2) + "\n").encode())
    if task == "single-label":
        plots.confusion_matrix(
            np.array(result["confusion"]), labels, folder / "confusion-matrix.png", f"{run.name}: {split} split"
        )
    return result
