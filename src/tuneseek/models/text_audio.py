"""A joint text–audio space (after TTMR / TTMR++, Doh et al., ICASSP 2023/2024): the network.

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

Training is :mod:`tuneseek.train.text_audio`; :func:`tuneseek.embed.text_audio.load_text_audio`
turns a run folder into what a library uses (segments and text queries projected into the space).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ARCHITECTURE", "TASK", "TextAudioModel"]

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

    def __init__(self, audio_dim: int = 200, *, text_dim: int = 384, dim: int = 128):
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

    def embed_audio(self, segments: torch.Tensor, *, mask: torch.Tensor | None = None) -> torch.Tensor:
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
        return self.logit_scale * self.embed_text(sentences) @ self.embed_audio(segments, mask=mask).T

    def config(self) -> dict[str, Any]:
        """What rebuilds this model (see :func:`tuneseek.models.registry.build`)."""
        return {"architecture": self.architecture, "kwargs": dict(self._kwargs)}
