"""What a file sounds like: pretrained musicnn tags and multi-scale embeddings of one audio file.

The file-level half of "tag" and "embed" (the library will store the same for every track):
decode to 16 kHz mono, compute the log-mel once, and run the MagnaTagATune or Million Song
Dataset musicnn on it. Models load once per process. torch is imported only here, so the
identification path stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from tuneseek import audio
from tuneseek.errors import AudioError, UsageError
from tuneseek.features import MUSICNN_SR

MODELS = ("mtt", "msd")
POOLS = ("none", "mean", "max")


@dataclass(frozen=True)
class Tags:
    """Tag probabilities of a file: for the whole file, and per 3 s patch (the tag curve)."""

    path: str
    model: str
    labels: tuple[str, ...]
    probs: np.ndarray  # (tags,), mean over the patches
    times: np.ndarray  # (patches,), start of each patch in seconds
    curve: np.ndarray  # (patches, tags)

    def top(self, n: int) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs)[:n]
        return [(self.labels[i], float(self.probs[i])) for i in order]


@dataclass(frozen=True)
class Embedding:
    """Vectors of one layer for windows of a file (or one pooled vector)."""

    path: str
    window: float
    hop: float
    layer: str
    times: np.ndarray  # (frames,), window starts in seconds; empty when pooled
    vectors: np.ndarray  # (frames, dims), or (1, dims) when pooled


def _require_models_extra() -> None:
    """One clear line instead of an ImportError when the optional model packages are missing."""
    try:
        import safetensors  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise UsageError(
            f"tags and embeddings need PyTorch and safetensors ({e.name} is missing): "
            "pip install torch==2.13.0 && pip install 'tuneseek[models]'"
        ) from None


@lru_cache(maxsize=2)
def model(name: str, wheel: str | None = None):
    """The pretrained musicnn ``name`` ("mtt" or "msd"), loaded once per process."""
    if name not in MODELS:
        raise UsageError(f"unknown model {name!r} (choose from {', '.join(MODELS)})")
    _require_models_extra()
    from tuneseek.embed.weights import load_musicnn

    return load_musicnn(name, wheel=wheel)[0]


#: shorter files are refused (longer ones shorter than a window are repeated to fill it)
MIN_SECONDS = 0.5


def _decode(path: str | Path) -> np.ndarray:
    x = audio.load(path, MUSICNN_SR)
    if len(x) < MIN_SECONDS * MUSICNN_SR:
        raise AudioError(path, f"too short: {len(x) / MUSICNN_SR:.2f} s (at least {MIN_SECONDS:g} s)")
    if not np.any(np.abs(x) > 1e-4):
        raise AudioError(path, "silent: nothing to describe")
    return x


def tag_file(path: str | Path, model_name: str = "mtt", wheel: str | None = None) -> Tags:
    """Tags of ``path``: musicnn's per-patch probabilities and their mean."""
    _require_models_extra()
    from tuneseek.embed.musicnn_extractor import tag_over_time

    x = _decode(path)
    net = model(model_name, wheel)
    times, curve = tag_over_time(x, net)
    return Tags(str(path), model_name, tuple(net.labels), curve.mean(axis=0), times, curve)


def embed_file(
    path: str | Path,
    window: float = 3.7,
    hop: float | None = None,
    layer: str = "penultimate",
    pool: str = "none",
    model_name: str = "mtt",
    wheel: str | None = None,
) -> Embedding:
    """Embeddings of ``path`` for windows of ``window`` s every ``hop`` s (default ``window / 2``).

    ``pool`` "mean" or "max" turns the frames into one vector for the whole file.
    """
    _require_models_extra()
    from tuneseek.embed.musicnn_extractor import embed

    if pool not in POOLS:
        raise UsageError(f"unknown pooling {pool!r} (choose from {', '.join(POOLS)})")
    x = _decode(path)
    hop = window / 2 if hop is None else hop
    times, vectors = embed(x, model(model_name, wheel), window=window, hop=hop, layer=layer)
    if pool != "none":
        vectors = (vectors.mean(axis=0) if pool == "mean" else vectors.max(axis=0))[None, :]
        times = np.zeros(0, np.float64)
    return Embedding(str(path), window, hop, layer, times, vectors.astype(np.float32))
