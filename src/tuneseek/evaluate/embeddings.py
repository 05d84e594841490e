"""Evaluating an embedding space against labels it never saw (``tuneseek evaluate model RUN --labels SPEC``).

A triplet run learns vectors without labels, so it is judged on a labelled dataset of one
class per item (GTZAN style, ``folder:/data/gtzan``): does the embedding separate the classes?
The same measure serves any space: a tagger's or classifier's penultimate layer (what
``index --embedder RUN`` stores), and the pretrained musicnn's layers, named ``musicnn`` (the
penultimate layer, the space the library stores) or ``musicnn:LAYER`` (``penultimate``,
``max_pool``, ``mean_pool``, ``pooled`` = both pools), on its 3 s windows side by side.

Each item is embedded as the mean of the unit embeddings of ``crops`` evenly spaced windows,
scaled back to unit length (the triplet loss compares unit vectors, so distances between
items keep the embedding's own geometry). musicnn's windows are first centred on the train
split's mean window, as the library centres its spaces before comparing (its layers share a
large component that all music has). The labelled dataset's **train** split fits a linear
probe; its **test** split scores the probe and is the only split that k-means, kNN retrieval
and the map see (:func:`tuneseek.train.metrics.embedding`). The valid split is not used:
nothing is tuned.

A class that has no usable item in the train or the test split (its files failed to decode,
or the dataset's own split left it out) cannot be both fitted and scored: it is dropped from
both splits, and the result's ``notes`` name it and say how many items went with it. Fewer
than two classes left is a :class:`~tuneseek.errors.UsageError`.

The map is a 2-D t-SNE (or PCA) of the test split's window vectors, at most
:data:`MAP_POINTS` of them (a seeded sample), as a PNG and a self-contained HTML page where
hovering a dot names the track, its label and the window's start.

Results go beside the checkpoint, in ``RUN/eval/<labels folder name>/`` (for musicnn, in
``eval/musicnn-LAYER/<labels folder name>/`` under the working folder): ``metrics.json``,
``embedding-map.png`` and ``embedding-map.html``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tuneseek import plots
from tuneseek.data.datasets import open_dataset
from tuneseek.embed.pooled import BLOCK_COLUMNS
from tuneseek.errors import UsageError
from tuneseek.evaluate.embedding_map import write_html
from tuneseek.fileio import atomic_write_bytes
from tuneseek.models import checkpoint
from tuneseek.train import items as it
from tuneseek.train import metrics
from tuneseek.train.probe import dataset_windows
from tuneseek.train.run import default_cache

#: the ``task`` of the runs whose networks give vectors: triplet embeddings, and taggers' and classifiers' penultimate
EMBEDDING_TASKS = ("triplet", "multi-label", "single-label")
#: The pretrained musicnn's layers that can be scored, by name (``musicnn`` alone: the library's space).
MUSICNN_LAYERS = {
    "penultimate": ("penultimate",),
    "max_pool": ("max_pool",),
    "mean_pool": ("mean_pool",),
    "pooled": ("max_pool", "mean_pool"),
}
MUSICNN_WINDOW = 3.0
MAP_METHODS = ("tsne", "pca")
MAP_POINTS = 3000
KNN_K = 5


def evaluate_embeddings(
    run: str | Path,
    labels_spec: str,
    *,
    labels_options: dict | None = None,
    crops: int = 8,
    cache: str | None = None,
    say: Callable[[str], None] = print,
    map_method: str = "tsne",
) -> dict:
    """Linear probe, k-means and kNN metrics and an embedding map of the embedding model in ``run``,
    against the classes of the labelled dataset ``labels_spec``, read with the reader's ``labels_options`` (see
    the module docstring).

    ``crops`` windows per item are embedded; ``cache`` is the decoded-audio cache (default
    :func:`~tuneseek.train.run.default_cache`); ``say`` gets progress lines; ``map_method`` is
    ``"tsne"`` or ``"pca"`` (faster, coarser). Returns what ``metrics.json`` holds: the
    metrics of :func:`tuneseek.train.metrics.embedding` with the split each used, the item
    counts, the map, the items left out, the notes and the paths of the written files.

    ``run`` is a run folder, or ``musicnn`` / ``musicnn:LAYER`` for the pretrained network.

    Raises :class:`~tuneseek.errors.UsageError` for a run without vectors (a probe, a text–audio
    run), an unknown musicnn layer, a dataset without exactly one label per item, fewer than two classes with
    usable items in both splits, or a bad ``crops``/``map_method``; the checkpoint and the
    dataset readers raise their own errors (``ModelError``, ``DatasetError``) for files they
    cannot read.
    """
    if map_method not in MAP_METHODS:
        raise UsageError(f"unknown map method {map_method!r}; known: {', '.join(MAP_METHODS)}")
    if crops < 1:
        raise UsageError(f"crops must be 1 or more, got {crops}")
    layer = _musicnn_layer(run)
    if layer is None:
        run = Path(run).expanduser()
        model, config = checkpoint.load(run)
        task = config.get("task")
        if task not in EMBEDDING_TASKS or not hasattr(model, "embed"):
            raise UsageError(
                f"{run} holds a {task or 'model without a task'} model: it gives no vectors to score "
                "(`evaluate model --labels` scores a triplet run, a tagger's or classifier's penultimate layer, or "
                "musicnn's layers)"
            )
        folder, window_seconds = run / "eval", model.window_seconds
    else:
        model, task = None, "pretrained"
        folder, window_seconds = Path("eval") / f"musicnn-{layer}", MUSICNN_WINDOW
    ds = open_dataset(labels_spec, **(labels_options or {}))
    if ds.task != "single-label":
        kind = "has no labels" if ds.task == "unlabelled" else "gives several labels per item"
        raise UsageError(
            f"{labels_spec} {kind}: embeddings are scored against one class per item "
            "(a folder with one sub-folder per class)"
        )
    labels = list(ds.labels)
    cache_dir = Path(cache).expanduser() if cache else default_cache()

    if model is not None:
        _check_features(ds, model.spec, labels_spec)
        used, left_out, embed_split = _network_splits(model, ds, cache_dir, crops)
    else:
        used, left_out, embed_split = _musicnn_splits(layer, ds, cache_dir, crops)
    if left_out:
        say(f"left out {len(left_out)} item(s) that cannot be decoded")
    used, notes = _drop_unfittable_classes(used, labels)
    for note in notes:
        say(note)

    say(f"embedding {len(used['train'][0])} train and {len(used['test'][0])} test items, {crops} windows each")
    embedded = {split: embed_split(split, items) for split, (items, _) in used.items()}
    (train_items, train_y), (test_items, test_y) = used["train"], used["test"]
    result = metrics.embedding(
        np.stack([e[0] for e in embedded["train"]]),
        train_y,
        np.stack([e[0] for e in embedded["test"]]),
        test_y,
        labels=labels,
        k=KNN_K,
    )
    result["linear_probe"].update(fit_split="train", scored_split="test")
    result["kmeans"]["split"] = result["knn"]["split"] = "test"

    # the map: every window of every test item, one point each, at most MAP_POINTS of them
    point_vectors = np.concatenate([e[1] for e in embedded["test"]])
    point_classes = np.repeat(test_y, [len(e[2]) for e in embedded["test"]])
    point_tracks = [item.key for e, item in zip(embedded["test"], test_items) for _ in e[2]]
    point_seconds = [s for e in embedded["test"] for s in e[2]]
    shown = np.arange(len(point_vectors))
    if len(shown) > MAP_POINTS:
        shown = np.sort(np.random.default_rng(0).choice(len(shown), MAP_POINTS, replace=False))
    method = "t-SNE" if map_method == "tsne" else "PCA"
    say(f"mapping {len(shown)} windows of the test split ({method})")
    xy = _map_2d(point_vectors[shown], map_method)
    name = ds.root.name or "labels"
    folder = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    title = f"{_space_name(run, layer)} on {name}: test split"
    caption = (
        f"{len(shown)} of {len(point_vectors)} windows ({window_seconds:g} s each, up to {crops} per "
        f"track) of {len(test_items)} test tracks, by {method}; hover a dot for its track and time"
    )
    png = plots.embedding_map(
        xy, classes=point_classes[shown], labels=labels, path=folder / "embedding-map.png", title=title
    )
    page = write_html(
        folder / "embedding-map.html",
        xy=xy,
        classes=point_classes[shown],
        labels=labels,
        tracks=[point_tracks[i] for i in shown],
        seconds=[point_seconds[i] for i in shown],
        title=title,
        caption=caption,
    )

    result = {
        "run": str(run),
        "space": _space_name(run, layer),
        "task": task,
        "labels_dataset": labels_spec,
        "classes": [labels[c] for c in np.unique(test_y)],
        "windows_per_item": crops,
        "item_vector": "mean of the windows' unit embeddings, scaled to unit length",
        "splits": {
            "train": {"items": len(train_items), "used_for": "linear probe fit"},
            "test": {"items": len(test_items), "used_for": "linear probe score, k-means, kNN, map"},
        },
        **result,
        "map": {"method": map_method, "split": "test", "points": int(len(shown)), "windows": int(len(point_vectors))},
        "left_out": left_out,
        "notes": notes,
        "files": {"metrics": str(folder / "metrics.json"), "map_png": str(png), "map_html": str(page)},
    }
    atomic_write_bytes(folder / "metrics.json", (json.dumps(result, indent=2) + "\n").encode())
    return result


def _musicnn_layer(run) -> str | None:
    """The musicnn layer ``run`` names (``musicnn`` or ``musicnn:LAYER``), or None for a run folder."""
    name, _, layer = str(run).partition(":")
    if name != "musicnn" or Path(str(run)).expanduser().exists():
        return None
    layer = layer or "penultimate"
    if layer not in MUSICNN_LAYERS:
        raise UsageError(f"unknown musicnn layer {layer!r}; known: {', '.join(MUSICNN_LAYERS)}")
    return layer


def _space_name(run, layer: str | None) -> str:
    return f"musicnn:{layer}" if layer else Path(run).name


def _network_splits(model, ds, cache_dir: Path, crops: int):
    """A run's network: the usable items of train and test, what was left out, and how a split is embedded."""
    used, left_out = {}, []
    for split in ("train", "test"):
        items, y, failed = it.usable(
            ds.splits[split], ds.targets(split), sample_rate=model.spec.sample_rate, cache=cache_dir
        )
        used[split] = (items, y)
        left_out += [{"path": str(item.path), "reason": reason} for item, reason in failed]

    def embed_split(_split, items):
        excerpts = it.Excerpts(items, None, spec=model.spec, window_seconds=model.window_seconds, cache=cache_dir)
        with torch.inference_mode():
            return [_embed_item(model, excerpts, i, crops) for i in range(len(items))]

    return used, left_out, embed_split


