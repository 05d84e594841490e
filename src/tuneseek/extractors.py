"""The extractor seam: every model that describes a track, named, versioned, and found by name.

An :class:`Extractor` has a name that says what it stores (``tags:VOCABULARY`` or
``embedding:SPACE``), a version (its weights and settings: a library re-runs an extractor
exactly when its version changes), an input (audio at a sample rate, or the stored output of
another extractor) and ``describe``, which turns that input into tags or segment vectors. Those
with audio input describe one file for ``tag`` and ``embed``
(:meth:`~tuneseek.library.Library.tag_file`, :meth:`~tuneseek.library.Library.embed_file`), and
run in the indexing workers for a library, all of a file's in one streamed pass per sample rate
(:func:`tuneseek.analysis.describe_file`: the same streams, sharing musicnn's log-mel); those
that read another extractor's output describe the stored vectors in the writer, no audio decoded.

Today's extractors, from :func:`open_extractor` (a registry keyed by name, in the manner of
:func:`tuneseek.data.datasets.open_dataset`):

* ``tags:mtt``, ``tags:msd``, ``embedding:musicnn`` — the pretrained musicnn (:class:`Musicnn`);
* ``tags:RUN``, ``embedding:RUN`` — a model trained by ``tuneseek train`` (:class:`TrainedRun`);
* ``embedding:text-audio`` — the audio side of a text–audio run, projected from the stored
  musicnn segments (:class:`TextAudioProjection`); it also turns a description into a vector
  of the same space.

A new model lands as one more class here and one more entry in :func:`open_extractor`.
Nothing in this module imports torch at import time: models load on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from tuneseek import analysis
from tuneseek.errors import UsageError
from tuneseek.features import MUSICNN_SR
from tuneseek.results import Embedding, Tags

__all__ = [
    "Extractor",
    "Musicnn",
    "TrainedRun",
    "TextAudioProjection",
    "open_extractor",
    "musicnn_extractors",
    "TEXT_AUDIO_SPACE",
    "TEXT_AUDIO_EXTRACTOR",
    "AUDIO",
    "ROLES",
]

#: The joint text–audio space (128-d, compared by dot product) and the extractor that fills it.
TEXT_AUDIO_SPACE = "text-audio"
TEXT_AUDIO_EXTRACTOR = f"embedding:{TEXT_AUDIO_SPACE}"
#: The input of an extractor that reads audio (as opposed to another extractor's stored output).
AUDIO = "audio"
#: What a trained model can be in a library: ``{role: the kind of extractor it is}``.
ROLES = {"tagger": "tags", "embedder": "embedding", "text-audio": "embedding", "fingerprint": "fingerprint"}


class Extractor(Protocol):
    """One model that describes tracks."""

    name: str  # "tags:VOCABULARY" or "embedding:SPACE"
    version: str
    source: str  # AUDIO, or the name of the extractor whose stored output it reads
    sample_rate: int  # the rate of the audio it reads (for a derived extractor: of its source)
    folder: str | None  # the run folder of a trained model; None for the pretrained ones

    def describe(self, source, **options):
        """What this extractor says of ``source``: for one reading audio, a file (streamed, any length) as
        :class:`~tuneseek.results.Tags` (per window and their mean) or an :class:`~tuneseek.results.Embedding`
        (vectors per window; ``options`` ``window``, ``hop``, ``layer``, ``pool`` shape them); for one reading
        another extractor's stored output, those vectors, turned into its own."""
        ...

    def query_vectors(self, samples: np.ndarray, whole: bool) -> np.ndarray:
        """A query's vectors in this extractor's space (``samples`` mono at :attr:`sample_rate`): windows side
        by side for a whole file (``whole``), overlapping by half for a clip. Embeddings only."""
        ...


def _musicnn_vectors(x: np.ndarray, whole: bool) -> np.ndarray:
    """musicnn's segment vectors of a query: side by side for a whole file, overlapping by half for a clip."""
    hop = analysis.SEGMENT_HOP if whole else analysis.SEGMENT_WINDOW / 2
    return analysis.clip_vectors(x, hop=hop)[1]


class Musicnn:
    """The pretrained musicnn: tags in the MagnaTagATune or Million Song vocabulary, or 3.7 s segment vectors.

    Its version names the converted weights by their digest, which takes reading them: it is read
    when first asked for (indexing asks; a query's vectors do not need it), then kept.
    """

    source = AUDIO
    sample_rate = MUSICNN_SR
    folder = None

    def __init__(self, name: str, *, version: str | None = None, wheel: str | None = None):
        self.name = name
        self.wheel = wheel
        self._version = version

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = analysis.extractor_versions(self.wheel)[self.name]
        return self._version

    @property
    def network(self) -> str:
        """The musicnn network it runs: its vocabulary's for tags, MagnaTagATune's for the embedding."""
        return analysis.TAG_EXTRACTORS.get(self.name, "mtt")

    def describe(
        self,
        path: str | Path,
        *,
        window: float | None = None,
        hop: float | None = None,
        layer: str | None = None,
        pool: str = "none",
    ) -> Tags | Embedding:
        """``path`` (any audio file, streamed) through this extractor's network.

        A tags extractor gives its tags per 3 s patch and their mean. The embedding extractor, or a
        tags extractor given a ``layer`` ("penultimate", "max_pool", "mean_pool"), gives that
        layer's vectors (default "penultimate") for windows of ``window`` s (any from 0.5, default
        3.7) every ``hop`` s (default ``window / 2``, as ``tuneseek embed``; a library stores 3.7 s
        side by side), pooled into one by ``pool`` "mean" or "max". ``window``, ``hop`` and
        ``pool`` shape vectors only.
        """
        if layer is None and self.name in analysis.TAG_EXTRACTORS:
            return analysis.musicnn_tags(path, self.network, wheel=self.wheel)
        return analysis.musicnn_embedding(
            path, self.network, window=window, hop=hop, layer=layer or "penultimate", pool=pool, wheel=self.wheel
        )

    def query_vectors(self, samples: np.ndarray, whole: bool) -> np.ndarray:
        return _musicnn_vectors(samples, whole)


