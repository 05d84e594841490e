"""Spectral features shared by the engines: framed STFT magnitudes.

Kept in plain NumPy (no librosa) because fingerprinting runs at hundreds of
times real time and needs a framing that can be continued across streamed
chunks: frame ``k`` always covers samples ``[k*hop, k*hop + n_fft)`` of the
signal, with no centring or padding, so two chunks computed apart give exactly
the frames one pass over the whole signal would give.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@lru_cache(maxsize=8)
def hann(n: int) -> np.ndarray:
    """Periodic Hann window (the usual choice for STFT analysis)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def frame_count(n_samples: int, n_fft: int, hop: int) -> int:
    """Number of whole frames of ``n_fft`` samples, ``hop`` apart, in ``n_samples``."""
    return 0 if n_samples < n_fft else (n_samples - n_fft) // hop + 1


def stft_magnitude(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Magnitude spectrogram, shape ``(frames, n_fft // 2 + 1)``, float32.

    Frames are taken without padding (see the module docstring).
    """
    n = frame_count(len(x), n_fft, hop)
    if n == 0:
        return np.zeros((0, n_fft // 2 + 1), np.float32)
    frames = sliding_window_view(np.asarray(x, np.float32), n_fft)[: n * hop : hop]
    if n < SCIPY_FFT_FRAMES:
        # a query clip: NumPy's transform (in double precision, the same spectrum to float32
        # rounding) spares a command that identifies one clip the import of scipy.fft,
        # about a third of its start-up
        return np.abs(np.fft.rfft(frames * hann(n_fft), axis=1)).astype(np.float32)
    import scipy.fft

    # scipy.fft keeps float32 in single precision (numpy's rfft computes in double): 2x faster here
    return np.abs(scipy.fft.rfft(frames * hann(n_fft), axis=1))


#: spectrograms of at least this many frames use scipy.fft (the indexer's blocks of 1024 frames)
SCIPY_FFT_FRAMES = 1024


# --------------------------------------------------------------------------- mel spectrograms
#
# What follows reproduces librosa's defaults exactly, in NumPy, because the pretrained musicnn
# models were trained on ``librosa.feature.melspectrogram`` features and tuneseek does not
# depend on librosa: a Slaney-style mel filterbank (``librosa.filters.mel``: htk=False,
# norm="slaney") and a centred power STFT (``center=True``, zero padding as librosa 0.10+ does
# with ``pad_mode="constant"``, periodic Hann window, power 2). The arithmetic follows librosa's
# step by step (window product and FFT in float64, rounded to complex64; magnitude and power in
# float32; filterbank product in float32), so results agree to float32 rounding.


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    """Slaney's auditory-toolbox mel scale: linear below 1 kHz, logarithmic above (librosa's htk=False)."""
    f = np.asanyarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    log_t = f >= min_log_hz
    return np.where(log_t, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mels)


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_mel_slaney`."""
    m = np.asanyarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    log_t = m >= min_log_mel
    return np.where(log_t, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


@lru_cache(maxsize=8)
def mel_filterbank(
    sr: int = 16000, *, n_fft: int = 512, n_mels: int = 96, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Mel filterbank ``(n_mels, n_fft // 2 + 1)`` float32, equal to ``librosa.filters.mel`` defaults.

    Triangular filters between Slaney-scale mel points spaced evenly from ``fmin`` to ``fmax``
    (default ``sr / 2``), each scaled by ``2 / bandwidth_hz`` (Slaney area normalisation).
    The returned array is read-only (it is cached).
    """
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, len(fftfreqs)), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    weights.setflags(write=False)
    return weights


def centered_frame_count(n_samples: int, hop: int) -> int:
    """Frames of a centred STFT (librosa ``center=True``): ``1 + n_samples // hop``."""
    return 1 + n_samples // hop


def power_spectrogram(x: np.ndarray, *, n_fft: int = 512, hop: int = 256, block_frames: int = 4096) -> np.ndarray:
    """Centred power spectrogram ``(frames, n_fft // 2 + 1)`` float32, as librosa's
    ``np.abs(stft(x, n_fft, hop, center=True, pad_mode="constant")) ** 2`` (transposed).

    Frame ``k`` covers samples ``[k*hop - n_fft//2, k*hop + n_fft//2)`` with zeros outside the
    signal. Computed ``block_frames`` frames at a time to bound memory on long tracks.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {x.shape}")
    n = centered_frame_count(len(x), hop)
    half = n_fft // 2
    padded = np.zeros(len(x) + 2 * half, dtype=np.float32)
    padded[half : half + len(x)] = x
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann, float64 like scipy's
    frames = sliding_window_view(padded, n_fft)[::hop]
    import scipy.fft

    out = np.empty((n, n_fft // 2 + 1), dtype=np.float32)
    for start in range(0, n, block_frames):
        spec = scipy.fft.rfft(frames[start : start + block_frames] * window, axis=1).astype(np.complex64)
        out[start : start + block_frames] = np.abs(spec) ** 2
    return out


def mel_spectrogram(
    x: np.ndarray, *, sr: int = 16000, n_fft: int = 512, hop: int = 256, n_mels: int = 96
) -> np.ndarray:
    """Power mel spectrogram ``(frames, n_mels)`` float32, equal to
    ``librosa.feature.melspectrogram(y=x, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels).T``
    (librosa 0.10/0.11 defaults: centred frames with zero padding, periodic Hann, power 2,
    Slaney mel filterbank) up to float32 rounding."""
    return power_spectrogram(x, n_fft=n_fft, hop=hop) @ mel_filterbank(sr, n_fft=n_fft, n_mels=n_mels).T


MUSICNN_SR = 16000
MUSICNN_N_FFT = 512
MUSICNN_HOP = 256
MUSICNN_N_MELS = 96
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def musicnn_logmel(audio_16k: np.ndarray) -> np.ndarray:
    """musicnn's network input: ``(frames, 96)`` float32 log-compressed mel power of 16 kHz mono audio.

    As musicnn computed its training features: the librosa mel spectrogram (n_fft 512, hop 256,
    96 bands) stored in float16, then ``log10(10000 * x + 1)``; the multiply is done in float32
    (musicnn's own code kept it in float16, which overflows to inf for mel power above ~6.55 under
    NumPy 2). Values beyond float16's range (65504, never reached by audio within [-1, 1] in
    practice) are clipped rather than turned into inf, so the output is always finite.
    Frame ``k`` is centred on sample ``256*k``; ``1 + len(audio) // 256`` frames.
    """
    mel = mel_spectrogram(audio_16k, sr=MUSICNN_SR, n_fft=MUSICNN_N_FFT, hop=MUSICNN_HOP, n_mels=MUSICNN_N_MELS)
    np.minimum(mel, _FLOAT16_MAX, out=mel)
    mel = mel.astype(np.float16).astype(np.float32)
    return np.log10(10000 * mel + 1)
