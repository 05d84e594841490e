"""A joint text–audio space (after TTMR / TTMR++, Doh et al., ICASSP 2023/2024), and runs of it ready for a library.

:class:`TextAudioModel` maps both sides into one 128-d space where a dot product compares a
description with a piece of music:

* audio: a track's musicnn segment vectors (200-d, 3.7 s windows side by side, what the
  library stores for every track), each centred, then through LayerNorm and a linear
  projection, then their mean, L2-normalised. Projecting before averaging keeps the projection
  per segment, so the same weights serve a 3-segment training crop and a whole track. The
  centre is the mean segment of the training pairs (a buffer, set once before training by
  :meth:`TextAudioModel.set_audio_center`, stored with the weights): musicnn's penultimate
  ReLU features share a large component that every piece of music has, and LayerNorm alone
  keeps it, so that at the start all audio vectors point nearly the same way and the loss
  hardly moves (on the test suite's stand-in musicnn, not at all in 40 epochs); centred, the
  LayerNorm scales what tells pieces apart;
* text: the frozen sentence encoder's vector (384-d for all-MiniLM-L6-v2) through LayerNorm
  and a linear projection, L2-normalised;
* a learnable temperature, kept as CLIP keeps it: the log of the logit scale, initialised at
  ``log(1 / 0.07)`` and clamped to ``[0, log 100]`` after each optimiser step (:meth:`clamp_`).

The encoders themselves stay frozen (musicnn and the sentence model), so the model is only the
two projections: it trains in minutes on a CPU from cached features, and a run's checkpoint is
a few hundred kilobytes.

:func:`load_text_audio` turns a run folder made by ``tuneseek train text-audio`` into a
:class:`TextAudioRun` that projects stored segments and text queries into the space.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tuneseek.embed.errors import ModelError

__all__ = ["ARCHITECTURE", "TASK", "TextAudioModel", "TextAudioRun", "load_text_audio"]

ARCHITECTURE = "text-audio"
#: The ``task`` a text–audio run's config.json names.
TASK = "text-audio"
INIT_TEMPERATURE = 0.07  # CLIP's
MAX_LOGIT_SCALE = 100.0  # CLIP's cap on 1 / temperature


class TextAudioModel(nn.Module):
    """Two projections into one space, and a learnable temperature.

    ``audio_dim``: size of a segment vector (musicnn penultimate: 200); ``text_dim``: size of a
    sentence vector (all-MiniLM-L6-v2: 384); ``dim``: size of the joint space.
    """

    architecture = ARCHITECTURE

    def __init__(self, audio_dim: int = 200, text_dim: int = 384, dim: int = 128):
        super().__init__()
        self._kwargs = {"audio_dim": int(audio_dim), "text_dim": int(text_dim), "dim": int(dim)}
        self.register_buffer("audio_center", torch.zeros(audio_dim))
        self.audio_norm = nn.LayerNorm(audio_dim)
        self.audio_proj = nn.Linear(audio_dim, dim)
        self.text_norm = nn.LayerNorm(text_dim)
        self.text_proj = nn.Linear(text_dim, dim)
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1 / INIT_TEMPERATURE)))

    @property
    def dim(self) -> int:
        return self._kwargs["dim"]

    def embed_audio(self, segments: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, dim)`` unit vectors of ``(batch, segments, audio_dim)`` segment vectors.

        ``mask`` ``(batch, segments)`` (True: a real segment) lets items of different lengths
        share a padded batch; every item needs one real segment at least.
        """
        projected = self.audio_proj(self.audio_norm(segments - self.audio_center))
        if mask is None:
            pooled = projected.mean(dim=1)
        else:
            weights = mask.to(projected.dtype).unsqueeze(-1)
            pooled = (projected * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return F.normalize(pooled, dim=-1)

    def embed_text(self, sentences: torch.Tensor) -> torch.Tensor:
        """``(batch, dim)`` unit vectors of ``(batch, text_dim)`` sentence vectors."""
        return F.normalize(self.text_proj(self.text_norm(sentences)), dim=-1)

    @torch.no_grad()
    def set_audio_center(self, mean: torch.Tensor | np.ndarray) -> None:
        """Centre segment vectors on ``mean`` ``(audio_dim,)``: the mean segment of the training pairs."""
        self.audio_center.copy_(torch.as_tensor(np.asarray(mean, np.float32)))

    @property
    def logit_scale(self) -> torch.Tensor:
        """``1 / temperature``, what similarities are multiplied by before the softmax."""
        return self.log_logit_scale.exp()

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep the logit scale in ``[1, MAX_LOGIT_SCALE]``, as CLIP does after every step."""
        self.log_logit_scale.clamp_(0.0, math.log(MAX_LOGIT_SCALE))

    def forward(self, segments: torch.Tensor, mask: torch.Tensor | None, sentences: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, batch)``: row i compares text i with every audio of the batch."""
        return self.logit_scale * self.embed_text(sentences) @ self.embed_audio(segments, mask).T

    def config(self) -> dict[str, Any]:
        """What rebuilds this model (see :func:`tuneseek.models.registry.build`)."""
        return {"architecture": self.architecture, "kwargs": dict(self._kwargs)}


class TextAudioRun:
    """A trained text–audio run, for a library: project stored segments and text into the joint space.

    ``name``: what the run is called in a library (its folder's name); ``version``: changes
    exactly when the vectors would (the hash of the weights); ``config``: its ``config.json``.
    The text model is loaded on first use (an indexing worker that only projects audio never
    loads it), and must be the one the run was trained with.
    """

    def __init__(self, folder: Path, name: str, version: str, config: dict[str, Any], model: TextAudioModel):
        self.folder, self.name, self.version, self.config, self.model = folder, name, version, config, model
        self._encoder = None

    @property
    def dim(self) -> int:
        return self.model.dim

    @property
    def encoder(self):
        """The run's :class:`~tuneseek.text.TextEncoder`; :class:`ModelError` when this machine's copy of
        the text model is not the one the run was trained with."""
        if self._encoder is None:
            from tuneseek.text import TextEncoder

            text = self.config["text_model"]
            encoder = TextEncoder(text.get("source"))
            if encoder.version != text["version"]:
                raise ModelError(f"the run was trained on the text model {text['version']}, but {text.get('source') or 'the default'} "
                                 f"is {encoder.version} here: its sentence vectors would not fit the run's projection; "
                                 "install that text model, or train the run again", self.folder)
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
            padded[i, :len(a)], mask[i, :len(a)] = a, True
        with torch.inference_mode():
            return self.model.embed_audio(torch.from_numpy(padded), torch.from_numpy(mask)).numpy()

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

    def query(self, text: str):
        """A query typed by a person, checked as :meth:`TextEncoder.encode_query` checks it (empty, cut, script),
        as an :class:`~tuneseek.text.EncodedQuery` whose ``vector`` is its ``(dim,)`` joint-space vector."""
        from tuneseek.text import EncodedQuery

        q = self.encoder.encode_query(text)
        return EncodedQuery(q.text, q.tokens, q.truncated, q.notices, self.project_text(q.vector[None])[0])


def load_text_audio(folder: str | Path) -> TextAudioRun:
    """The text–audio run in ``folder`` (loaded once per process while its weights are unchanged).

    Raises :class:`ModelError` when the folder holds no readable checkpoint or a model of
    another task (a tagger, a triplet run...), and :class:`~tuneseek.errors.UsageError` when
    the folder's name cannot name a model in a library.
    """
    from tuneseek.models import checkpoint

    return _load(*checkpoint.cache_key(folder))


@lru_cache(maxsize=4)
def _load(folder: Path, stamp: int) -> TextAudioRun:
    from tuneseek.embed.trained import model_name
    from tuneseek.models import checkpoint

    name = model_name(folder)
    config = checkpoint.read_config(folder)
    if config.get("task") != TASK or config.get("architecture") != ARCHITECTURE:
        what = config.get("task") or config.get("architecture")
        raise ModelError(f"not a text–audio run: it holds a {what} model (make one with `tuneseek train text-audio`)",
                         folder)
    if not isinstance(config.get("text_model"), dict) or "version" not in config["text_model"]:
        raise ModelError("config.json does not say which text model the run was trained with", folder)
    model, config = checkpoint.load(folder)
    digest = checkpoint.weights_digest(folder)
    return TextAudioRun(folder, name, f"{ARCHITECTURE}/{digest}", config, model)
