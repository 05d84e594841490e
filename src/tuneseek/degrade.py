"""Degradations that turn a clean excerpt into a realistic query clip.

A degradation spec is what a person types, steps separated by commas and applied in that
order, e.g. ``"noise:0db,mp3:32k,phone,speed:1.02,tempo:1.05,reverb,gsm"``.  ``""`` or
``"clean"`` means no degradation.  Accepted steps (case-insensitive, ``:`` or ``=`` between
name and value, units optional):

==================  =====================================================================
``noise:XdB``       add pink (1/f) noise at X dB SNR, e.g. ``noise:0db``, ``noise:-5dB``, ``noise:10``
``mp3:Nk``          MP3 round trip at N kbit/s CBR (8, 16, ..., 320), e.g. ``mp3:32k``, ``mp3:128``
``gsm``             GSM 06.10 full-rate codec round trip (8 kHz, telephone)
``phone``           a phone recording in a room: small-room reverb, room noise at ~30 dB SNR,
                    phone AGC-like compression and mild saturation, band limit 300–3400 Hz
``reverb``          reverb of a larger room
``speed:F``         playback speed F like a resampled record: pitch *and* tempo change;
                    F > 1 is faster, higher and shorter (duration / F)
``tempo:F``         tempo F with pitch kept (time stretch); F > 1 is faster and shorter
``pitch:N``         pitch shifted by N semitones with tempo kept, e.g. ``pitch:+1``, ``pitch:-0.5``
``gain:XdB``        volume change by X dB
==================  =====================================================================

Every step returns float32 mono; a step whose result would exceed ±1 is scaled down to a
peak of 0.999 (never hard-clipped), so SNRs and spectra are kept.  Randomness (noise, room
size) comes only from the ``rng`` given to :func:`degrade`, so a result is reproducible.
Nothing here needs the ``sox``/``ffmpeg`` programs: PyAV (libmp3lame), pedalboard and
soxr do the work in memory.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal

from tuneseek.audio import encode_planar
from tuneseek.errors import UsageError

__all__ = [
    "Degradation",
    "KINDS",
    "MP3_BITRATES",
    "ACCEPTED_HELP",
    "parse_degradations",
    "format_degradations",
    "steps_label",
    "degrade",
    "pink_noise",
    "active_power",
]

KINDS = ("noise", "mp3", "phone", "speed", "tempo", "pitch", "reverb", "gsm", "gain")

# MP3 bit rates per MPEG version (kbit/s) and the sample rates of each version
_MPEG1_RATES = (32000, 44100, 48000)
_MPEG2_RATES = (16000, 22050, 24000)
_MPEG25_RATES = (8000, 11025, 12000)
_MPEG1_KBPS = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG2_KBPS = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MPEG25_KBPS = (8, 16, 24, 32, 40, 48, 56, 64)
_KBPS_FOR_RATE = {
    **{r: _MPEG1_KBPS for r in _MPEG1_RATES},
    **{r: _MPEG2_KBPS for r in _MPEG2_RATES},
    **{r: _MPEG25_KBPS for r in _MPEG25_RATES},
}
MP3_BITRATES = tuple(sorted(set(_MPEG1_KBPS) | set(_MPEG2_KBPS)))

_LIMITS = {  # accepted value ranges (inclusive)
    "noise": (-30.0, 80.0),
    "speed": (0.5, 2.0),
    "tempo": (0.5, 2.0),
    "gain": (-60.0, 40.0),
    "pitch": (-12.0, 12.0),
}

ACCEPTED_HELP = (
    "noise:XdB (pink noise at X dB SNR, e.g. noise:0db, noise:-5db), "
    f"mp3:Nk (N in {', '.join(map(str, MP3_BITRATES))}), "
    "gsm, phone, reverb, "
    "speed:F (pitch and tempo, e.g. speed:1.02), "
    "tempo:F (pitch kept, e.g. tempo:1.05), "
    "pitch:N (N semitones, tempo kept, e.g. pitch:+1), "
    "gain:XdB (e.g. gain:-6db); "
    "F in 0.5..2, steps separated by commas, '' or 'clean' for none"
)

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_PATTERNS = {
    "noise": re.compile(rf"^noise\s*[:=]?\s*(?P<v>{_NUM})\s*(?:db)?$"),
    "gain": re.compile(rf"^gain\s*[:=]?\s*(?P<v>{_NUM})\s*(?:db)?$"),
    "mp3": re.compile(r"^mp3\s*[:=\-]?\s*(?P<v>\d+)\s*(?:k|kb|kbps|kbit|kbit/s|kb/s)?$"),
    "speed": re.compile(rf"^speed\s*[:=]?\s*(?P<v>{_NUM})\s*x?$"),
    "tempo": re.compile(rf"^tempo\s*[:=]?\s*(?P<v>{_NUM})\s*x?$"),
    "pitch": re.compile(rf"^pitch\s*[:=]?\s*(?P<v>{_NUM})\s*(?:st|semitones?)?$"),
    "phone": re.compile(r"^phone$"),
    "reverb": re.compile(r"^reverb$"),
    "gsm": re.compile(r"^gsm$"),
}


def _fmt(v: float) -> str:
    s = f"{v:.6g}"
    return "0" if s in ("-0", "+0") else s


@dataclass(frozen=True)
class Degradation:
    """One degradation step; ``value`` is dB SNR (noise), kbit/s (mp3), a factor
    (speed, tempo), semitones (pitch), dB (gain) or ``None`` (phone, reverb, gsm)."""

    kind: str
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"unknown degradation {self.kind!r}; accepted: {ACCEPTED_HELP}")
        needs_value = self.kind in ("noise", "mp3", "speed", "tempo", "pitch", "gain")
        if needs_value and self.value is None:
            raise UsageError(f"degradation {self.kind!r} needs a value; accepted: {ACCEPTED_HELP}")
        if not needs_value and self.value is not None:
            raise UsageError(f"degradation {self.kind!r} takes no value; accepted: {ACCEPTED_HELP}")
        if self.value is not None:
            v = float(self.value)
            if not np.isfinite(v):
                raise UsageError(f"{self.kind} value must be finite, got {self.value!r}")
            if self.kind == "mp3" and v not in MP3_BITRATES:
                raise UsageError(
                    f"mp3 bit rate {_fmt(v)}k is not an MP3 bit rate; accepted: "
                    f"{', '.join(map(str, MP3_BITRATES))} (kbit/s)"
                )
            lo_hi = _LIMITS.get(self.kind)
            if lo_hi and not (lo_hi[0] <= v <= lo_hi[1]):
                raise UsageError(f"{self.kind} value {_fmt(v)} is out of range {_fmt(lo_hi[0])}..{_fmt(lo_hi[1])}")
            object.__setattr__(self, "value", v)

    def label(self) -> str:
        """Canonical short text, safe in file and directory names: ``noise0db``,
        ``noise-5db``, ``mp3-32k``, ``phone``, ``speed1.02``, ``tempo0.95``, ``pitch1``, ``pitch-0.5``, ``gain-6db``.
        :func:`parse_degradations` reads labels back."""
        v = self.value
        if self.kind in ("noise", "gain"):
            return f"{self.kind}{_fmt(v)}db"
        if self.kind == "mp3":
            return f"mp3-{int(v)}k"
        if self.kind in ("speed", "tempo"):
            return f"{self.kind}{_fmt(v)}"
        if self.kind == "pitch":
            return f"pitch{_fmt(v)}"
        return self.kind

    def spec(self) -> str:
        """The step as a person types it: ``noise:-5db``, ``mp3:32k``, ``speed:1.02``, ``phone``."""
        v = self.value
        if self.kind in ("noise", "gain"):
            return f"{self.kind}:{_fmt(v)}db"
        if self.kind == "mp3":
            return f"mp3:{int(v)}k"
        if self.kind in ("speed", "tempo"):
            return f"{self.kind}:{_fmt(v)}"
        if self.kind == "pitch":
            return f"pitch:{v:+.6g}"
        return self.kind

    def __str__(self) -> str:
        return self.spec()


def parse_degradations(spec: str) -> list[Degradation]:
    """Parse ``"noise:0db,mp3:32k,phone"`` into steps (application order).

    ``""``, ``"clean"`` or ``"none"`` give ``[]``; labels (``noise0db``, ``mp3-32k``) are
    accepted too.  A piece that cannot be read raises :class:`UsageError` naming the piece
    and listing what is accepted.
    """
    if spec is None:
        return []
    steps: list[Degradation] = []
    for raw in str(spec).split(","):
        piece = raw.strip().lower()
        if piece in ("", "clean", "none"):
            continue
        name = next((k for k in KINDS if piece.startswith(k)), None)
        m = _PATTERNS[name].match(piece) if name else None
        if m is None:
            raise UsageError(f"cannot read degradation {raw.strip()!r}; accepted: {ACCEPTED_HELP}")
        value = float(m.group("v")) if "v" in m.groupdict() else None
        try:
            steps.append(Degradation(name, value))
        except UsageError as e:
            raise UsageError(f"degradation {raw.strip()!r}: {e}") from None
    return steps


def format_degradations(steps: Sequence[Degradation]) -> str:
    """The spec string of ``steps`` (``"clean"`` for none); parses back to the same steps."""
    return ",".join(s.spec() for s in steps) or "clean"


def steps_label(steps: Sequence[Degradation]) -> str:
    """A file/dir-name safe label for a whole chain, e.g. ``noise0db_mp3-32k``; ``clean`` for none."""
    return "_".join(s.label() for s in steps) or "clean"


# ----------------------------------------------------------------------------- degrade


def degrade(
    audio: np.ndarray,
    sr: int,
    steps: Sequence[Degradation],
    *,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Apply ``steps`` in order to mono ``audio`` at ``sr`` Hz; returns float32 mono.

    The length changes only for ``speed`` and ``tempo`` (``len / F``).  Deterministic for a
    given ``rng`` state (``None`` means ``np.random.default_rng(0)``).
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"degrade expects mono audio (1-D array), got shape {x.shape}")
    if isinstance(steps, str):
        steps = parse_degradations(steps)
    if rng is None:
        rng = np.random.default_rng(0)
    sr = int(sr)
    x = _tame(x.copy())
    for step in steps:
        if len(x) == 0:
            break
        fn = _APPLY[step.kind]
        x = _tame(np.asarray(fn(x, sr, step.value, rng), dtype=np.float32).reshape(-1))
    return x


def _tame(x: np.ndarray) -> np.ndarray:
    """float32, finite, peak ≤ 1 (scaled down to 0.999 if louder, never clipped)."""
    x = np.nan_to_num(x.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 1.0:
        x *= np.float32(0.999 / peak)
    return x


def active_power(x: np.ndarray, *, sr: int, frame_s: float = 0.05, floor_db: float = -50.0) -> float:
    """Mean power of ``x`` over its active part: 50 ms frames within ``floor_db`` of the
    loudest frame (so leading/trailing silence does not lower the measured signal power).
    For a signal without silences this is simply ``mean(x**2)``."""
    x = np.asarray(x, dtype=np.float64)
    hop = max(1, int(frame_s * sr))
    nf = len(x) // hop
    if nf < 2:
        return float(np.mean(x**2)) if len(x) else 0.0
    fp = np.mean(x[: nf * hop].reshape(nf, hop) ** 2, axis=1)
    top = fp.max()
    if top <= 0:
        return 0.0
    active = fp >= top * 10 ** (floor_db / 10)
    # the remainder (< one frame) joins in as part of the last frame's decision
    return float(fp[active].mean())


def pink_noise(n: int, *, sr: int, rng: np.random.Generator, f_min: float = 20.0) -> np.ndarray:
    """Pink (1/f power) noise of ``n`` samples, unit RMS, float32.

    White Gaussian noise shaped in the frequency domain by ``1/sqrt(f)`` (power ∝ 1/f),
    flat below ``f_min`` Hz and with no DC.
    """
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    white = rng.standard_normal(n)
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, d=1.0 / sr)
    shape = 1.0 / np.sqrt(np.maximum(f, f_min))
    shape[0] = 0.0
    pink = np.fft.irfft(spec * shape, n)
    rms = np.sqrt(np.mean(pink**2))
    return (pink / rms if rms > 0 else pink).astype(np.float32)


def _add_noise(x: np.ndarray, sr: int, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add pink noise so that 10·log10(P_signal / P_noise) = ``snr_db`` (P_signal = active
    power of the clip).  A silent clip is returned unchanged (no SNR can be defined)."""
    p_sig = active_power(x, sr=sr)
    if p_sig <= 0:
        return x
    noise = pink_noise(len(x), sr=sr, rng=rng)
    noise *= np.float32(np.sqrt(p_sig / 10 ** (snr_db / 10)))
    return x + noise


