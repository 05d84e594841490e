"""FCN, the fully convolutional tagger of Choi, Fazekas & Sandler (2016).

K. Choi, G. Fazekas, M. Sandler, "Automatic tagging using deep convolutional neural networks",
ISMIR 2016. Input: a 96-band log-mel spectrogram of 12 kHz audio (n_fft 512, hop 256) of a
29.1 s MagnaTagATune clip, 1366 frames (the authors' code cut 29.12 s to get exactly 1366
centred frames, hence the default window here). The paper's FCN-5: five 3x3 convolutions with
128, 256, 512, 1024 and 2048 channels, each followed by batch norm, ReLU and max pooling of
(frequency, time) = (2, 4), (2, 4), (2, 4), (3, 5), (4, 4), which brings 96 x 1366 down to
1 x 1; a dense layer then gives one sigmoid per tag (here logits). Dropout (0.5) acts on the
pooled 2048-d vector, and the input is batch-normalised per mel band, as in the authors' code.

Shorter windows (3.7 s, 0.5 s: tuneseek's embedding windows) cannot take the paper's pools, so
the pools are computed from the input size: for each of the first ``L - 1`` layers, with ``r``
bands (or frames) left and ``k`` layers to go, the pool is the integer ``k``-th root of ``r``
(at least 1); the last layer pools globally over whatever remains. For 96 bands and five layers
this gives the paper's (2, 2, 2, 3) then 4; for 1366 frames it gives (4, 4, 4, 4) then 5, where
the paper has (4, 4, 4, 5) then 4. The network accepts any input at least as long as the
product of its time pools (the frames of one window of ``window_seconds``, or fewer); longer
inputs are pooled globally at the end, so one model also tags whole tracks.

``width`` scales every layer's channels (0.25 gives 32 ... 512), and ``channels`` sets the depth
(the paper's FCN-4 is ``(128, 384, 768, 2048)``). About 25.2 M parameters at the defaults (50 outputs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tuneseek.models.frontend import MelModel, MelSpec

__all__ = ["PAPER_CHANNELS", "FCN_SPEC", "FCN_WINDOW_SECONDS", "pool_sizes", "FCN"]

PAPER_CHANNELS = (128, 256, 512, 1024, 2048)
FCN_SPEC = MelSpec(sample_rate=12000, n_fft=512, hop=256, n_mels=96, log="db")
FCN_WINDOW_SECONDS = 29.12


def _integer_root(n: int, k: int) -> int:
    """The largest integer ``p`` with ``p ** k <= n`` (exact, unlike ``int(n ** (1 / k))``)."""
    p = int(round(n ** (1.0 / k)))
    while p**k > n:
        p -= 1
    while (p + 1) ** k <= n:
        p += 1
    return p


def pool_sizes(size: int, layers: int) -> list[int]:
    """Max-pool sizes along one axis for the first ``layers - 1`` layers (see the module docstring)."""
    pools = []
    for i in range(layers - 1):
        pool = max(1, _integer_root(size, layers - i))
        pools.append(pool)
        size //= pool
    return pools


class _ConvBlock(nn.Module):
    """3x3 convolution ("same" padding) -> batch norm -> ReLU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)  # the batch norm's shift is the bias
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class FCN(MelModel):
    """Choi et al.'s FCN tagger: ``forward`` gives ``(batch, n_outputs)`` logits, ``embed`` the
    globally pooled last convolution ``(batch, channels[-1] * width)``."""

    architecture = "fcn"

    def __init__(
        self,
        n_outputs: int,
        *,
        window_seconds: float = FCN_WINDOW_SECONDS,
        spec: MelSpec | None = None,
        channels: Sequence[int] = PAPER_CHANNELS,
        width: float = 1.0,
        dropout: float = 0.5,
    ):
        spec = FCN_SPEC if spec is None else spec
        channels = [int(c) for c in channels]
        super().__init__(
            spec, window_seconds, {"n_outputs": n_outputs, "channels": channels, "width": width, "dropout": dropout}
        )
        sizes = [max(1, round(c * width)) for c in channels]
        freq_pools = pool_sizes(spec.n_mels, len(sizes))
        time_pools = pool_sizes(spec.frames(window_seconds), len(sizes))
        self.pools = list(zip(freq_pools, time_pools))  # (frequency, time) of all layers but the last
        self.min_frames = math.prod(time_pools)
        self.n_outputs = n_outputs
        self.embedding_dim = sizes[-1]
        self.input_bn = nn.BatchNorm1d(spec.n_mels)
        self.blocks = nn.ModuleList(_ConvBlock(c_in, c_out) for c_in, c_out in zip([1] + sizes[:-1], sizes))
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(sizes[-1], n_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if x.shape[2] < self.min_frames:
            raise ValueError(f"fcn needs at least {self.min_frames} frames, got {x.shape[2]}")
        x = self.input_bn(x).unsqueeze(1)  # (batch, 1, n_mels, frames)
        for block, pool in zip(self.blocks, self.pools):
            x = F.max_pool2d(block(x), pool)
        return self.blocks[-1](x).amax(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.dropout(self.embed(x)))
