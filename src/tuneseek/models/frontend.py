"""The log-mel front end shared by the trainable architectures, and their common base class.

A trainable model owns its preprocessing: :class:`MelSpec` says how audio becomes the network's
input (sample rate, STFT, mel bands, log compression), it is saved in the checkpoint's
``config.json``, and :class:`LogMel` computes it inside the model, so a checkpoint can never be
fed features it was not trained on.

The mel filterbank is :func:`tuneseek.features.mel_filterbank` (Slaney scale and area
normalisation, equal to ``librosa.filters.mel``); the STFT is ``torch.stft`` with a periodic
Hann window and centred frames, so frame ``k`` is centred on sample ``k * hop`` and a window of
``n`` samples gives ``1 + n // hop`` frames. Centring pads ``n_fft // 2`` samples at each end:
by reflection by default (as torchaudio and librosa before 0.10 do, and as the papers' code
did), or with zeros (``pad_mode="constant"``: librosa 0.10+, Essentia and
:func:`tuneseek.features.mel_spectrogram`). Only the first and last frame or so differ.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from tuneseek.errors import UsageError
from tuneseek.features import mel_filterbank

__all__ = ["LOG_MODES", "PAD_MODES", "MelSpec", "LogMel", "MelModel", "fit_window"]

LOG_MODES = ("db", "log1p")
PAD_MODES = ("reflect", "constant")
_DB_AMIN = 1e-10  # librosa.power_to_db's default floor: -100 dB


def fit_window(x: np.ndarray, n: int, start: int) -> np.ndarray:
    """``n`` samples (or frames, on the last axis) of ``x`` from ``start``, repeating ``x`` when it is too short.

    Repetition is how training fills a window longer than its item, so inference on a short
    file must fill it the same way.
    """
    if x.shape[-1] < n:
        reps = -(-n // x.shape[-1])
        x = np.concatenate([x] * reps, axis=-1)
        start = 0
    return np.ascontiguousarray(x[..., start : start + n])


@dataclass(frozen=True)
class MelSpec:
    """How audio becomes a log-mel spectrogram ``(n_mels, frames)``.

    ``log`` is the compression of the mel power: ``"db"`` is ``10 * log10(max(power, 1e-10))``
    (``librosa.power_to_db`` with ``ref=1`` and no ``top_db`` clipping); ``"log1p"`` is musicnn's
    ``log10(1 + 10000 * power)``. ``fmax=None`` means ``sample_rate / 2``. ``pad_mode`` is how
    the centred STFT pads the signal's ends (see the module docstring).
    """

    sample_rate: int = 16000
    n_fft: int = 512
    hop: int = 256
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    log: str = "db"
    pad_mode: str = "reflect"

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft < 2 or self.hop <= 0 or self.n_mels <= 0:
            raise UsageError(f"mel spectrogram settings out of range: {self}")
        nyquist = self.sample_rate / 2
        top = nyquist if self.fmax is None else self.fmax
        if not 0 <= self.fmin < top <= nyquist:
            raise UsageError(
                f"mel band limits must satisfy 0 <= fmin < fmax <= sample_rate / 2 = {nyquist:g}, got fmin={self.fmin}, fmax={self.fmax}"
            )
        if self.log not in LOG_MODES:
            raise UsageError(f"unknown log compression {self.log!r}; known: {', '.join(LOG_MODES)}")
        if self.pad_mode not in PAD_MODES:
            raise UsageError(f"unknown STFT pad mode {self.pad_mode!r}; known: {', '.join(PAD_MODES)}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (what a checkpoint's config stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MelSpec:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(
                f"unknown mel spectrogram settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**d)

    def samples(self, seconds: float) -> int:
        """Samples in ``seconds`` of audio at :attr:`sample_rate` (rounded to the nearest sample)."""
        return int(round(seconds * self.sample_rate))

    def frames(self, seconds: float) -> int:
        """Frames of the centred STFT of a ``seconds``-long window: ``1 + samples // hop``."""
        return 1 + self.samples(seconds) // self.hop


class LogMel(nn.Module):
    """``(batch, samples)`` audio at ``spec.sample_rate`` -> ``(batch, n_mels, frames)`` log-mel.

    Power spectrum of a centred, Hann-windowed ``torch.stft``, times the Slaney mel filterbank,
    then ``spec.log``. Always computed in float32, outside any autocast region (half precision
    would underflow the power of quiet bands). The filterbank and window are non-persistent
    buffers: they follow the module across devices but are not saved in checkpoints, since
    ``spec`` rebuilds them.
    """

    def __init__(self, spec: MelSpec):
        super().__init__()
        self.spec = spec
        fb = mel_filterbank(spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax)
        self.register_buffer("filterbank", torch.from_numpy(np.array(fb)), persistent=False)
        self.register_buffer("window", torch.hann_window(spec.n_fft, periodic=True), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() != 2:
            raise ValueError(f"LogMel expects audio (batch, samples), got shape {tuple(audio.shape)}")
        s = self.spec
        with torch.autocast(device_type=audio.device.type, enabled=False):
            stft = torch.stft(
                audio.float(),
                s.n_fft,
                hop_length=s.hop,
                window=self.window,
                center=True,
                pad_mode=s.pad_mode,
                return_complex=True,
            )
            power = stft.real.square() + stft.imag.square()  # (batch, n_fft // 2 + 1, frames)
            mel = torch.matmul(self.filterbank, power)
            if s.log == "db":
                return 10.0 * torch.log10(mel.clamp_min(_DB_AMIN))
            return torch.log1p(10000.0 * mel) / math.log(10.0)


class MelModel(nn.Module):
    """Base of the trainable architectures: a :class:`MelSpec`, its :class:`LogMel`, and a config.

    Subclasses set :attr:`architecture` (their registry name), call ``super().__init__`` with
    the keyword arguments that rebuild them (besides ``spec`` and ``window_seconds``), and
    implement ``embed`` (the penultimate representation, ``(batch, embedding_dim)``) and
    ``forward`` on top of :meth:`features`, which accepts raw audio ``(batch, samples)`` or ready
    log-mel ``(batch, n_mels, frames)``.
    """

    architecture: ClassVar[str]

    def __init__(self, spec: MelSpec, window_seconds: float, kwargs: dict[str, Any]):
        super().__init__()
        if window_seconds <= 0:
            raise UsageError(f"window_seconds must be positive, got {window_seconds}")
        self.spec = spec
        self.window_seconds = float(window_seconds)
        self.logmel = LogMel(spec)
        self._kwargs = dict(kwargs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The network input ``(batch, n_mels, frames)``: ``x`` through :class:`LogMel` when it is
        audio (2-D), ``x`` itself when it is already a log-mel spectrogram (3-D)."""
        if x.dim() == 2:
            return self.logmel(x)
        if x.dim() == 3 and x.shape[1] == self.spec.n_mels:
            return x
        raise ValueError(
            f"{self.architecture} expects audio (batch, samples) or log-mel (batch, {self.spec.n_mels}, frames), "
            f"got shape {tuple(x.shape)}"
        )

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this model (see :func:`tuneseek.models.registry.build`)."""
        return {
            "architecture": self.architecture,
            "kwargs": copy.deepcopy(self._kwargs),
            "spec": self.spec.to_dict(),
            "window_seconds": self.window_seconds,
        }