def _mp3_rate(sr: int, kbps: int) -> int:
    """The sample rate to encode at: ``sr`` itself when MP3 has it at ``kbps``, otherwise
    the nearest rate (preferring higher ones) at which ``kbps`` is a valid MP3 bit rate."""
    if kbps in _KBPS_FOR_RATE.get(sr, ()):
        return sr
    ok = sorted(r for r, table in _KBPS_FOR_RATE.items() if kbps in table)
    higher = [r for r in ok if r >= sr]
    return higher[0] if higher else ok[-1]


def _mp3(x: np.ndarray, sr: int, kbps: float, rng: np.random.Generator) -> np.ndarray:
    """Real MP3 round trip (libmp3lame CBR through PyAV, in memory), time-aligned, same length.

    The MP3 container written to memory carries a LAME/Xing header with the encoder delay
    and padding, which FFmpeg's decoder honours, so the decoded audio is already
    sample-aligned; should that ever not hold (length differs), the delay is measured by
    cross-correlation and trimmed.
    """
    import av
    import soxr

    kbps = int(kbps)
    n = len(x)
    rate = _mp3_rate(sr, kbps)
    y_in = soxr.resample(x, sr, rate, quality="HQ").astype(np.float32) if rate != sr else x
    y_in = np.ascontiguousarray(np.clip(y_in, -1.0, 1.0), dtype=np.float32)

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp3") as oc:
        st = oc.add_stream("libmp3lame", rate=rate)
        st.bit_rate = kbps * 1000
        st.layout = "mono"
        encode_planar(oc, st, y_in[None, :], rate, "mono")
    buf.seek(0)
    parts = []
    with av.open(buf, mode="r") as ic:
        stream = ic.streams.audio[0]
        dec_rate = stream.codec_context.sample_rate or rate
        for fr in ic.decode(stream):
            a = fr.to_ndarray()
            if a.ndim == 2 and fr.format.is_planar:
                a = a.mean(axis=0)
            elif a.ndim == 2:  # packed: (1, n*channels)
                ch = max(1, len(fr.layout.channels))
                a = a.reshape(-1, ch).mean(axis=1)
            parts.append(a.astype(np.float32).reshape(-1))
    y = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    if dec_rate != rate:  # not expected, but do not trust it blindly
        y = soxr.resample(y, dec_rate, rate, quality="HQ")
    if len(y) != len(y_in):
        y = _align_to(y, y_in, max_lag=int(0.1 * rate))
    if rate != sr:
        y = soxr.resample(y, rate, sr, quality="HQ")
    return _fit_length(np.asarray(y, dtype=np.float32), n)


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    if len(y) >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - len(y), dtype=y.dtype)])