def _musicnn_splits(layer: str, ds, cache_dir: Path, crops: int):
    """musicnn's ``layer``: as :func:`_network_splits`, from the window matrices a probe caches."""
    columns = np.concatenate([BLOCK_COLUMNS[b] for b in MUSICNN_LAYERS[layer]])
    used, left_out, windows = {}, [], {}
    for split in ("train", "test"):
        items = ds.splits[split]
        matrices, kept, failed = dataset_windows(items, ["musicnn"], cache=cache_dir)
        used[split] = ([items[i] for i in kept], ds.targets(split)[kept])
        windows.update((id(items[i]), m["musicnn"][:, columns]) for i, m in zip(kept, matrices))
        left_out += [{"path": str(item.path), "reason": reason} for item, reason in failed]
    centre = np.concatenate([windows[id(item)] for item in used["train"][0]]).mean(axis=0)

    def embed_split(_split, items):
        out = []
        for item in items:
            w = windows[id(item)]
            chosen = it.window_starts(len(w), 1, count=crops)
            unit = F.normalize(torch.from_numpy(w[chosen] - centre), dim=1)
            out.append(
                (F.normalize(unit.mean(dim=0), dim=0).numpy(), unit.numpy(), [i * MUSICNN_WINDOW for i in chosen])
            )
        return out

    return used, left_out, embed_split


