"""musicnn as a trainable network: its pretrained layers under a new output layer, for fine-tuning.

Few hundred labelled clips are too few to train a tagger or classifier from scratch; a network
pretrained on MagnaTagATune (or the Million Song Dataset) already hears timbre and rhythm.
:class:`MusicnnTune` holds the whole of :class:`~tuneseek.models.musicnn.Musicnn` but its
50-tag output layer: the front end (input batch norm, timbral and temporal convolutions), the
mid end, and the back end (pooling, the dense 200-unit layer and its batch norms), then a new
linear layer for this task's ``n_outputs`` labels. ``embed`` is the 200-d penultimate layer
(the one the library's musicnn space uses); for triplet training (``n_outputs=None``) it is
the embedding and there is no new layer.

Its own log-mel front end (:class:`~tuneseek.models.frontend.LogMel` with :data:`MUSICNN_SPEC`:
16 kHz, n_fft 512, hop 256, 96 Slaney mels, ``log10(1 + 10000 * power)``, zero-padded centred
frames) computes musicnn's input from audio, equal to :func:`tuneseek.features.musicnn_logmel`
up to that function's float16 rounding. The default window is musicnn's training patch, 187
frames (2.976 s).

Training behaviour, as musicnn's own training graph has it where that suits small data:

* dropout (0.5) on the pooled vector before the dense layer and on the penultimate layer before
  the output layer, as in musicnn's graph;
* batch norms stay the inference-mode affine maps with the pretrained statistics (their scales
  and shifts may train): batch statistics of a few hundred clips, 16 at a time, would be
  noisier than the ones learned from 200 000 and would move the features every layer above
  was trained on;
* the front end can train (at a lower learning rate, see :meth:`MusicnnTune.param_groups`) or
  be frozen (:meth:`MusicnnTune.freeze_frontend`). While its parameters take gradients it runs
  layer by layer (:meth:`~tuneseek.models.musicnn.Musicnn.frontend_reference`, differentiable);
  frozen, or whenever gradients are off (validation, inference), it runs on the CPU through
  the fast :meth:`~tuneseek.models.musicnn.Musicnn.frontend` (about 2.4x faster on a batch,
  but built on ``out=`` operations that autograd refuses), and layer by layer, without
  gradients, on a GPU.

The pretrained weights are copied in by the trainer (:meth:`MusicnnTune.load_pretrained`, given
the state dict :mod:`tuneseek.embed.weights` reads); a saved run holds every weight, so using it
needs no musicnn wheel.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tuneseek.errors import UsageError
from tuneseek.models.frontend import MelModel, MelSpec
from tuneseek.models.musicnn import Musicnn

__all__ = ["MUSICNN_SPEC", "MUSICNN_WINDOW_SECONDS", "FRONTEND_LAYERS", "MusicnnTune"]

MUSICNN_SPEC = MelSpec(sample_rate=16000, n_fft=512, hop=256, n_mels=96, log="log1p", pad_mode="constant")
#: musicnn's training patch: 187 frames, i.e. 186 hops of 256 samples at 16 kHz.
MUSICNN_WINDOW_SECONDS = 186 * 256 / 16000
#: The layers of :class:`~tuneseek.models.musicnn.Musicnn` that make up its front end.
FRONTEND_LAYERS = ("frontend_bn", "timbral74", "timbral77", "temporal128", "temporal64", "temporal32")


class MusicnnTune(MelModel):
    """Pretrained musicnn with a new output layer: ``forward`` gives ``(batch, n_outputs)`` logits,
    ``embed`` the penultimate layer ``(batch, 200)``."""

    architecture = "musicnn"

    def __init__(
        self,
        n_outputs: int | None = None,
        *,
        window_seconds: float = MUSICNN_WINDOW_SECONDS,
        spec: MelSpec | None = None,
        dropout: float = 0.5,
    ):
        spec = MUSICNN_SPEC if spec is None else spec
        if spec != MUSICNN_SPEC:
            raise UsageError(
                f"musicnn's pretrained layers take its own log-mel input ({MUSICNN_SPEC}), not {spec}: "
                "fine-tune it on audio, not on a dataset's precomputed features"
            )
        super().__init__(spec, window_seconds, {"n_outputs": n_outputs, "dropout": dropout})
        net = Musicnn(n_mels=spec.n_mels)
        del net.output  # the pretrained 50-tag layer: replaced by self.output
        net.requires_grad_(True)
        self.net = net
        self.n_outputs = n_outputs
        self.embedding_dim = net.dense.out_features
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(self.embedding_dim, n_outputs) if n_outputs else None

    def load_pretrained(self, state: Mapping[str, np.ndarray | torch.Tensor]) -> None:
        """Copy a pretrained :class:`~tuneseek.models.musicnn.Musicnn` state dict into every layer but the
        new output layer (the pretrained ``output.*`` tensors are not used); every other tensor must fit."""
        body = {
            name: t
            if isinstance(t, torch.Tensor)
            else torch.from_numpy(np.array(t))  # (a copy: arrays may be read-only)
            for name, t in state.items()
            if not name.startswith("output.")
        }
        self.net.load_state_dict(body, strict=True)

    def frontend_parameters(self) -> list[nn.Parameter]:
        """The front end's parameters (input batch norm, timbral and temporal convolutions and their batch norms)."""
        return [p for name in FRONTEND_LAYERS for p in getattr(self.net, name).parameters()]

    def freeze_frontend(self) -> None:
        """Keep the front end's pretrained weights as they are: no gradients, and the fast path (see the module)."""
        for p in self.frontend_parameters():
            p.requires_grad_(False)

    def param_groups(self, lr: float, *, frontend_lr_scale: float) -> list[dict]:
        """Optimizer parameter groups: the mid end, back end and new layer at ``lr``, the front end (unless
        frozen) at ``lr * frontend_lr_scale`` (its low-level filters need the least change)."""
        front = {id(p) for p in self.frontend_parameters()}
        rest = [p for p in self.parameters() if id(p) not in front and p.requires_grad]
        groups = [{"params": rest, "lr": lr, "name": "head"}]
        trained_front = [p for p in self.frontend_parameters() if p.requires_grad]
        if trained_front:
            groups.append({"params": trained_front, "lr": lr * frontend_lr_scale, "name": "frontend"})
        return groups

    def _frontend(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, frames, 96)`` -> ``(B, 561, frames)``, differentiably when the front end trains."""
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.frontend_parameters()):
            return self.net.frontend_reference(mel)
        with torch.no_grad():
            return self.net.frontend(mel) if mel.device.type == "cpu" else self.net.frontend_reference(mel)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        mel = self.features(x).transpose(1, 2).contiguous()  # musicnn takes (batch, frames, mels)
        _, _, flat = self.net.pool(self.net.midend(self._frontend(mel)))
        return self.net.dense_bn(F.relu(self.net.dense(self.dropout(self.net.pool_bn(flat)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.output is None:
            raise ValueError("this musicnn has no output layer (it was made for embeddings): use embed()")
        return self.output(self.dropout(self.embed(x)))
