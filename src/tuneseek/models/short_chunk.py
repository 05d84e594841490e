"""Short-chunk CNN with residual connections, the best tagger of Won et al. (2020).

M. Won, A. Ferraro, D. Bogdanov, X. Serra, "Evaluation of CNN-based automatic music tagging
models", SMC 2020 (code: github.com/minzwon/sota-music-tagging-models, ``ShortChunkCNN_Res``).
Input: 3.69 s chunks (59049 samples at 16 kHz) as a 128-band log-mel spectrogram (n_fft 512,
hop 256, dB), 231 frames, batch-normalised as one channel. Seven residual blocks, each two 3x3
convolutions with batch norm and ReLU whose first convolution has stride 2, the shortcut a
strided 3x3 convolution with batch norm; channels ``c, c, 2c, 2c, 2c, 2c, 4c`` with ``c = 128``.
The stride-2 convolutions halve both axes seven times (128 bands -> 1, 231 frames -> 2; the
paper's text speaks of 2x2 pooling, the published code strides), then a global max pool over
what is left, a dense layer of ``4c`` units with batch norm, ReLU and dropout 0.5, and the
output layer (sigmoids in the paper, logits here).

Strided convolutions shrink any size to at least 1, so any input length works; training on
3.69 s chunks and pooling globally lets the same model tag longer excerpts. ``channels`` sets
``c`` (use 8 or 16 for tests). About 12.1 M parameters at the defaults.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tuneseek.models.frontend import MelModel, MelSpec

__all__ = ["SHORT_CHUNK_SPEC", "SHORT_CHUNK_SECONDS", "ShortChunkResCNN"]

SHORT_CHUNK_SPEC = MelSpec(sample_rate=16000, n_fft=512, hop=256, n_mels=128, log="db")
SHORT_CHUNK_SECONDS = 59049 / 16000  # 3.69 s, 3**10 samples


class _ResBlock(nn.Module):
    """Two 3x3 convolutions, the first strided, with batch norm and ReLU, plus a shortcut.

    As in Won et al.'s ``Res_2d``: the shortcut is a strided 3x3 convolution with batch norm
    whenever the stride or the channel count changes the shape.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 2):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class ShortChunkResCNN(MelModel):
    """Won et al.'s short-chunk ResNet tagger: ``forward`` gives ``(batch, n_outputs)`` logits,
    ``embed`` the dense layer's output after batch norm and ReLU ``(batch, 4 * channels)``."""

    architecture = "short-chunk-res"

    def __init__(
        self,
        n_outputs: int,
        *,
        window_seconds: float = SHORT_CHUNK_SECONDS,
        spec: MelSpec | None = None,
        channels: int = 128,
        dropout: float = 0.5,
    ):
        spec = SHORT_CHUNK_SPEC if spec is None else spec
        super().__init__(spec, window_seconds, {"n_outputs": n_outputs, "channels": channels, "dropout": dropout})
        c = channels
        widths = [c, c, 2 * c, 2 * c, 2 * c, 2 * c, 4 * c]
        self.n_outputs = n_outputs
        self.embedding_dim = 4 * c
        self.input_bn = nn.BatchNorm2d(1)
        self.blocks = nn.Sequential(*(_ResBlock(c_in, c_out) for c_in, c_out in zip([1] + widths[:-1], widths)))
        self.dense = nn.Linear(4 * c, 4 * c)
        self.dense_bn = nn.BatchNorm1d(4 * c)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(4 * c, n_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(self.features(x).unsqueeze(1))
        x = self.blocks(x).amax(dim=(2, 3))  # global max pool
        return F.relu(self.dense_bn(self.dense(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.dropout(self.embed(x)))