def _check_features(ds, spec, labels_spec: str) -> None:
    """Refuse a dataset of precomputed mel-spectrograms made otherwise than the model's front end makes them."""
    f = ds.features
    if f is not None and (f.sample_rate, f.n_fft, f.hop, f.n_mels) != (
        spec.sample_rate,
        spec.n_fft,
        spec.hop,
        spec.n_mels,
    ):
        raise UsageError(
            f"{labels_spec} holds mel-spectrograms ({f.n_mels} mels, {f.sample_rate} Hz, n_fft {f.n_fft}, "
            f"hop {f.hop}) that the model was not trained on ({spec.n_mels} mels, {spec.sample_rate} Hz, "
            f"n_fft {spec.n_fft}, hop {spec.hop})"
        )


def _drop_unfittable_classes(used: dict, labels: list[str]) -> tuple[dict, list[str]]:
    """Drop the classes that have no item in the train or in the test split from both; the notes say which."""
    present = {split: set(np.unique(y).tolist()) for split, (_, y) in used.items()}
    notes = []
    for c in sorted(set(range(len(labels))) - (present["train"] & present["test"])):
        missing = " and ".join(split for split in ("train", "test") if c not in present[split])
        counts = ", ".join(f"{int((used[s][1] == c).sum())} {s}" for s in ("train", "test") if c in present[s])
        notes.append(
            f"class {labels[c]!r} left out: no usable item in the {missing} split"
            + (f" ({counts} item(s) not used)" if counts else "")
        )
    keep = present["train"] & present["test"]
    if len(keep) < 2:
        raise UsageError(
            f"fewer than two classes have usable items in both the train and the test split ({'; '.join(notes)})"
        )
    out = {}
    for split, (items, y) in used.items():
        mask = np.isin(y, sorted(keep))
        out[split] = ([item for item, m in zip(items, mask) if m], y[mask])
    return out, notes


