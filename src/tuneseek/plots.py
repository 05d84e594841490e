"""Pictures of training and evaluation, as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

import colorsys
import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: matplotlib's tab20, dark shades first: 20 distinguishable label colours without importing matplotlib
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
)


def label_colours(n: int) -> list[str]:
    """``n`` distinct ``#rrggbb`` colours, one per label: :data:`PALETTE`, or evenly spaced hues beyond it."""
    if n <= len(PALETTE):
        return list(PALETTE[:n])
    return [
        "#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in colorsys.hls_to_rgb(i / n, 0.5, 0.65))) for i in range(n)
    ]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_epoch_metrics(log_files: Sequence[Path]) -> dict[str, dict[int, float]]:
    """``{metric: {epoch: value}}`` from Lightning CSV logs (later files win: a resumed run's)."""
    out: dict[str, dict[int, float]] = {}
    for path in log_files:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if not row.get("epoch"):
                    continue
                epoch = int(float(row["epoch"]))
                for key, value in row.items():
                    if key in ("epoch", "step") or value in ("", None) or key.endswith("_step"):
                        continue
                    out.setdefault(key.removesuffix("_epoch"), {})[epoch] = float(value)
    return out


def training_curves(per_epoch: dict[str, dict[int, float]], monitor: str, path: Path) -> Path:
    """Loss (train and validation) and the monitored metric per epoch, side by side."""
    plt = _pyplot()
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    for key, style in (("train_loss", "-o"), ("val_loss", "-s")):
        if key in per_epoch:
            epochs = sorted(per_epoch[key])
            ax_loss.plot([e + 1 for e in epochs], [per_epoch[key][e] for e in epochs], style, label=key)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    for key in sorted(k for k in per_epoch if k.startswith("val_") and k != "val_loss"):
        epochs = sorted(per_epoch[key])
        ax_metric.plot(
            [e + 1 for e in epochs],
            [per_epoch[key][e] for e in epochs],
            "-o",
            label=key,
            linewidth=2.5 if key == monitor else 1.0,
        )
    ax_metric.set(xlabel="epoch", title=f"validation (best epoch: highest {monitor})")
    ax_metric.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_metric):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cross_validation(scores: dict[float, float], chosen: float, path: Path, *, metric: str) -> Path:
    """A probe's cross-validated score for each regularisation strength ``C`` (log scale), the chosen one marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    cs = sorted(scores)
    ax.plot(cs, [scores[c] for c in cs], "-o")
    ax.axvline(chosen, color="grey", linestyle="--", label=f"chosen C = {chosen:g}")
    ax.set(xscale="log", xlabel="C (inverse L2 penalty)", ylabel=metric, title="cross-validation on the training split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion_matrix(matrix: np.ndarray, *, labels: Sequence[str], path: Path, title: str = "") -> Path:
    """Counts with rows = true class, columns = predicted; each cell annotated."""
    plt = _pyplot()
    m = np.asarray(matrix)
    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def embedding_map(xy: np.ndarray, *, classes: np.ndarray, labels: Sequence[str], path: Path, title: str = "") -> Path:
    """A 2-D map of embedding vectors (t-SNE or PCA coordinates ``xy``), one dot per vector coloured by its
    class (indices into ``labels``), drawn in a shuffled order so that no class hides under another."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    xy, classes = np.asarray(xy), np.asarray(classes)
    colours = np.array(label_colours(len(labels)))
    order = np.random.default_rng(0).permutation(len(xy))
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.scatter(xy[order, 0], xy[order, 1], c=colours[classes[order]], s=10, alpha=0.8, linewidths=0)
    present = np.unique(classes)
    handles = [Line2D([], [], marker="o", linestyle="", color=colours[c]) for c in present]
    ax.legend(
        handles,
        [_literal(labels[c]) for c in present],
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
        ncol=1 if len(present) <= 25 else 2,
    )
    ax.set(xticks=[], yticks=[], title=_literal(title))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _literal(text: str) -> str:
    """``text`` as matplotlib must show it: dollar signs escaped, else "$x$" in a label would be typeset as maths."""
    return text.replace("$", r"\$")
