"""A probe's head: standardisation then a linear layer (or one hidden layer), on a pooled feature vector.

The head is fitted by scikit-learn (:mod:`tuneseek.train.probe`: a logistic regression whose
regularisation is chosen by cross-validation) and its numbers are copied here, so that a probe is a
checkpoint like any other run (``config.json`` + ``model.safetensors``) and runs without
scikit-learn: ``logits = W ((x - mean) / scale) + b``. Its input is the vector
:mod:`tuneseek.embed.pooled` makes of a whole clip; its output one logit per label (softmax for a
single-label task, sigmoid for tags).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["ARCHITECTURE", "ProbeHead"]

ARCHITECTURE = "probe"


class ProbeHead(nn.Module):
    """``(batch, n_inputs)`` pooled features -> ``(batch, n_outputs)`` logits; ``hidden`` > 0 adds a ReLU layer."""

    architecture = ARCHITECTURE

    def __init__(self, n_inputs: int, n_outputs: int, *, hidden: int = 0):
        super().__init__()
        self._kwargs = {"n_inputs": int(n_inputs), "n_outputs": int(n_outputs), "hidden": int(hidden)}
        self.register_buffer("mean", torch.zeros(n_inputs))
        self.register_buffer("scale", torch.ones(n_inputs))
        if hidden:
            self.layers = nn.Sequential(nn.Linear(n_inputs, hidden), nn.ReLU(), nn.Linear(hidden, n_outputs))
        else:
            self.layers = nn.Sequential(nn.Linear(n_inputs, n_outputs))

    @torch.no_grad()
    def set_weights(self, *, mean: np.ndarray, scale: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Copy in the standardisation and each linear layer's ``(weight (out, in), bias (out,))``."""
        self.mean.copy_(torch.as_tensor(np.asarray(mean, np.float32)))
        self.scale.copy_(torch.as_tensor(np.asarray(scale, np.float32)))
        linears = [m for m in self.layers if isinstance(m, nn.Linear)]
        if len(linears) != len(layers):
            raise ValueError(f"{len(layers)} layer(s) given for a head of {len(linears)}")
        for linear, (w, b) in zip(linears, layers):
            linear.weight.copy_(torch.as_tensor(np.asarray(w, np.float32)))
            linear.bias.copy_(torch.as_tensor(np.asarray(b, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - self.mean) / self.scale)

    def config(self) -> dict[str, Any]:
        """What rebuilds this model (see :func:`tuneseek.models.registry.build`)."""
        return {"architecture": self.architecture, "kwargs": dict(self._kwargs)}