def _embed_item(model, excerpts, i: int, crops: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Item ``i``'s vector (the normalised mean of its windows' unit vectors), the window vectors, and
    each window's start in seconds."""
    source = excerpts.source(i)
    if source.ndim == 2:  # precomputed log-mel: starts in frames
        starts = it.window_starts(source.shape[-1], excerpts.n_frames, count=crops)
        seconds = [s * excerpts.spec.hop / excerpts.spec.sample_rate for s in starts]
    else:
        starts = it.window_starts(source.shape[-1], excerpts.n_samples, count=crops)
        seconds = [s / excerpts.spec.sample_rate for s in starts]
    windows = F.normalize(model.embed(torch.from_numpy(excerpts.windows(i, crops))), dim=1)
    return F.normalize(windows.mean(dim=0), dim=0).numpy(), windows.numpy(), seconds


def _map_2d(vectors: np.ndarray, method: str) -> np.ndarray:
    """2-D coordinates of ``vectors``: t-SNE (seeded; perplexity 30, less for few points) or PCA."""
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=0).fit_transform(vectors)
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(1.0, (len(vectors) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0).fit_transform(vectors)


def format_embedding_table(result: dict) -> str:
    """The terminal report of :func:`evaluate_embeddings`: what was scored on which split, the numbers
    with their chance levels, the notes and where the files are."""
    probe, km, knn = result["linear_probe"], result["kmeans"], result["knn"]
    lines = [
        f"{result['run']} on {result['labels_dataset']}: {len(result['classes'])} classes, "
        f"{result['windows_per_item']} windows per item",
        f"  linear probe   fitted on train ({probe['train_items']} items), scored on test ({probe['test_items']} items)",
        f"    accuracy        {probe['accuracy']:.4f}   (majority class {probe['majority_class_accuracy']:.4f})",
        f"    macro F1        {probe['macro_f1']:.4f}",
        f"  k-means, k={km['k']:<4} on test ({km['items']} items)",
        f"    purity          {km['purity']:.4f}",
        f"    NMI             {km['nmi']:.4f}",
        f"    ARI             {km['ari']:.4f}",
        f"  kNN, cosine    on test ({knn['items']} items), each item's neighbours among the others",
    ]
    if knn["precision_at_k"] is None:
        lines.append("    precision@k     n/a   (no class has two test items)")
    else:
        lines.append(f"    precision@{knn['k']:<5} {knn['precision_at_k']:.4f}   (chance {knn['chance']:.4f})")
        if knn["k"] != knn["k_asked"]:
            lines.append(f"      k clipped from {knn['k_asked']}: a class has only {knn['k'] + 1} test items")
        if knn["queries"] < knn["items"]:
            lines.append(f"      {knn['items'] - knn['queries']} item(s) alone in their class are not queries")
    m = result["map"]
    lines.append(
        f"  map            {'t-SNE' if m['method'] == 'tsne' else 'PCA'} of {m['points']} windows of the test split"
        + (f" (of {m['windows']})" if m["points"] < m["windows"] else "")
    )
    if result["left_out"]:
        lines.append(
            f"  left out       {len(result['left_out'])} item(s) that cannot be decoded (listed in metrics.json)"
        )
    lines += [f"  note           {note}" for note in result["notes"]]
    lines.append(f"  written: {Path(result['files']['metrics']).parent}")
    return "\n".join(lines)
