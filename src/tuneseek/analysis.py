"""What a file sounds like: tags and multi-scale embeddings of one audio file.

Decode to 16 kHz mono, compute the log-mel once, and run the pretrained MagnaTagATune or
Million Song Dataset musicnn on it, or decode at a trained model's own sample rate and run a
model made by ``tuneseek train`` (:mod:`tuneseek.embed.trained`). :func:`musicnn_tags`,
:func:`musicnn_embedding`, :func:`trained_tags` and :func:`trained_embedding` describe one file
for the extractors' ``describe`` (``tuneseek tag`` and ``tuneseek embed``; :func:`stored_tags` and
:func:`stored_embedding` give a library track's stored ones in the same types);
:func:`describe_file` computes what the library stores for every track (tags in both musicnn
vocabularies, 3.7 s segment vectors, and the same from the library's trained tagger and
embedder), for the extractors named in :func:`extractor_versions` and :func:`trained_extractors`;
:mod:`tuneseek.extractors` names them for the library. Models load once per process. torch is
imported inside the functions, so importing this module (and identification) stays light.

Files are read as a stream (:func:`tuneseek.audio.stream`, 30 s at a time) and every network
runs window by window as the audio comes (:class:`~tuneseek.embed.musicnn_extractor.MusicnnStream`,
:class:`~tuneseek.embed.trained.TrainedStream`): only the per-window outputs are kept, so a
4-hour file takes about 90 MB beyond torch and the models (as a 1-hour one; the whole-file
decoding this replaced took 2.8 GB), and files of any length are described. Only
:func:`decode` (a query for ``similar``, training data) holds a whole file.

Audio shorter than the model's input window is refused with an :class:`AudioError` naming the
file and its length, rather than repeated to fill the window: a 1 s clip looped to 3 s makes
musicnn hear a synthetic loop ("ambient, synth" for an orchestra). The floor is musicnn's
3 s training patch (:data:`MIN_SECONDS`; for embeddings in shorter windows, the window), and a
trained model's own window. Audio between 3 s and a longer musicnn window (3.7 s segments, or a
``--window`` of 29 s) is still repeated to fill it: most of what the network hears is real.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from tuneseek import audio
from tuneseek.errors import AudioError, UsageError
from tuneseek.features import MUSICNN_HOP, MUSICNN_SR
from tuneseek.results import Embedding, Tags

MODELS = ("mtt", "msd")
POOLS = ("none", "mean", "max")

#: The embedding space the library stores: musicnn MTT penultimate layer (200-d). Measured against the pooled
#: mid-level layers for ranking by cosine (benchmarks/embedding_layers.py), it did as well or better; the pooled
#: layers serve the probes (:mod:`tuneseek.embed.pooled`), which weight their dimensions.
SPACE = "musicnn"
#: Library segments: 3.7 s windows, side by side (one network pass over each track).
SEGMENT_WINDOW = 3.7
SEGMENT_HOP = 3.7
TAG_EXTRACTORS = {f"tags:{name}": name for name in MODELS}
EMBEDDING_EXTRACTOR = f"embedding:{SPACE}"


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


def _physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads counted once)."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/core_id") as f:
                core = f.read().strip()
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id") as f:
                cores.add((f.read().strip(), core))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


@lru_cache(maxsize=1)
def use_cores() -> int:
    """Set torch's intra-op threads for this process, once, and return the number.

    One per physical core this process may use, less the cores other processes keep busy
    (the 1-minute load average), at least one. Oversubscription is what costs: musicnn's
    layers are small, and a thread descheduled by another process stalls every step, so on a
    loaded 2-core machine 2 threads took 11-13 s to tag a minute of music against 3-4.5 s
    with one. ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS``, when set (the indexing workers set 1),
    are left to decide.
    """
    import torch

    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return torch.get_num_threads()
    cores = _physical_cores()
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    threads = max(1, min(cores, round(cores - busy)))
    torch.set_num_threads(threads)
    return threads


@lru_cache(maxsize=2)
def model(name: str, *, wheel: str | None = None):
    """The pretrained musicnn ``name`` ("mtt" or "msd"), loaded once per process."""
    if name not in MODELS:
        raise UsageError(f"unknown model {name!r} (choose from {', '.join(MODELS)})")
    _require_models_extra()
    from tuneseek.embed.weights import load_musicnn

    use_cores()
    return load_musicnn(name, wheel=wheel)[0]


#: Shortest audio described: musicnn's input window (its 3 s training patch). Shorter audio
#: is refused, not repeated to fill the window (an embedding window under 3 s needs only itself).
MIN_SECONDS = 3.0
#: Longest file :func:`decode` holds whole (230 MB per hour at 16 kHz). The streaming
#: functions (:func:`describe_file` and those that tag or embed one file) have no limit.
MAX_SECONDS = 4 * 3600.0
#: A file with no sample above this is silent.
SILENCE = 1e-4


def _too_short(n: int, sr: int, need: int, why: str) -> str:
    return f"too short: {n / sr:.2f} s (at least {need / sr:.3g} s, {why})"


def _refuse(name: str, n: int, loud: bool, sr: int, need: int, why: str) -> None:
    """An :class:`AudioError` for ``n`` samples at ``sr`` when fewer than ``need`` or silent."""
    if n < need:
        raise AudioError(name, _too_short(n, sr, need, why))
    if not loud:
        raise AudioError(name, "silent: nothing to describe")


def _musicnn_need(window_frames: int | None = None) -> int:
    """Samples of audio musicnn needs: 3 s, or one window of ``window_frames`` when that is shorter."""
    need = round(MIN_SECONDS * MUSICNN_SR)
    return need if window_frames is None else min(need, (window_frames - 1) * MUSICNN_HOP)


_MUSICNN_WHY = "musicnn's input window"


def decode(path: str | Path, *, sr: int = MUSICNN_SR, min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """``path`` as one mono array at ``sr`` (musicnn's 16 kHz by default), refused when shorter than
    ``min_seconds``, longer than :data:`MAX_SECONDS`, or silent. For callers that need the whole
    signal at once; :func:`describe_file` and the functions that tag or embed one file stream instead."""
    duration = audio.probe(path).duration
    if duration is not None and duration > MAX_SECONDS:
        raise AudioError(path, f"too long to decode whole: {duration / 3600:.1f} h (at most {MAX_SECONDS / 3600:g} h)")
    return checked(str(path), audio.load(path, sr), sr=sr, min_seconds=min_seconds)


def checked(name: str, x: np.ndarray, *, sr: int = MUSICNN_SR, min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """``x`` (mono at ``sr``) if it can be described, else an :class:`AudioError` naming ``name``."""
    _refuse(
        name,
        len(x),
        bool(np.any(np.abs(x) > SILENCE)),
        sr,
        round(min_seconds * sr),
        _MUSICNN_WHY if min_seconds == MIN_SECONDS else "the model's input window",
    )
    return x


def _read(path: str | Path, sr: int, consumers: Sequence, need: int, why: str) -> int:
    """Decode ``path`` at ``sr`` chunk by chunk into each consumer's ``feed``; the samples read.

    Refuses (before any consumer's ``finish``) audio shorter than ``need`` samples, or silent.
    """
    n, loud = 0, False
    for chunk in audio.stream(path, sr):
        n += len(chunk)
        loud = loud or bool(np.any(np.abs(chunk) > SILENCE))
        for consumer in consumers:
            consumer.feed(chunk)
    _refuse(str(path), n, loud, sr, need, why)
    return n


def _trained_need(m) -> tuple[int, str]:
    """Samples a trained model needs (its window), and why."""
    return m.min_samples, f"the window of {m.name}"


def trained_model(name: str):
    """The :class:`~tuneseek.embed.trained.TrainedModel` of a run folder named where a model is asked for."""
    if not Path(name).expanduser().is_dir():
        raise UsageError(
            f"unknown model {name!r}: not {' or '.join(MODELS)} (pretrained musicnn), "
            "and no such folder (a run made by `tuneseek train`)"
        )
    _require_models_extra()
    from tuneseek.embed.trained import load_trained

    use_cores()
    return load_trained(name)


def musicnn_tags(path: str | Path, network: str, *, wheel: str | None = None) -> Tags:
    """Tags of ``path`` from the pretrained musicnn ``network`` ("mtt", "msd"): per 3 s patch, and their mean."""
    _require_models_extra()
    from tuneseek.embed.musicnn_extractor import FRAME_SECONDS, PATCH_FRAMES, MusicnnStream

    net = model(network, wheel=wheel)
    run = MusicnnStream([(net, PATCH_FRAMES, PATCH_FRAMES, ("prob",))])
    _read(path, MUSICNN_SR, [run], _musicnn_need(), _MUSICNN_WHY)
    [(starts, out)] = run.finish()
    curve = out["prob"]
    return Tags(str(path), network, tuple(net.labels), curve.mean(axis=0), starts * FRAME_SECONDS, curve)


def musicnn_embedding(
    path: str | Path,
    network: str,
    *,
    window: float | None = None,
    hop: float | None = None,
    layer: str = "penultimate",
    pool: str = "none",
    wheel: str | None = None,
) -> Embedding:
    """Vectors of ``layer`` of the pretrained musicnn ``network`` for windows of ``window`` s (any ``>= 0.5``,
    default 3.7) every ``hop`` s (default ``window / 2``) over ``path``; ``pool`` "mean" or "max" makes them one."""
    _check_pool(pool)
    _require_models_extra()
    from tuneseek.embed.musicnn_extractor import FRAME_SECONDS, MusicnnStream, window_frames

    window = SEGMENT_WINDOW if window is None else window
    hop = window / 2 if hop is None else hop
    n, h = window_frames(window, hop=hop, layer=layer)
    run = MusicnnStream([(model(network, wheel=wheel), n, h, (layer,))])
    _read(path, MUSICNN_SR, [run], _musicnn_need(n), _MUSICNN_WHY)
    [(starts, out)] = run.finish()
    return _embedding(path, window, hop, layer, starts * FRAME_SECONDS, out[layer], pool)


def trained_tags(path: str | Path, folder: str | Path) -> Tags:
    """Tags of ``path`` from the trained tagger or classifier in ``folder``: per window of its own, and their mean."""
    m = trained_model(str(folder))
    run = m.stream(head=True)
    _read(path, m.sample_rate, [run], *_trained_need(m))
    times, curve = run.finish()
    return Tags(str(path), m.name, m.labels, curve.mean(axis=0), times, curve)


def trained_embedding(
    path: str | Path,
    folder: str | Path,
    *,
    window: float | None = None,
    hop: float | None = None,
    layer: str | None = None,
    pool: str = "none",
) -> Embedding:
    """Vectors of the trained model in ``folder`` over ``path``, windows of its own every ``hop`` s (default
    half a window); ``pool`` as for :func:`musicnn_embedding`. It has one window and one layer, its embedding
    (what a ``layer`` of "penultimate" means for it): asking for another is a :class:`UsageError`."""
    _check_pool(pool)
    m = trained_model(str(folder))
    if window is not None and abs(window - m.window) > 1e-6:
        raise UsageError(f"{m.folder} takes {m.window:g} s windows, not {window:g} s (leave out --window)")
    if layer not in (None, "penultimate"):
        raise UsageError(f"a trained model gives one layer, its embedding (no --layer {layer})")
    hop = m.window / 2 if hop is None else hop
    run = m.stream(head=False, hop=hop)
    _read(path, m.sample_rate, [run], *_trained_need(m))
    times, vectors = run.finish()
    return _embedding(path, m.window, hop, "embedding", times, vectors, pool)


def _check_pool(pool: str) -> None:
    if pool not in POOLS:
        raise UsageError(f"unknown pooling {pool!r} (choose from {', '.join(POOLS)})")


def _embedding(
    path: str | Path, window: float, hop: float, layer: str, times: np.ndarray, vectors: np.ndarray, pool: str
) -> Embedding:
    """Per-window vectors as an :class:`Embedding`, or (``pool`` "mean" or "max") their one pooled vector, no times."""
    if pool != "none":
        vectors = (vectors.mean(axis=0) if pool == "mean" else vectors.max(axis=0))[None, :]
        times = np.zeros(0, np.float64)
    return Embedding(str(path), window, hop, layer, times, vectors.astype(np.float32))


def extractor_versions(wheel: str | None = None, *, download: bool | None = None) -> dict[str, str]:
    """What :func:`describe_file` computes, as ``{extractor name: version}``.

    A version names the weights (by the hash of the converted file) and the settings, so that
    a library re-runs an extractor exactly when its output would differ. Converts the weights
    first if needed; raises :class:`~tuneseek.errors.ModelError` when they cannot be had,
    and :class:`UsageError` without the models extra. Imports torch: reading the converted
    weights checks every tensor's shape against the network.
    """
    _require_models_extra()
    from tuneseek.embed.weights import ensure_converted

    sha = {name: ensure_converted(name, wheel=wheel, download=download)[1]["weights_sha256"][:16] for name in MODELS}
    versions = {extractor: f"musicnn-{name}/{sha[name]}" for extractor, name in TAG_EXTRACTORS.items()}
    versions[EMBEDDING_EXTRACTOR] = f"musicnn-mtt/{sha['mtt']}/penultimate/{SEGMENT_WINDOW:g}s/{SEGMENT_HOP:g}s"
    return versions


def vocabularies(wheel: str | None = None) -> dict[str, list[str]]:
    """The tag names of each vocabulary, in the order of the probabilities (reading them checks the weights:
    see :func:`extractor_versions`)."""
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
    skipped: tuple[tuple[str, str], ...] = ()  # (extractor, reason): asked for, not computed
    #: learned fingerprint ("fingerprint:RUN") -> float16 segment vectors every 0.5 s (tuneseek.fingerprint.learned)
    fingerprints: dict[str, np.ndarray] = field(default_factory=dict)


def trained_extractors(folder: str | Path, role: str) -> dict[str, str]:
    """``{extractor: version}`` of a trained run used as the library's ``role`` ("tagger", "embedder" or
    "fingerprint": a learned fingerprint, whose segment vectors identify clips rather than describe tracks)."""
    m = trained_model(str(folder))
    if (role == "fingerprint") != (m.kind == "fingerprint"):
        raise UsageError(
            f"{m.folder} is a learned fingerprint, for identifying clips: use it with "
            "`tuneseek index --fingerprint` and `identify --engine learned|fused`"
            if m.kind == "fingerprint"
            else f"{m.folder} is not a learned fingerprint (made by tuneseek train fingerprint)"
        )
    if role == "tagger":
        if m.kind == "embedding":
            m.check_tags()
        return {f"tags:{m.name}": m.version}
    if role == "embedder":
        if not m.has_vectors:
            raise UsageError(f"{m.folder} is a probe: it gives labels, not an embedding (use it as --tagger)")
        return {f"embedding:{m.name}": f"{m.version}/{m.window:g}s/{m.window:g}s"}
    if role == "fingerprint":
        return {f"fingerprint:{m.name}": m.version}
    raise UsageError(f"unknown model role {role!r} (tagger, embedder or fingerprint)")


def describe_file(
    path: str | Path, extractors: Iterable[str], *, wheel: str | None = None, trained: Mapping[str, str] | None = None
) -> Description:
    """Tags and/or embeddings of ``path`` for the named ``extractors`` (keys of :func:`extractor_versions`,
    and of :func:`trained_extractors` for the runs in ``trained``, ``{extractor: run folder}``).

    Streams the file once per sample rate (musicnn's networks share one log-mel) and keeps only
    the models' outputs. A trained model's segments lie side by side, one per model window; a
    file shorter than a trained model's window goes without that model (``skipped`` says so),
    and one shorter than musicnn's window, or silent, is refused. A learned fingerprint's
    segments overlap (1 s every 0.5 s) and go to ``fingerprints``, not to ``embeddings``.
    """
    _require_models_extra()
    from tuneseek.embed.musicnn_extractor import (
        PATCH_FRAMES,
        MusicnnStream,
        window_frames,
    )
    from tuneseek.embed.trained import load_trained
    from tuneseek.fingerprint.learned import SegmentStream

    trained = dict(trained or {})
    wanted = tuple(extractors)
    if not wanted:
        raise UsageError("no extractor named: nothing to describe")
    unknown = set(wanted) - set(TAG_EXTRACTORS) - {EMBEDDING_EXTRACTOR} - set(trained)
    if unknown:
        raise UsageError(f"unknown extractor(s): {', '.join(sorted(unknown))}")
    passes: dict[int, list] = {}  # sample rate -> [(extractor, or None for musicnn, consumer)]
    vocabularies = [TAG_EXTRACTORS[ex] for ex in wanted if ex in TAG_EXTRACTORS]
    requests = [(model(name, wheel=wheel), PATCH_FRAMES, PATCH_FRAMES, ("prob",)) for name in vocabularies]
    if EMBEDDING_EXTRACTOR in wanted:
        requests.append((model("mtt", wheel=wheel), *window_frames(SEGMENT_WINDOW, hop=SEGMENT_HOP), ("penultimate",)))
    if requests:
        passes[MUSICNN_SR] = [(None, MusicnnStream(requests))]
    models = {}
    for extractor in wanted:
        if extractor in trained:
            m = models[extractor] = load_trained(trained[extractor])
            use_cores()
            if extractor.startswith("fingerprint:"):
                consumer = SegmentStream(m.model)
            else:
                consumer = m.stream(head=extractor.startswith("tags:"))
            passes.setdefault(m.sample_rate, []).append((extractor, consumer))
    tags, embeddings, fingerprints, skipped, seconds = {}, {}, {}, [], None
    for sr, consumers in passes.items():
        # a pass with musicnn is refused below musicnn's window; one of trained models only refuses
        # nothing but silence: each model too long for the file is skipped, the other passes stand
        need, why = (_musicnn_need(), _MUSICNN_WHY) if consumers[0][0] is None else (1, "any sound")
        n = _read(path, sr, [c for _, c in consumers], need, why)
        seconds = n / sr if seconds is None else seconds
        for extractor, consumer in consumers:
            if extractor is None:
                results = consumer.finish()
                tags.update((name, out["prob"].mean(axis=0)) for name, (_, out) in zip(vocabularies, results))
                if EMBEDDING_EXTRACTOR in wanted:
                    embeddings[SPACE] = Segments(SEGMENT_WINDOW, SEGMENT_HOP, results[-1][1]["penultimate"])
                continue
            if extractor.startswith("fingerprint:"):
                fingerprints[extractor] = consumer.finish()
                continue
            m, result = models[extractor], consumer.finish()
            if result is None:
                skipped.append((extractor, _too_short(n, sr, *_trained_need(m))))
            elif extractor.startswith("tags:"):
                tags[m.name] = result[1].mean(axis=0)
            else:
                embeddings[m.name] = Segments(m.window, m.window, result[1])
    done = tuple(ex for ex in wanted if ex not in dict(skipped))
    return Description(str(path), seconds, done, tags, embeddings, tuple(skipped), fingerprints)


def stored_tags(path: str, labels: Mapping[str, Sequence[str]], stored: Mapping[str, np.ndarray]) -> dict[str, Tags]:
    """A library track's stored tags as ``{vocabulary: Tags}``: the mean probabilities over ``labels[vocabulary]``,
    no curve over time; musicnn's vocabularies first, in :data:`MODELS` order, then the trained taggers'."""
    order = {name: i for i, name in enumerate(MODELS)}
    return {
        vocab: Tags(path, vocab, tuple(labels[vocab]), probs, np.zeros(0), np.zeros((0, len(probs))))
        for vocab, probs in sorted(stored.items(), key=lambda kv: order.get(kv[0], len(order)))
    }


def stored_embedding(path: str, space: str, stored) -> Embedding:
    """A library track's stored segment vectors in ``space`` (``stored`` as the catalogue gives them: ``window``,
    ``hop``, ``segments``) as an :class:`Embedding` whose ``layer`` names the space; segment ``i`` starts at ``i * hop``."""
    times = np.arange(len(stored.segments)) * stored.hop
    return Embedding(path, stored.window, stored.hop, space, times, stored.segments)


def clip_vectors(
    audio_16k: np.ndarray, *, hop: float = SEGMENT_WINDOW / 2, wheel: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Window start times and vectors of a query in the library's space (windows every ``hop`` s)."""
    _require_models_extra()
    from tuneseek.embed.musicnn_extractor import embed

    return embed(audio_16k, model("mtt", wheel=wheel), window=SEGMENT_WINDOW, hop=hop)
