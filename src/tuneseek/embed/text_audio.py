"""A trained text–audio run in use: stored musicnn segments and text queries projected into its joint space.

:func:`load_text_audio` turns a run folder made by ``tuneseek train text-audio`` (the network is
:class:`tuneseek.models.text_audio.TextAudioModel`, its training :mod:`tuneseek.train.text_audio`)
into a :class:`TextAudioRun`: ``audio_vector(s)`` projects a track's ``(segments, 200)`` musicnn
segment vectors (what a library stores for every track), ``query(text)`` a query typed by a
person, checked as the library checks every text query. The run's sentence encoder
(:class:`tuneseek.text.TextEncoder`) loads on first use, so that a process that only projects
audio never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuneseek.embed.trained import model_name
from tuneseek.errors import ModelError
from tuneseek.models import checkpoint
from tuneseek.models.text_audio import ARCHITECTURE, TASK, TextAudioModel
from tuneseek.text import EncodedQuery, TextEncoder

__all__ = ["TextAudioRun", "load_text_audio"]


class TextAudioRun:
    """A trained text–audio run, for a library: project stored segments and text into the joint space.

    ``name``: what the run is called in a library (its folder's name); ``version``: changes
    exactly when the vectors would (the hash of the weights); ``config``: its ``config.json``.
    The text model is loaded on first use (an indexing worker that only projects audio never
    loads it), and must be the one the run was trained with.
    """

    def __init__(self, folder: Path, name: str, version: str, config: dict[str, Any], model: TextAudioModel):
        self.folder, self.name, self.version, self.config, self.model = folder, name, version, config, model
        self._encoder: TextEncoder | None = None

    @property
    def dim(self) -> int:
        return self.model.dim

    @property
    def encoder(self) -> TextEncoder:
        """The run's :class:`~tuneseek.text.TextEncoder`; :class:`ModelError` when this machine's copy of
        the text model is not the one the run was trained with."""
        if self._encoder is None:
            text = self.config["text_model"]
            encoder = TextEncoder(text.get("source"))
            if encoder.version != text["version"]:
                raise ModelError(
                    f"the run was trained on the text model {text['version']}, but "
                    f"{text.get('source') or 'the default'} is {encoder.version} here: its sentence "
                    "vectors would not fit the run's projection; install that text model, or train "
                    "the run again",
                    self.folder,
                )
            self._encoder = encoder
        return self._encoder

    def audio_vectors(self, tracks: Sequence[np.ndarray]) -> np.ndarray:
        """``(len(tracks), dim)`` float32 unit vectors, one per ``(segments, 200)`` array of musicnn segment vectors."""
        if not len(tracks):
            return np.zeros((0, self.dim), np.float32)
        arrays = [np.asarray(t, np.float32).reshape(-1, self.model.audio_proj.in_features) for t in tracks]
        if any(len(a) == 0 for a in arrays):
            raise ValueError("a track without segment vectors has no place in the joint space")
        longest = max(len(a) for a in arrays)
        padded = np.zeros((len(arrays), longest, arrays[0].shape[1]), np.float32)
        mask = np.zeros((len(arrays), longest), bool)
        for i, a in enumerate(arrays):
            padded[i, : len(a)], mask[i, : len(a)] = a, True
        with torch.inference_mode():
            return self.model.embed_audio(torch.from_numpy(padded), mask=torch.from_numpy(mask)).numpy()

    def audio_vector(self, segments: np.ndarray) -> np.ndarray:
        """``(dim,)`` float32 unit vector of one track's ``(segments, 200)`` musicnn segment vectors."""
        return self.audio_vectors([segments])[0]

    def project_text(self, sentence_vectors: np.ndarray) -> np.ndarray:
        """``(n, dim)`` float32 unit vectors of ``(n, text_dim)`` vectors of the run's text model."""
        with torch.inference_mode():
            return self.model.embed_text(torch.from_numpy(np.asarray(sentence_vectors, np.float32))).numpy()

    def text_vectors(self, texts: str | Sequence[str]) -> np.ndarray:
        """``(n, dim)`` float32 unit vectors of texts (no query checks: see :meth:`query`)."""
        return self.project_text(self.encoder.encode(texts))

    def query(self, text: str) -> EncodedQuery:
        """A query typed by a person, checked as :meth:`TextEncoder.encode_query` checks it (empty, cut, script),
        as an :class:`~tuneseek.text.EncodedQuery` whose ``vector`` is its ``(dim,)`` joint-space vector."""
        q = self.encoder.encode_query(text)
        return EncodedQuery(q.text, q.tokens, q.truncated, q.notices, self.project_text(q.vector[None])[0])


def load_text_audio(folder: str | Path) -> TextAudioRun:
    """The text–audio run in ``folder`` (loaded once per process while its weights are unchanged).

    Raises :class:`ModelError` when the folder holds no readable checkpoint or a model of
    another task (a tagger, a triplet run...), and :class:`~tuneseek.errors.UsageError` when
    the folder's name cannot name a model in a library.
    """
    return _load(*checkpoint.cache_key(folder))


@lru_cache(maxsize=4)
def _load(folder: Path, stamp: int) -> TextAudioRun:
    name = model_name(folder)
    config = checkpoint.read_config(folder)
    if config.get("task") != TASK or config.get("architecture") != ARCHITECTURE:
        what = config.get("task") or config.get("architecture")
        raise ModelError(
            f"not a text–audio run: it holds a {what} model (make one with `tuneseek train text-audio`)", folder
        )
    if not isinstance(config.get("text_model"), dict) or "version" not in config["text_model"]:
        raise ModelError("config.json does not say which text model the run was trained with", folder)
    model, config = checkpoint.load(folder)
    digest = checkpoint.weights_digest(folder)
    return TextAudioRun(folder, name, f"{ARCHITECTURE}/{digest}", config, model)
