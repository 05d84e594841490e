"""Evaluating a trained tagger or classifier on a split of a dataset (``tuneseek evaluate model RUN``).

The dataset is the one the run was trained on, or another one named with ``data`` whose labels
the model knows (a held-out collection labelled the same way). A network's item score is the mean
of its outputs over evenly spaced windows of the item (8 by default: the usual practice for
taggers evaluated on whole clips); a probe (:mod:`tuneseek.train.probe`) scores the item's pooled
features, the whole item at once. Then the field's metrics are computed
(:mod:`tuneseek.train.metrics`). Results go beside the checkpoint, in ``RUN/eval/<split>/`` (or
``RUN/eval/<dataset folder>-<split>/`` for another dataset): ``metrics.json``, and for classifiers
``confusion-matrix.png``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tuneseek import analysis, plots
from tuneseek.data.datasets import open_dataset
from tuneseek.embed.pooled import FeatureSpec
from tuneseek.errors import UsageError
from tuneseek.fileio import atomic_write_bytes
from tuneseek.models import checkpoint
from tuneseek.models.probe import ProbeHead
from tuneseek.train import items as it
from tuneseek.train import metrics
from tuneseek.train.probe import dataset_vectors
from tuneseek.train.run import default_cache


def evaluate_run(
    run: str | Path,
    *,
    split: str = "test",
    data: str | None = None,
    data_options: dict | None = None,
    crops: int = 8,
    cache: str | None = None,
    workers: int = 1,
    say: Callable[[str], None] = print,
) -> dict:
    """Metrics of the model in ``run`` on ``split`` of the dataset it was trained on (or of ``data``,
    ``KIND:PATH``, read with the reader's ``data_options``), written to the run's ``eval/`` folder and
    returned; ``crops`` windows per item, ``cache`` the decoded-audio cache (default
    :func:`~tuneseek.train.run.default_cache`), ``workers`` processes describing audio for a probe, ``say``
    gets progress lines.

    Raises :class:`UsageError` for a run that has no labels of its own (an embedding or text–audio
    run), a dataset whose labels changed since training or that the model does not know, or an
    unknown split.
    """
    run = Path(run).expanduser()
    analysis.use_cores()  # one thread per idle core: two on a busy 2-core machine ran the networks many times slower
    model, config = checkpoint.load(run)
    task = config.get("task")
    if task not in ("multi-label", "single-label"):
        raise UsageError(
            f"{run} holds a {task or 'model without a task'} model: it has no labels of its own to score; "
            "evaluate its embeddings against labelled data with --labels KIND:PATH"
        )
    labels = list(config["labels"])
    if data is None:
        trained_on = config["data"]
        ds = open_dataset(trained_on["spec"], **trained_on.get("options", {}))
        if list(ds.labels) != labels:
            raise UsageError(
                f"the dataset's labels no longer match the model's ({trained_on['spec']} changed since training)"
            )
    else:
        ds = open_dataset(data, **(data_options or {}))
        unknown = sorted(set(ds.labels) - set(labels))
        if unknown or ds.task != task:
            raise UsageError(
                f"{data} is a {ds.task} dataset with labels {', '.join(unknown) or '(same)'} that the model "
                f"({task}: {', '.join(labels)}) does not have"
            )
    if split not in ds.splits:
        raise UsageError(f"no split {split!r} (have {', '.join(ds.splits)})")
    y = _targets(ds, split, labels)
    cache_dir = Path(cache).expanduser() if cache else default_cache()
    if config.get("architecture") == ProbeHead.architecture:
        vectors, kept, failed = dataset_vectors(
            ds.splits[split], FeatureSpec.from_dict(config["features"]), cache=cache_dir, workers=workers
        )
        y = y[kept]
        with torch.inference_mode():
            logits = model(torch.from_numpy(vectors))
            scores = (torch.sigmoid(logits) if task == "multi-label" else torch.softmax(logits, dim=1)).numpy()
        crops = 0  # the whole item, pooled
    else:
        items, y, failed = it.usable(ds.splits[split], y, sample_rate=model.spec.sample_rate, cache=cache_dir)
        excerpts = it.Excerpts(items, None, spec=model.spec, window_seconds=model.window_seconds, cache=cache_dir)
        scores = []
        with torch.inference_mode():
            for i in range(len(items)):
                out = model(torch.from_numpy(excerpts.windows(i, crops)))
                probs = torch.sigmoid(out) if task == "multi-label" else torch.softmax(out, dim=1)
                scores.append(probs.mean(dim=0).numpy())
        scores = np.stack(scores) if scores else np.zeros((0, len(labels)), np.float32)
    if failed:
        say(f"left out {len(failed)} item(s) that cannot be read")
    if not len(y):
        raise UsageError(f"no usable audio in the {split} split")
    score = metrics.tagging if task == "multi-label" else metrics.classification
    result = score(y, scores, labels=labels)
    where = split if data is None else f"{ds.root.name}-{split}"
    result = {
        "run": str(run),
        "split": split,
        "data": data or config["data"]["spec"],
        "task": task,
        "windows_per_item": crops,
        **result,
    }
    folder = run / "eval" / where
    folder.mkdir(parents=True, exist_ok=True)
    result["written"] = str(folder)
    atomic_write_bytes(folder / "metrics.json", (json.dumps(result, indent=2) + "\n").encode())
    if task == "single-label":
        plots.confusion_matrix(
            np.array(result["confusion"]),
            labels=labels,
            path=folder / "confusion-matrix.png",
            title=f"{run.name}: {where}",
        )
    return result


def _targets(ds, split: str, labels: list[str]) -> np.ndarray:
    """The split's targets in the model's label order (a dataset's own order may differ, or lack labels)."""
    own = ds.targets(split)
    index = np.array([labels.index(label) for label in ds.labels])
    if ds.task == "single-label":
        return index[own]
    out = np.zeros((len(own), len(labels)), np.float32)
    out[:, index] = own
    return out