def _align_to(y: np.ndarray, ref: np.ndarray, max_lag: int) -> np.ndarray:
    """Shift ``y`` so that it lines up with ``ref`` (lag by cross-correlation within
    ±max_lag samples), then cut/pad to ``len(ref)``."""
    n = len(ref)
    m = min(n, len(y))
    if m == 0:
        return _fit_length(y, n)
    c = signal.fftconvolve(y.astype(np.float64), ref[::-1].astype(np.float64), mode="full")
    lags = np.arange(len(c)) - (n - 1)
    ok = np.abs(lags) <= max_lag
    lag = int(lags[ok][np.argmax(c[ok])])
    if lag > 0:
        y = y[lag:]
    elif lag < 0:
        y = np.concatenate([np.zeros(-lag, dtype=y.dtype), y])
    return _fit_length(y, n)


def _gsm(x: np.ndarray, sr: int, value, rng: np.random.Generator) -> np.ndarray:
    """GSM 06.10 full-rate round trip (pedalboard resamples to 8 kHz and back, latency
    compensated, so the output stays aligned)."""
    import pedalboard

    return pedalboard.GSMFullRateCompressor()(np.ascontiguousarray(x, dtype=np.float32), sr)


def _bandlimit(x: np.ndarray, sr: int, lo: float, hi: float, order: int = 6) -> np.ndarray:
    nyq = sr / 2
    if hi < 0.95 * nyq:
        sos = signal.butter(order, [lo, hi], btype="bandpass", fs=sr, output="sos")
    else:
        sos = signal.butter(order, lo, btype="highpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x).astype(np.float32)


def _phone(x: np.ndarray, sr: int, value, rng: np.random.Generator) -> np.ndarray:
    """A phone held up in a room: small-room reverb (room size drawn in 0.3–0.5), pink room
    noise at ~30 dB SNR, AGC-like compression, mild saturation, then the telephone band
    300–3400 Hz (6th-order Butterworth edges)."""
    import pedalboard

    room = float(rng.uniform(0.3, 0.5))
    snr = float(rng.uniform(28.0, 32.0))
    drive = float(rng.uniform(1.5, 2.5))
    y = pedalboard.Reverb(room_size=room, damping=0.5, wet_level=0.25, dry_level=0.85, width=0.0)(
        np.ascontiguousarray(x, dtype=np.float32), sr
    )
    y = _add_noise(y, sr, snr, rng)
    y = _tame(y)
    y = pedalboard.Compressor(threshold_db=-20.0, ratio=4.0, attack_ms=5.0, release_ms=100.0)(
        np.ascontiguousarray(y, dtype=np.float32), sr
    )
    peak = float(np.max(np.abs(y))) or 1.0
    y = np.tanh(drive * y / peak) * (peak / np.tanh(drive))
    return _bandlimit(y.astype(np.float32), sr, 300.0, 3400.0)


def _reverb(x: np.ndarray, sr: int, value, rng: np.random.Generator) -> np.ndarray:
    """Reverb of a larger room (pedalboard's Freeverb, room size 0.85)."""
    import pedalboard

    return pedalboard.Reverb(room_size=0.85, damping=0.4, wet_level=0.35, dry_level=0.7, width=0.0)(
        np.ascontiguousarray(x, dtype=np.float32), sr
    )


def _speed(x: np.ndarray, sr: int, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Play ``factor`` times faster, like a record or tape at the wrong speed: pitch and
    tempo change together.  The samples are treated as if recorded at ``sr * factor`` and
    resampled to ``sr``: ``speed:1.02`` gives a clip 2 % shorter (``len / 1.02``) with every
    frequency 2 % higher (440 Hz → 448.8 Hz)."""
    import soxr

    return soxr.resample(x, sr * factor, sr, quality="HQ")


def _tempo(x: np.ndarray, sr: int, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Time stretch with pitch kept (pedalboard/Rubber Band): ``factor`` > 1 is faster, so
    ``tempo:1.05`` turns 10 s into ≈ 9.52 s at the same pitch."""
    import pedalboard

    y = pedalboard.time_stretch(np.ascontiguousarray(x[None, :], dtype=np.float32), sr, stretch_factor=float(factor))
    return y[0]


def _pitch(x: np.ndarray, sr: int, semitones: float, rng: np.random.Generator) -> np.ndarray:
    """Pitch shift by ``semitones`` with the tempo and length kept (pedalboard/Rubber Band, offline):
    ``pitch:+1`` plays the same notes a semitone higher (440 Hz → 466.2 Hz) in the same time."""
    import pedalboard

    y = pedalboard.time_stretch(
        np.ascontiguousarray(x[None, :], dtype=np.float32), sr, pitch_shift_in_semitones=float(semitones)
    )
    return _fit_length(y[0], len(x))


def _gain(x: np.ndarray, sr: int, db: float, rng: np.random.Generator) -> np.ndarray:
    return x * np.float32(10 ** (db / 20))


_APPLY = {
    "noise": lambda x, sr, v, rng: _add_noise(x, sr, v, rng),
    "mp3": _mp3,
    "gsm": _gsm,
    "phone": _phone,
    "reverb": _reverb,
    "speed": _speed,
    "tempo": _tempo,
    "pitch": _pitch,
    "gain": _gain,
}