def musicnn_extractors(wheel: str | None = None) -> list[Musicnn]:
    """The pretrained extractors every library runs when their weights can be had.

    Raises :class:`~tuneseek.errors.TuneseekError` (no PyTorch, no weights) when they cannot.
    """
    return [Musicnn(name, version=v, wheel=wheel) for name, v in analysis.extractor_versions(wheel).items()]


@dataclass(frozen=True)
class TrainedRun:
    """A tagger, genre classifier or embedder trained by ``tuneseek train``, run from its folder."""

    name: str
    version: str
    folder: str
    sample_rate: int
    window: float
    source: str = AUDIO

    def describe(
        self,
        path: str | Path,
        *,
        window: float | None = None,
        hop: float | None = None,
        layer: str | None = None,
        pool: str = "none",
    ) -> Tags | Embedding:
        """``path`` (any audio file, streamed) through the run, in windows of its own.

        As a tagger (``tags:NAME``) it gives its probabilities per window, side by side, and their
        mean; as an embedder, its vectors every ``hop`` s (default half a window), pooled into one by
        ``pool`` "mean" or "max". It has one window and one layer: another ``window``, or a ``layer``
        other than "penultimate", is a :class:`UsageError`. ``window``, ``hop`` and ``pool`` shape
        vectors only.
        """
        if self.name.startswith("tags:"):
            return analysis.trained_tags(path, self.folder)
        return analysis.trained_embedding(path, self.folder, window=window, hop=hop, layer=layer, pool=pool)

    def query_vectors(self, samples: np.ndarray, whole: bool) -> np.ndarray:
        model = analysis.trained_model(self.folder)
        return model.vectors(samples, hop=None if whole else model.window / 2)[1]


def _trained(folder: str, role: str) -> TrainedRun:
    model = analysis.trained_model(folder)
    [(name, version)] = analysis.trained_extractors(folder, role).items()
    return TrainedRun(name, version, str(model.folder), model.sample_rate, model.window)


@dataclass(frozen=True)
class TextAudioProjection:
    """The audio side of a text–audio run: musicnn's stored segments projected into the joint space.

    Its version joins the run's and that of the musicnn segments it read, so that either
    changing re-projects a track.
    """

    run_version: str
    folder: str
    model_name: str
    name: str = TEXT_AUDIO_EXTRACTOR
    source: str = analysis.EMBEDDING_EXTRACTOR
    sample_rate: int = MUSICNN_SR

    @property
    def version(self) -> str:
        return self.run_version

    def version_from(self, source_version: str) -> str:
        """The version of vectors projected from segments of ``source_version``."""
        return f"{self.run_version}/{source_version}"

    def _run(self):
        from tuneseek.embed.text_audio import load_text_audio

        return load_text_audio(self.folder)

    def describe(self, segments: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(track vector, segment vectors)`` in the joint space for each track's stored musicnn ``(n, 200)``
        segments (its input is those, not audio: a library projects its tracks without decoding them)."""
        run = self._run()
        tracks = run.audio_vectors(segments)
        return [(vector, run.audio_vectors([seg[None] for seg in segs])) for vector, segs in zip(tracks, segments)]

    def query_vectors(self, samples: np.ndarray, whole: bool) -> np.ndarray:
        return self._run().audio_vector(_musicnn_vectors(samples, whole))[None]

    def text_query(self, text: str):
        """A description, checked as a person's query is (empty, cut, script), with its joint-space ``vector``."""
        return self._run().query(text)


def _text_audio(folder: str) -> TextAudioProjection:
    from tuneseek.embed.text_audio import load_text_audio

    run = load_text_audio(folder)
    return TextAudioProjection(run.version, str(run.folder), run.name)


def open_extractor(
    name: str | None = None, *, folder: str | Path | None = None, role: str | None = None, wheel: str | None = None
) -> Extractor:
    """The extractor called ``name``, or the one a trained run's ``folder`` is as a ``role``.

    ``open_extractor("tags:mtt")`` and ``open_extractor("embedding:musicnn")`` give the
    pretrained musicnn; ``open_extractor(folder=RUN, role="tagger" | "embedder" | "text-audio" | "fingerprint")``
    a trained model. Raises :class:`UsageError` for a name or role it does not know, and a
    trained model's own error when its run cannot be loaded; musicnn's weights are read when its
    version or a query's vectors are first asked for, and their errors come then.
    """
    if folder is not None:
        if role not in ROLES:
            raise UsageError(f"unknown model role {role!r} ({', '.join(ROLES)})")
        return _text_audio(str(folder)) if role == "text-audio" else _trained(str(folder), role)
    pretrained = [*analysis.TAG_EXTRACTORS, analysis.EMBEDDING_EXTRACTOR]
    if name in pretrained:
        return Musicnn(name, wheel=wheel)
    raise UsageError(
        f"unknown extractor {name!r}: the pretrained ones are {', '.join(pretrained)}; "
        "a trained model is opened from its folder"
    )
