"""A cross-attention matcher: does this sample come from this origin excerpt, and where?

The model the origin/sample layout was first made for (``{train,valid,test}/{origin,sample}/<label>/``,
:mod:`tuneseek.data.querysets`): rather than map each side to a vector on its own, as a
fingerprint does (:class:`~tuneseek.models.fingerprint_net.FingerprintNet`), it reads an origin
excerpt and a sample *together* and says whether the sample was cut from the excerpt. It is a
research architecture, kept here to answer issue 15's item 6 (does it learn, how fast, how does it
compare with the contrastive fingerprint; ``benchmarks/cross_matcher.py``); nothing in the
library's runtime path uses it, and it is not registered for ``tuneseek train``.

The pieces, after wav2vec 2.0 (Baevski et al., 2020) for the tokenizer and the relative
position convolution, and the transformer decoder (Vaswani et al., 2017) for the cross-attention:

* **level**: each window is divided by its own RMS, so a quieter copy gives the same input;
* **tokenizer**: strided 1-D convolutions over the raw 8 kHz waveform (kernels 10, 8, 4, 4;
  strides 5, 4, 2, 4: one token per 160 samples, 20 ms), GELU, group norm after the first;
* **position**: a grouped convolution over the tokens added to them (relative, so a shift of the
  audio shifts the tokens and nothing else);
* **encoder**: ``enc_layers`` pre-norm transformer layers, shared by both sides (siamese);
* **cross-attention**: ``cross_layers`` pre-norm decoder layers: the sample's tokens attend to
  each other and then to the origin's tokens;
* **match head**: the mean and max over the sample's tokens -> MLP -> one logit;
* **alignment head** (the "where"): one dot-product attention from the sample's final tokens to
  the origin's encoded tokens, ``(batch, sample tokens, origin tokens)`` scores. Trained with a
  cross-entropy towards the origin token each sample token was cut from (positives only), it
  gives the offset as the median over sample tokens of (best origin token - own token).

Shapes: ``forward(origin, sample)`` takes ``origin (batch, n_o)`` and ``sample (batch, n_s)``
float waveforms at ``sample_rate`` (any lengths of at least one token; the benchmark uses 3 s
and 2 s) and returns ``(logit (batch,), alignment (batch, n_s // 160, n_o // 160))``;
:meth:`offset_seconds` turns the alignment into ``(batch,)`` offsets of the sample's start
within the origin window. The default size (``dim=128``, 2 + 2 layers) has about 0.85 M
parameters.

The cost is the point of the comparison: a fingerprint computes one vector per segment of the
library once, and a query is a nearest-neighbour search; this model must run once per
(origin window, sample) *pair*, so searching a library means running it over every window of
every track for every query.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossAttentionMatcher", "TOKEN_HOP"]

#: Samples per token: the product of the tokenizer's strides.
TOKEN_HOP = 160
_KERNELS = (10, 8, 4, 4)
_STRIDES = (5, 4, 2, 4)


class _Tokenizer(nn.Module):
    """``(batch, samples)`` waveform -> ``(batch, samples // 160, dim)`` tokens."""

    def __init__(self, dim: int, width: int):
        super().__init__()
        chans = [1, width, 2 * width, dim, dim]
        layers: list[nn.Module] = []
        for i, (k, s) in enumerate(zip(_KERNELS, _STRIDES)):
            layers.append(nn.Conv1d(chans[i], chans[i + 1], k, stride=s, padding=(k - s + 1) // 2, bias=i > 0))
            if i == 0:
                layers.append(nn.GroupNorm(chans[1], chans[1]))
            layers.append(nn.GELU())
        self.convs = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / x.square().mean(dim=1, keepdim=True).add(1e-8).sqrt()  # level-free
        tokens = self.convs(x.unsqueeze(1))[..., : x.shape[1] // TOKEN_HOP]
        return self.norm(tokens.transpose(1, 2))


class _RelativePosition(nn.Module):
    """wav2vec 2.0's positional convolution: tokens + GELU(grouped conv over tokens)."""

    def __init__(self, dim: int, kernel: int = 15, groups: int = 8):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)


class CrossAttentionMatcher(nn.Module):
    """``(origin, sample)`` raw waveforms -> match logit and sample-to-origin alignment scores."""

    def __init__(
        self,
        dim: int = 128,
        *,
        heads: int = 4,
        enc_layers: int = 2,
        cross_layers: int = 2,
        ff: int = 256,
        width: int = 32,
        dropout: float = 0.1,
        sample_rate: int = 8000,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.hparams = {
            "dim": dim,
            "heads": heads,
            "enc_layers": enc_layers,
            "cross_layers": cross_layers,
            "ff": ff,
            "width": width,
            "dropout": dropout,
            "sample_rate": sample_rate,
        }
        self.tokenizer = _Tokenizer(dim, width)
        self.position = _RelativePosition(dim)

        def enc() -> nn.Module:
            return nn.TransformerEncoderLayer(
                dim, heads, ff, dropout, activation="gelu", batch_first=True, norm_first=True
            )

        def dec() -> nn.Module:
            return nn.TransformerDecoderLayer(
                dim, heads, ff, dropout, activation="gelu", batch_first=True, norm_first=True
            )

        self.encoder = nn.ModuleList([enc() for _ in range(enc_layers)])
        self.enc_norm = nn.LayerNorm(dim)
        self.cross = nn.ModuleList([dec() for _ in range(cross_layers)])
        self.cross_norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, 1))
        self.align_q = nn.Linear(dim, dim)
        self.align_k = nn.Linear(dim, dim)

    @property
    def token_seconds(self) -> float:
        return TOKEN_HOP / self.sample_rate

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """One side's waveform ``(batch, samples)`` -> encoded tokens ``(batch, tokens, dim)``."""
        h = self.position(self.tokenizer(x))
        for layer in self.encoder:
            h = layer(h)
        return self.enc_norm(h)

    def forward(self, origin: torch.Tensor, sample: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem = self.encode(origin)
        h = self.encode(sample)
        for layer in self.cross:
            h = layer(h, mem)
        h = self.cross_norm(h)
        logit = self.head(torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=1)).squeeze(1)
        align = self.align_q(h) @ self.align_k(mem).transpose(1, 2) / h.shape[-1] ** 0.5
        return logit, align

    def offset_seconds(self, align: torch.Tensor) -> torch.Tensor:
        """Alignment scores ``(batch, ns, no)`` -> the sample's start in the origin window, seconds."""
        own = torch.arange(align.shape[1], device=align.device)
        return (align.argmax(dim=2) - own).float().median(dim=1).values * self.token_seconds

    def alignment_score(self, align: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A second match readout, landmark voting's in spirit: for every offset ``d`` that keeps
        the sample inside the origin window, the mean over sample tokens of the log-probability
        (softmax over origin tokens) of aligning token ``i`` to ``i + d``; the best offset's mean
        and that offset in seconds, each ``(batch,)``. Needs ``origin tokens >= sample tokens``."""
        ns, no = align.shape[1], align.shape[2]
        logp = align.log_softmax(dim=2)
        idx = torch.arange(ns, device=align.device)[:, None] + torch.arange(no - ns + 1, device=align.device)[None, :]
        per_offset = logp.gather(2, idx.expand(align.shape[0], -1, -1)).mean(dim=1)  # (batch, offsets)
        best, d = per_offset.max(dim=1)
        return best, d.float() * self.token_seconds

    def alignment_loss(self, align: torch.Tensor, offset_tokens: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each sample token's alignment towards origin token ``own + offset``
        (``offset_tokens (batch,)`` whole tokens); tokens whose target falls outside are ignored."""
        ns, no = align.shape[1], align.shape[2]
        target = torch.arange(ns, device=align.device)[None, :] + offset_tokens[:, None].long()
        target = torch.where((target >= 0) & (target < no), target, torch.full_like(target, -100))
        return F.cross_entropy(align.reshape(-1, no), target.reshape(-1), ignore_index=-100)
