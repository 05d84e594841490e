"""A neural audio fingerprint: 1 s of audio -> one L2-normalised vector, robust to noise, rooms and codecs.

After S. Chang, D. Lee, J. Park, H. Lim, K. Lee, K. Ko, Y. Han, "Neural audio fingerprint for
high-specific audio retrieval based on contrastive learning", ICASSP 2021: a segment of 1 s
of 8 kHz audio becomes a log-mel spectrogram (here 128 bands from 300 Hz to 4 kHz, 32 frames of
32 ms), a stack of separable convolutions (a 1x3 convolution along time, then a 3x1 along
frequency, each strided by 2 and followed by layer normalisation and ReLU) shrinks it to one
``hidden``-d vector, and a projection head maps that to ``dim`` dimensions on the unit sphere.
Two segments of the same music, one of them degraded, are trained to lie close together
(contrastive loss, :mod:`tuneseek.train.fingerprint`); search is then a maximum inner product.

Differences from the paper, for a model that trains on two CPU cores and ships in the package:
``width`` (the paper's ``d``) defaults to 32 rather than 64 and ``hidden`` to 256 rather than
1024 (about 1 M parameters, 2 MB in half precision), and the projection is one hidden layer
(``hidden`` -> 256 -> ``dim``, ELU) rather than the paper's split heads. Layer normalisation, not batch normalisation, so that a segment's vector
does not depend on the other segments of its batch (a batch of one at query time is the same
network as a batch of a thousand at indexing).

The log-mel is made level-free before the convolutions: each segment's dB values are taken
relative to its own loudest bin and floored at -80 dB, so a quieter copy of a segment gives the
same input. A segment of digital silence therefore gives an all-floor input; callers drop such
segments (:func:`audible_segments`) rather than index them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tuneseek.models.frontend import MelModel, MelSpec

__all__ = ["FINGERPRINT_SPEC", "SEGMENT_SECONDS", "HOP_SECONDS", "FingerprintNet", "audible_segments"]

FINGERPRINT_SPEC = MelSpec(sample_rate=8000, n_fft=1024, hop=256, n_mels=128, fmin=300.0, fmax=4000.0, log="db")
#: The length of a segment, and the step between the segments a track is indexed with.
SEGMENT_SECONDS = 1.0
HOP_SECONDS = 0.5
#: Floor of the level-free log-mel, in dB below the segment's loudest bin.
FLOOR_DB = 80.0
#: A segment whose RMS is below this (about -70 dBFS) carries nothing to match.
SILENT_RMS = 3e-4


def audible_segments(windows: np.ndarray) -> np.ndarray:
    """Which rows of ``windows`` (segments of audio, ``(n, samples)``) have sound to fingerprint."""
    return np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=1)) >= SILENT_RMS


class _SeparableBlock(nn.Module):
    """1x3 convolution along time (stride 2 in time), layer norm, ReLU; then 3x1 along frequency
    (stride 2 in frequency), layer norm, ReLU. Strides drop to 1 on an axis already down to one bin."""

    def __init__(self, c_in: int, c_out: int, shape: tuple[int, int]):
        super().__init__()
        f, t = shape
        st, sf = (2 if t > 1 else 1), (2 if f > 1 else 1)
        self.time = nn.Conv2d(c_in, c_out, (1, 3), stride=(1, st), padding=(0, 1))
        t = (t - 1) // st + 1
        self.norm1 = nn.LayerNorm([c_out, f, t])
        self.freq = nn.Conv2d(c_out, c_out, (3, 1), stride=(sf, 1), padding=(1, 0))
        f = (f - 1) // sf + 1
        self.norm2 = nn.LayerNorm([c_out, f, t])
        self.out_shape = (f, t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm1(self.time(x)))
        return F.relu(self.norm2(self.freq(x)))


class FingerprintNet(MelModel):
    """``(batch, samples)`` of 1 s segments -> ``(batch, dim)`` unit vectors; ``forward`` and ``embed`` alike."""

    architecture = "fingerprint"

    def __init__(
        self,
        dim: int = 128,
        *,
        width: int = 32,
        hidden: int = 256,
        window_seconds: float = SEGMENT_SECONDS,
        spec: MelSpec | None = None,
    ):
        spec = FINGERPRINT_SPEC if spec is None else spec
        super().__init__(spec, window_seconds, {"dim": dim, "width": width, "hidden": hidden})
        self.embedding_dim = dim
        channels = [width, width, 2 * width, 2 * width, 4 * width, 4 * width, 8 * width, hidden]
        shape = (spec.n_mels, spec.frames(window_seconds))
        blocks = []
        for c_in, c_out in zip([1, *channels[:-1]], channels):
            block = _SeparableBlock(c_in, c_out, shape)
            shape = block.out_shape
            blocks.append(block)
        self.encoder = nn.Sequential(*blocks)
        self.flat = hidden * shape[0] * shape[1]
        self.projection = nn.Sequential(nn.Linear(self.flat, 256), nn.ELU(), nn.Linear(256, dim))

    def level_free(self, mel_db: torch.Tensor) -> torch.Tensor:
        """Each segment's log-mel in units of ``FLOOR_DB`` below its loudest bin, within [-1, 0]."""
        top = mel_db.amax(dim=(1, 2), keepdim=True)
        return (mel_db - top).clamp_min(-FLOOR_DB) / FLOOR_DB

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(self.level_free(self.features(x)).unsqueeze(1))
        return F.normalize(self.projection(z.flatten(1)), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)
