"""musicnn (Pons & Serra, 2019) in PyTorch, inference only, matching the original TensorFlow graph.

The network of the ``musicnn`` 0.1.0 package (``models.build_musicnn``; MTT_musicnn and
MSD_musicnn share it), input a log-mel patch ``(batch, frames, 96)``:

* **front end**, "musically motivated": a batch norm of the input, then two *timbral* branches
  (conv 7 frames x 38 or 67 mel bands, 204 filters each, time padded by 3 zeros on both sides,
  no frequency padding) and three *temporal* branches (conv 128, 64 or 32 frames x 1 band,
  51 filters each, TensorFlow ``"same"`` padding in time: ``(k-1)//2`` zeros before and
  ``k//2`` after, i.e. one more at the end for even ``k``). Each branch is conv -> ReLU ->
  batch norm -> max over frequency; the five are concatenated: 561 channels per frame.
* **mid end**: three convolutions of 7 frames over all channels (64 filters, time padded 3/3),
  each conv -> ReLU -> batch norm, the second and third with a residual connection; the
  front-end output and the three mid-end outputs are concatenated: 753 channels per frame.
* **back end**: max and mean over time (``max_pool``, ``mean_pool``: 753 each), flattened
  *interleaved per channel* (index ``2c`` is channel c's max, ``2c+1`` its mean, as
  ``tf.concat([max, mean], 2)`` then ``flatten`` lays them out), batch norm, dense 200 + ReLU,
  batch norm (= ``penultimate``), dense 50 (logits) -> sigmoid (``prob``).

Batch norms are inference-mode affine maps with TensorFlow's epsilon 1e-3 (PyTorch's default
1e-5 would shift the outputs measurably). Dropout is the identity at inference.

Because everything before the back end is a convolution in time and the back end pools over
all frames, any patch length of at least one frame works: musicnn was trained on 187 frames
(3 s), and the same weights embed 31-frame (0.5 s) or 1812-frame (29 s) windows.

The parameter names of this module are tuneseek's own (``timbral74.conv.weight``...); the
mapping from the TensorFlow checkpoint names lives in :mod:`tuneseek.embed.weights`.
About 0.79 M numbers in all (787 k trainable, 5 k batch-norm statistics).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TF_BN_EPSILON", "MusicnnOutput", "Musicnn", "BatchNorm", "LAYERS"]

TF_BN_EPSILON = 1e-3

# Names of the embedding layers an output exposes, with their sizes for the default network.
LAYERS = {"penultimate": 200, "max_pool": 753, "mean_pool": 753}


class BatchNorm(nn.Module):
    """Inference-mode batch normalisation over channel axis ``dim``, TensorFlow's epsilon.

    ``y = (x - moving_mean) / sqrt(moving_variance + eps) * gamma + beta``; the statistics are
    buffers, gamma/beta parameters (as in the checkpoint), and there is no training mode.
    """

    def __init__(self, channels: int, *, dim: int = 1, eps: float = TF_BN_EPSILON):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The affine map this layer applies: ``y = x * scale + shift``."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_shift()
        shape = [1] * x.dim()
        shape[self.dim] = -1
        return torch.addcmul(shift.view(shape), x, scale.view(shape))


class _FreqPooledConv(nn.Module):
    """conv2d over (time, mel) -> ReLU -> batch norm -> max over the remaining mel positions.

    Input ``(B, 1, T, n_mels)``; output ``(B, filters, T)``. Time is padded with
    ``pad_before`` / ``pad_after`` zeros; frequency is never padded ("valid").
    """

    def __init__(self, filters: int, kernel: tuple[int, int], pad_before: int, pad_after: int):
        super().__init__()
        self.pad = (0, 0, pad_before, pad_after)
        self.conv = nn.Conv2d(1, filters, kernel)
        self.bn = BatchNorm(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(F.pad(x, self.pad)))
        return self.bn(y).amax(dim=3)


# Rows of one im2col GEMM in the fast front end: ~1000 rows keep the im2col block and the GEMM
# output within L2 cache (measured best between 500 and 2000 on an AMD EPYC core).
_GEMM_ROWS = 1024


def _signed_gemm_weights(block: _FreqPooledConv):
    """A conv -> ReLU -> batch norm -> max-over-frequency block as a GEMM weight plus a pooled post-op.

    Returns ``(weight, post)``: ``weight`` is the kernel flattened to ``(kh*kw, filters)`` with the
    columns of negative batch-norm scale negated; ``post(m)`` maps the max over frequency of
    ``cols @ weight`` to the block's output (bias, sign back, ReLU, batch norm).
    """
    scale, shift = block.bn.scale_shift()
    sign = torch.where(scale < 0, -1.0, 1.0).to(scale.dtype)
    w = block.conv.weight  # (filters, 1, kh, kw)
    weight = (w.reshape(w.shape[0], -1) * sign[:, None]).t().contiguous()
    bias = block.conv.bias * sign

    def post(m: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(shift, torch.relu((m + bias) * sign), scale)

    return weight, post


class _MidendConv(nn.Module):
    """conv over time, 7 frames x all channels, padded 3/3 -> ReLU -> batch norm: ``(B, C, T) -> (B, filters, T)``."""

    def __init__(self, channels: int, filters: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, filters, 7, padding=3)
        self.bn = BatchNorm(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


@dataclass
class MusicnnOutput:
    """What the network gives for each patch of a batch."""

    logits: torch.Tensor  # (B, num_classes)
    prob: torch.Tensor  # (B, num_classes), sigmoid of the logits
    penultimate: torch.Tensor  # (B, backend_units), after its batch norm
    max_pool: torch.Tensor  # (B, 753), max over time of the mid-end output
    mean_pool: torch.Tensor  # (B, 753), mean over time of the mid-end output

    def __getitem__(self, name: str) -> torch.Tensor:
        return getattr(self, name)


class Musicnn(nn.Module):
    """The musicnn tagger (``build_musicnn`` with the MTT/MSD settings by default).

    ``forward(x)`` takes log-mel patches ``(batch, frames, n_mels)`` (float32) and returns a
    :class:`MusicnnOutput`. Use it under ``torch.inference_mode()``; it has no training mode.
    """

    def __init__(self, num_classes: int = 50, *, n_mels: int = 96, midend_filters: int = 64, backend_units: int = 200):
        super().__init__()
        self.num_classes = num_classes
        self.n_mels = n_mels
        timbral_filters = int(1.6 * 128)  # 204
        temporal_filters = int(1.6 * 32)  # 51
        self.frontend_bn = BatchNorm(1)
        self.timbral74 = _FreqPooledConv(timbral_filters, (7, int(0.4 * n_mels)), 3, 3)
        self.timbral77 = _FreqPooledConv(timbral_filters, (7, int(0.7 * n_mels)), 3, 3)
        # TensorFlow "same" padding for stride 1: (k-1)//2 before, the rest after.
        self.temporal128 = _FreqPooledConv(temporal_filters, (128, 1), 63, 64)
        self.temporal64 = _FreqPooledConv(temporal_filters, (64, 1), 31, 32)
        self.temporal32 = _FreqPooledConv(temporal_filters, (32, 1), 15, 16)
        self.frontend_channels = frontend_channels = 2 * timbral_filters + 3 * temporal_filters  # 561
        self.midend1 = _MidendConv(frontend_channels, midend_filters)
        self.midend2 = _MidendConv(midend_filters, midend_filters)
        self.midend3 = _MidendConv(midend_filters, midend_filters)
        self.pooled_channels = frontend_channels + 3 * midend_filters  # 753
        self.pool_bn = BatchNorm(2 * self.pooled_channels)
        self.dense = nn.Linear(2 * self.pooled_channels, backend_units)
        self.dense_bn = BatchNorm(backend_units)
        self.output = nn.Linear(backend_units, num_classes)
        self.requires_grad_(False)  # inference only
        # Number type of the front end's GEMMs (95% of the work). float32 by default, which is
        # what the parity tests hold; torch.bfloat16 is an explicit opt-in that runs about
        # twice as fast on CPUs with AVX512-BF16/AMX, at a small cost in accuracy (the input is
        # rounded to 8 significant bits; accumulation stays float32; pooled values and all later
        # layers stay float32).
        self.gemm_dtype = torch.float32
        self.eval()

    def train(self, mode: bool = True) -> Musicnn:
        """Always inference mode: the port carries no training behaviour (dropout, batch statistics)."""
        return super().train(False)

    def frontend_reference(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, n_mels)`` log-mel -> ``(B, 561, T)`` front-end features, layer by layer as in
        musicnn's graph (conv2d -> ReLU -> batch norm -> max over frequency). Slower than
        :meth:`frontend`; kept as the readable definition and to test the fast path against."""
        x = self.frontend_bn(x.unsqueeze(1))  # (B, 1, T, n_mels); one channel
        branches = [self.timbral74, self.timbral77, self.temporal128, self.temporal64, self.temporal32]
        return torch.cat([b(x) for b in branches], dim=1)

    def frontend(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, n_mels)`` log-mel -> ``(B, 561, T)`` front-end features, computed fast.

        Same result as :meth:`frontend_reference` up to float rounding (~1e-6), but faster on
        one core (measured 1.1x for one 187-frame patch, 2.4x for a batch of 16, where the
        layer-by-layer path's 9 MB-per-patch activations fall out of cache) and with working
        memory that does not grow with the batch; its GEMMs run at ~90% of the core's peak:

        * batch norm then max over frequency is rewritten as max first: for a channel with
          scale ``a`` and shift ``b``, ``max_f(a*relu(z_f) + b) = a*relu(max_f z_f) + b`` when
          ``a >= 0`` and ``a*relu(min_f z_f) + b`` when ``a < 0``; the kernels of negative-scale
          channels are negated (``min z = -max(-z)``) so one ``amax`` serves both, and the bias,
          ReLU and batch norm then act on the pooled ``(frames, channels)`` values only;
        * each convolution is an explicit im2col (a strided view copied ``chunk`` output frames
          at a time) times a weight matrix, i.e. one well-shaped GEMM per chunk whose inputs
          and outputs stay in cache; the padded patches of a batch are laid end to end as one
          sequence for the timbral branches (the 6 outputs per patch that straddle two patches
          are computed and dropped), while the temporal branches, whose windows are 127 frames
          wide, are cut per patch;
        * the three temporal kernels (128, 64, 32 frames, "same"-padded) are all centred
          alike, so the 64- and 32-frame windows are column slices of the 128-frame im2col.
        """
        B, T, n_mels = x.shape
        scale0, shift0 = self.frontend_bn.scale_shift()
        xb = x * scale0 + shift0  # the input batch norm (one channel); padding comes after it
        out = x.new_empty(B, T, self.frontend_channels)
        col = 0
        # Timbral branches: (7 x width) kernels, time padded 3/3, frequency "valid".
        g = self.gemm_dtype
        seq = F.pad(xb, (0, 0, 3, 3)).reshape(B * (T + 6), n_mels).to(g)
        for block in (self.timbral74, self.timbral77):
            kt, kf = block.conv.kernel_size
            positions = n_mels - kf + 1
            weight, post = _signed_gemm_weights(block)
            weight = weight.to(g)
            pooled = x.new_empty(B * (T + 6), weight.shape[1], dtype=g)
            chunk = max(1, _GEMM_ROWS // positions)
            for q0 in range(0, B * (T + 6) - 6, chunk):
                n = min(chunk, B * (T + 6) - 6 - q0)
                cols = seq[q0 : q0 + n + kt - 1].as_strided(
                    (n, positions, kt, kf), (n_mels, 1, n_mels, 1), seq.storage_offset() + q0 * n_mels
                )
                torch.amax(
                    (cols.reshape(n * positions, kt * kf) @ weight).view(n, positions, -1),
                    dim=1,
                    out=pooled[q0 : q0 + n],
                )
            c = weight.shape[1]
            out[:, :, col : col + c] = post(pooled.view(B, T + 6, c)[:, :T].float())
            col += c
        # Temporal branches: (k x 1) kernels, "same" padding in time (63 before, 64 after for k=128).
        blocks = (self.temporal128, self.temporal64, self.temporal32)
        kmax = blocks[0].conv.kernel_size[0]
        before = blocks[0].pad[2]
        span = T + kmax - 1
        seq_t = (
            F.pad(xb, (0, 0, before, kmax - 1 - before)).reshape(B * span, n_mels).t().to(g).contiguous()
        )  # (n_mels, B*span)
        prepared = []
        for block in blocks:
            k = block.conv.kernel_size[0]
            offset = before - block.pad[2]  # where this kernel's window starts inside the kmax window
            weight, post = _signed_gemm_weights(block)
            prepared.append((offset, k, weight.to(g), post))
        pooled_t = [x.new_empty(B, T, p[2].shape[1], dtype=g) for p in prepared]
        chunk = max(1, _GEMM_ROWS // n_mels)
        stride = seq_t.stride(0)
        for b in range(B):  # per patch: windows straddling two patches would be wasted work here
            for t0 in range(0, T, chunk):
                n = min(chunk, T - t0)
                start = seq_t.storage_offset() + b * span + t0
                cols = seq_t.as_strided((n_mels, n, kmax), (stride, 1, 1), start).reshape(n_mels * n, kmax)
                for (offset, k, weight, _), pooled in zip(prepared, pooled_t):
                    torch.amax(
                        (cols[:, offset : offset + k] @ weight).view(n_mels, n, -1), dim=0, out=pooled[b, t0 : t0 + n]
                    )
        for (_, _, weight, post), pooled in zip(prepared, pooled_t):
            c = weight.shape[1]
            out[:, :, col : col + c] = post(pooled.float())
            col += c
        return out.transpose(1, 2)

    def midend(self, front: torch.Tensor) -> torch.Tensor:
        """``(B, 561, T)`` -> ``(B, 753, T)``: the front end and the three mid-end outputs, stacked."""
        m1 = self.midend1(front)
        m2 = self.midend2(m1) + m1
        m3 = self.midend3(m2) + m2
        return torch.cat([front, m1, m2, m3], dim=1)

    @staticmethod
    def pool(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, 753, T)`` -> ``(max_pool, mean_pool, flat)``: the max and the mean over time, and the two
        interleaved per channel as musicnn's flatten lays them out ``[max0, mean0, max1, mean1, ...]``."""
        max_pool = features.amax(dim=2)
        mean_pool = features.mean(dim=2)
        return max_pool, mean_pool, torch.stack([max_pool, mean_pool], dim=2).flatten(1)

    def backend(self, features: torch.Tensor) -> MusicnnOutput:
        """``(B, 753, T)`` -> pooled vectors, penultimate layer and tag probabilities."""
        max_pool, mean_pool, flat = self.pool(features)
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(flat))))
        logits = self.output(penultimate)
        return MusicnnOutput(logits, torch.sigmoid(logits), penultimate, max_pool, mean_pool)

    def forward(self, x: torch.Tensor, *, reference: bool = False) -> MusicnnOutput:
        """Run log-mel patches ``(batch, frames, n_mels)`` through the network.

        ``reference=True`` takes the layer-by-layer front end (:meth:`frontend_reference`).
        """
        if x.dim() != 3 or x.shape[2] != self.n_mels or x.shape[1] < 1 or x.shape[0] < 1:
            raise ValueError(
                f"musicnn expects log-mel patches (batch >= 1, frames >= 1, {self.n_mels}), got {tuple(x.shape)}"
            )
        x = x.contiguous()
        front = self.frontend_reference(x) if reference else self.frontend(x)
        return self.backend(self.midend(front))
