"""A convolutional-recurrent genre classifier (CNN front, LSTM summary), sized for small datasets.

After K. Choi, G. Fazekas, M. Sandler, K. Cho, "Convolutional recurrent neural networks for
music classification", ICASSP 2017: convolutions learn local time-frequency patterns, a
recurrent layer summarises them over time. Input: a 96-band log-mel spectrogram of 12 kHz
audio (n_fft 512, hop 256: the settings of the MTG-Jamendo dataset's precomputed mels) of a
30 s excerpt, 1407 frames, batch-normalised per mel band. (Same shapes, not the same numbers:
the dataset's Essentia mels use unit-area triangles and ``20 * log10`` of the mel power, so a
model trained on them must be given such mels at inference too, not audio through
:class:`~tuneseek.models.frontend.LogMel`.)

* two convolution blocks: 3x3 convolution, batch norm, ReLU, max pooling of (frequency, time)
  (2, 2) then (4, 4), dropout (``conv_dropout``);
* the remaining ``n_mels / 8`` bands are folded into the channels: a sequence of
  ``channels[1] * n_mels // 8`` features per step, one step per 8 frames (~170 ms);
* an LSTM (``hidden`` units, ``rnn_layers`` layers, bidirectional by default);
* the summary of the sequence, ``"mean"`` (the outputs averaged over time, the default) or
  ``"last"`` (each direction's final hidden state), then dropout and a dense layer to the
  logits (``nn.CrossEntropyLoss`` for single-label genre, ``BCEWithLogitsLoss`` for tags).

Genre datasets are small (GTZAN: 1000 clips) and a CRNN overfits them readily, hence the
narrow default convolutions (32, 64 channels), the dropout at three places and the options to
shrink it further. About 0.94 M parameters at the defaults (10 outputs), nearly all in the
LSTM, whose input is 64 channels x 12 bands = 768 features per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tuneseek.errors import UsageError
from tuneseek.models.frontend import MelModel, MelSpec

__all__ = ["CRNN_SPEC", "CRNN_POOLS", "SUMMARIES", "CRNN"]

CRNN_SPEC = MelSpec(sample_rate=12000, n_fft=512, hop=256, n_mels=96, log="db")
CRNN_POOLS = ((2, 2), (4, 4))  # (frequency, time) max pooling of the two convolution blocks
SUMMARIES = ("mean", "last")


class _ConvBlock(nn.Module):
    """3x3 convolution -> batch norm -> ReLU -> max pool -> dropout."""

    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int], dropout: float):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)  # the batch norm's shift is the bias
        self.bn = nn.BatchNorm2d(c_out)
        self.pool = pool
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(F.max_pool2d(F.relu(self.bn(self.conv(x))), self.pool))


class CRNN(MelModel):
    """CNN + LSTM classifier: ``forward`` gives ``(batch, n_outputs)`` logits, ``embed`` the
    sequence summary ``(batch, hidden * (2 if bidirectional else 1))``."""

    architecture = "crnn"

    def __init__(
        self,
        n_outputs: int,
        *,
        window_seconds: float = 30.0,
        spec: MelSpec | None = None,
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        rnn_layers: int = 1,
        bidirectional: bool = True,
        summary: str = "mean",
        conv_dropout: float = 0.1,
        dropout: float = 0.5,
    ):
        spec = CRNN_SPEC if spec is None else spec
        channels = [int(c) for c in channels]
        if len(channels) != len(CRNN_POOLS):
            raise UsageError(
                f"crnn has {len(CRNN_POOLS)} convolution blocks: give {len(CRNN_POOLS)} channel counts, got {channels}"
            )
        if summary not in SUMMARIES:
            raise UsageError(f"unknown crnn summary {summary!r}; known: {', '.join(SUMMARIES)}")
        bands = spec.n_mels
        for pool, _ in CRNN_POOLS:
            bands //= pool
        if bands < 1:
            raise UsageError(f"crnn needs at least 8 mel bands, got {spec.n_mels}")
        super().__init__(
            spec,
            window_seconds,
            {
                "n_outputs": n_outputs,
                "channels": channels,
                "hidden": hidden,
                "rnn_layers": rnn_layers,
                "bidirectional": bidirectional,
                "summary": summary,
                "conv_dropout": conv_dropout,
                "dropout": dropout,
            },
        )
        self.n_outputs = n_outputs
        self.summary = summary
        self.embedding_dim = hidden * (2 if bidirectional else 1)
        self.input_bn = nn.BatchNorm1d(spec.n_mels)
        self.blocks = nn.Sequential(
            *(
                _ConvBlock(c_in, c_out, pool, conv_dropout)
                for c_in, c_out, pool in zip([1] + channels[:-1], channels, CRNN_POOLS)
            )
        )
        self.rnn = nn.LSTM(
            channels[-1] * bands,
            hidden,
            num_layers=rnn_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if rnn_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(self.embedding_dim, n_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        min_frames = CRNN_POOLS[0][1] * CRNN_POOLS[1][1]
        if x.shape[2] < min_frames:
            raise ValueError(f"crnn needs at least {min_frames} frames, got {x.shape[2]}")
        x = self.blocks(self.input_bn(x).unsqueeze(1))  # (batch, channels, bands, steps)
        seq = x.flatten(1, 2).transpose(1, 2)  # (batch, steps, channels * bands)
        out, (h_n, _) = self.rnn(seq)
        if self.summary == "mean":
            return out.mean(dim=1)
        directions = 2 if self.rnn.bidirectional else 1
        return h_n[-directions:].transpose(0, 1).flatten(1)  # last layer, each direction's final state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.dropout(self.embed(x)))
