"""ResNet-18 on log-mel patches, an L2-normalised embedding for triplet training (Tile2Vec style).

The network is K. He, X. Zhang, S. Ren, J. Sun, "Deep residual learning for image recognition",
CVPR 2016 (ResNet-18: a 7x7 stride-2 stem convolution and 3x3 max pool, then four stages of two
BasicBlocks with 64, 128, 256 and 512 channels, stages 2-4 starting with stride 2, global
average pooling), written here without torchvision. The training idea is N. Jean, S. Wang,
A. Samar, G. Azzari, D. Lobell, S. Ermon, "Tile2Vec: unsupervised representation learning for
spatially distributed data", AAAI 2019: a triplet loss on (anchor, neighbour, distant) patches,
a ResNet-18 encoder; for music the patches are log-mel windows and neighbourhood is temporal
proximity within a track.

Adapted to audio: one input channel (the log-mel spectrogram, batch-normalised as a whole),
a ``width`` multiplier on all channels, and for small patches ``stem_stride=1`` and
``stem_pool=False`` to keep the early layers from throwing away most of the resolution. After
the average pool a linear projection gives a ``dim``-d vector, L2-normalised by ``forward``
(what the triplet loss compares) and by ``embed`` alike. Default input: 3.7 s of 16 kHz audio as
128 mel bands in dB. About 11.2 M parameters at the defaults.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tuneseek.models.frontend import MelModel, MelSpec

__all__ = ["RESNET_SPEC", "STAGE_CHANNELS", "BasicBlock", "ResNet18"]

RESNET_SPEC = MelSpec(sample_rate=16000, n_fft=512, hop=256, n_mels=128, log="db")
STAGE_CHANNELS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """ResNet's basic block: 3x3 conv (stride) -> BN -> ReLU -> 3x3 conv -> BN, plus the input
    (through a strided 1x1 conv and BN when the shape changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, *, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class ResNet18(MelModel):
    """ResNet-18 embedding network: ``forward`` and ``embed`` both give ``(batch, dim)`` unit vectors."""

    architecture = "resnet18"

    def __init__(
        self,
        dim: int = 128,
        *,
        window_seconds: float = 3.7,
        spec: MelSpec | None = None,
        width: float = 1.0,
        stem_stride: int = 2,
        stem_pool: bool = True,
    ):
        spec = RESNET_SPEC if spec is None else spec
        super().__init__(
            spec, window_seconds, {"dim": dim, "width": width, "stem_stride": stem_stride, "stem_pool": stem_pool}
        )
        widths = [max(1, round(c * width)) for c in STAGE_CHANNELS]
        self.embedding_dim = dim
        self.input_bn = nn.BatchNorm2d(1)
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 7, stride=stem_stride, padding=3, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1) if stem_pool else nn.Identity(),
        )
        stages = []
        for i, (c_in, c_out) in enumerate(zip(widths[:1] + widths[:-1], widths)):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(c_in, c_out, stride=stride), BasicBlock(c_out, c_out)))
        self.stages = nn.Sequential(*stages)
        self.projection = nn.Linear(widths[-1], dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(self.features(x).unsqueeze(1))
        x = self.stages(self.stem(x)).mean(dim=(2, 3))  # global average pool
        return F.normalize(self.projection(x), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)
