import numpy as np
import pytest
from scipy import signal

from tuneseek.degrade import (
    KINDS,
    Degradation,
    degrade,
    format_degradations,
    parse_degradations,
    pink_noise,
    steps_label,
)
from tuneseek.errors import UsageError
from tuneseek.synth import synth_track

SR = 22050
ALL = "noise:0db,mp3:32k,phone,speed:1.02,tempo:1.05,pitch:+1,reverb,gsm,gain:-3db"


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return synth_track(4, duration=10.0, sr=SR)


def _tone(freq: float, seconds: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _pitch(x: np.ndarray, sr: int) -> float:
    """Frequency of the strongest spectral peak, parabolic interpolation on a padded FFT."""
    x = x[len(x) // 10 : -len(x) // 10].astype(np.float64)  # skip edges
    n = 1 << int(np.ceil(np.log2(len(x)))) + 1
    mag = np.log(np.abs(np.fft.rfft(x * np.hanning(len(x)), n)) + 1e-12)
    k = int(np.argmax(mag))
    a, b, c = mag[k - 1], mag[k], mag[k + 1]
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / n


def _lag(y: np.ndarray, x: np.ndarray, max_lag: int) -> int:
    c = signal.fftconvolve(y.astype(np.float64), x[::-1].astype(np.float64), mode="full")
    lags = np.arange(len(c)) - (len(x) - 1)
    ok = np.abs(lags) <= max_lag
    return int(lags[ok][np.argmax(c[ok])])


def _band_db(x: np.ndarray, sr: int, lo: float, hi: float) -> float:
    f, p = signal.welch(x, sr, nperseg=4096)
    return 10 * np.log10(p[(f >= lo) & (f < hi)].sum() + 1e-30)


def _measured_snr(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """SNR of y = k·x + noise (k absorbs any overall rescaling), and the noise."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    k = np.dot(y64, x64) / np.dot(x64, x64)
    noise = y64 - k * x64
    return 10 * np.log10(np.mean((k * x64) ** 2) / np.mean(noise**2)), noise


# ---------------------------------------------------------------------------- parsing


def test_parse_full_spec():
    steps = parse_degradations("noise:0db,mp3:32k,phone,speed:1.02,tempo:1.05,reverb,gsm")
    assert [s.kind for s in steps] == ["noise", "mp3", "phone", "speed", "tempo", "reverb", "gsm"]
    assert [s.value for s in steps] == [0.0, 32.0, None, 1.02, 1.05, None, None]
    assert [s.label() for s in steps] == ["noise0db", "mp3-32k", "phone", "speed1.02", "tempo1.05", "reverb", "gsm"]


@pytest.mark.parametrize("spec", ["", "clean", " Clean ", "none"])
def test_parse_clean(spec):
    assert parse_degradations(spec) == []
    assert steps_label([]) == "clean" and format_degradations([]) == "clean"


@pytest.mark.parametrize(
    "piece,kind,value",
    [
        ("noise:0db", "noise", 0.0),
        ("noise:-5db", "noise", -5.0),
        ("noise:10dB", "noise", 10.0),
        ("noise:10", "noise", 10.0),
        ("NOISE = 2.5 dB", "noise", 2.5),
        ("mp3:32k", "mp3", 32.0),
        ("mp3:128", "mp3", 128.0),
        ("mp3:64kbps", "mp3", 64.0),
        ("speed:0.98", "speed", 0.98),
        ("tempo:1.05", "tempo", 1.05),
        ("pitch:+1", "pitch", 1.0),
        ("pitch=-0.5st", "pitch", -0.5),
        ("gain:-6db", "gain", -6.0),
        ("gain:+3", "gain", 3.0),
        ("gsm", "gsm", None),
        ("reverb", "reverb", None),
        ("phone", "phone", None),
    ],
)
def test_parse_pieces(piece, kind, value):
    (step,) = parse_degradations(piece)
    assert step == Degradation(kind, value)


def test_label_and_spec_round_trip():
    steps = parse_degradations(ALL + ",noise:-5db,gain:6db,noise:2.5db,tempo:0.9")
    labels = [s.label() for s in steps]
    assert all(all(ch.isalnum() or ch in "-." for ch in lab) for lab in labels)
    assert parse_degradations(",".join(labels)) == steps
    assert parse_degradations(format_degradations(steps)) == steps
    assert "noise-5db" in labels and "gain6db" in labels and "noise2.5db" in labels
    assert steps_label(steps[:2]) == "noise0db_mp3-32k"


@pytest.mark.parametrize(
    "spec,piece",
    [
        ("noise", "noise"),
        ("noise:loud", "noise:loud"),
        ("mp3:33k", "mp3:33k"),
        ("mp3:32k,bitcrush", "bitcrush"),
        ("speed:5", "speed:5"),
        ("tempo:0", "tempo:0"),
        ("phone:3", "phone:3"),
        ("gain:-100db", "gain:-100db"),
        ("reverb,noise:0db,wow", "wow"),
    ],
)
def test_parse_errors_name_the_piece(spec, piece):
    with pytest.raises(UsageError) as e:
        parse_degradations(spec)
    msg = str(e.value)
    assert piece in msg
    if piece in ("bitcrush", "wow", "noise:loud", "noise", "phone:3"):
        assert all(k in msg for k in KINDS)  # lists what is accepted


# ---------------------------------------------------------------------------- effects


@pytest.mark.parametrize("snr", [0.0, 10.0])
def test_noise_snr(music, snr):
    y = degrade(music, SR, [Degradation("noise", snr)], rng=np.random.default_rng(1))
    measured, _ = _measured_snr(music, y)
    assert measured == pytest.approx(snr, abs=0.5)


def _loglog_slope(x: np.ndarray, sr: int, lo: float = 50.0, hi: float = 8000.0) -> float:
    f, p = signal.welch(x, sr, nperseg=8192)
    m = (f >= lo) & (f <= hi)
    return float(np.polyfit(np.log10(f[m]), np.log10(p[m]), 1)[0])


def test_noise_is_pink(music):
    n = pink_noise(5 * SR, sr=SR, rng=np.random.default_rng(0))
    assert n.dtype == np.float32 and np.sqrt(np.mean(n.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    assert _loglog_slope(n, SR) == pytest.approx(-1.0, abs=0.3)
    # and the noise degrade() adds is that noise
    y = degrade(music, SR, [Degradation("noise", 0.0)], rng=np.random.default_rng(2))
    _, added = _measured_snr(music, y)
    assert _loglog_slope(added, SR) == pytest.approx(-1.0, abs=0.3)


def test_noise_on_silence_is_a_noop():
    z = np.zeros(SR, np.float32)
    assert np.array_equal(degrade(z, SR, parse_degradations("noise:0db"), rng=np.random.default_rng(0)), z)


@pytest.mark.parametrize("kbps", [32, 128])
def test_mp3_round_trip_is_aligned(music, kbps):
    x = music[: 5 * SR]
    y = degrade(x, SR, [Degradation("mp3", kbps)], rng=np.random.default_rng(0))
    assert y.dtype == np.float32 and len(y) == len(x)
    assert abs(_lag(y, x, max_lag=SR // 10)) < 0.002 * SR  # < 2 ms
    snr, _ = _measured_snr(x, y)
    assert snr > 10  # a real codec: close to the input, but not identical
    assert not np.array_equal(x, y)


def test_mp3_32k_loses_high_frequencies():
    sr = 44100
    x = (0.1 * np.random.default_rng(3).standard_normal(2 * sr)).astype(np.float32)  # white noise
    y32 = degrade(x, sr, parse_degradations("mp3:32k"))
    y128 = degrade(x, sr, parse_degradations("mp3:128k"))
    lo_band = _band_db(x, sr, 500, 4000)
    assert _band_db(y32, sr, 500, 4000) == pytest.approx(lo_band, abs=2)
    assert _band_db(y32, sr, 11000, 16000) < _band_db(x, sr, 11000, 16000) - 30
    assert _band_db(y128, sr, 11000, 16000) == pytest.approx(_band_db(x, sr, 11000, 16000), abs=3)


def test_mp3_at_other_rates():
    for sr, kbps in ((16000, 320), (48000, 8), (20000, 64)):
        x = synth_track(1, duration=1.5, sr=sr)
        y = degrade(x, sr, [Degradation("mp3", kbps)])
        assert len(y) == len(x) and np.all(np.isfinite(y))
        assert abs(_lag(y, x, max_lag=sr // 10)) < 0.002 * sr


def test_phone_band_limits(music):
    rng = np.random.default_rng(5)
    x = (0.2 * rng.standard_normal(4 * SR)).astype(np.float32)
    y = degrade(x, SR, parse_degradations("phone"), rng=rng)
    assert len(y) == len(x)

    def rel(a, lo, hi):  # band energy relative to the 500–3000 Hz band
        return _band_db(a, SR, lo, hi) - _band_db(a, SR, 500, 3000)

    assert rel(y, 20, 200) < rel(x, 20, 200) - 20
    assert rel(y, 4000, 11000) < rel(x, 4000, 11000) - 20
    # on music too: the out-of-band share collapses
    ym = degrade(music, SR, parse_degradations("phone"), rng=np.random.default_rng(0))
    assert rel(ym, 20, 200) < rel(music, 20, 200) - 15
    assert rel(ym, 4000, 11000) < rel(music, 4000, 11000) - 15


def test_speed_changes_pitch_and_length():
    x = _tone(440.0, 10.0)
    y = degrade(x, SR, parse_degradations("speed:1.02"))
    assert len(y) / SR == pytest.approx(10.0 / 1.02, abs=0.01)
    assert _pitch(y, SR) == pytest.approx(448.8, abs=0.5)
    slow = degrade(x, SR, parse_degradations("speed:0.95"))
    assert len(slow) / SR == pytest.approx(10.0 / 0.95, abs=0.01)
    assert _pitch(slow, SR) == pytest.approx(418.0, abs=0.5)


def test_tempo_keeps_pitch():
    x = _tone(440.0, 10.0)
    y = degrade(x, SR, parse_degradations("tempo:1.05"))
    assert len(y) / SR == pytest.approx(10.0 / 1.05, abs=0.05)  # ≈ 9.52 s
    assert _pitch(y, SR) == pytest.approx(440.0, abs=1.0)
    slow = degrade(x, SR, parse_degradations("tempo:0.9"))
    assert len(slow) / SR == pytest.approx(10.0 / 0.9, abs=0.05)
    assert _pitch(slow, SR) == pytest.approx(440.0, abs=1.0)


def test_gain_and_no_clipping():
    x = _tone(440.0, 1.0, amp=0.5)
    quieter = degrade(x, SR, parse_degradations("gain:-6db"))
    assert np.max(np.abs(quieter)) == pytest.approx(0.5 * 10 ** (-6 / 20), rel=1e-3)
    louder = degrade(x, SR, parse_degradations("gain:+20db"))
    assert np.max(np.abs(louder)) <= 1.0
    assert np.corrcoef(louder, x)[0, 1] > 0.9999  # scaled down, not clipped


def test_reverb_and_gsm(music):
    x = music[: 4 * SR]
    for spec in ("reverb", "gsm"):
        y = degrade(x, SR, parse_degradations(spec))
        assert len(y) == len(x) and y.dtype == np.float32
        assert np.max(np.abs(y)) <= 1.0 and np.all(np.isfinite(y))
        assert abs(_lag(y, x, max_lag=SR // 10)) < 0.002 * SR
    g = degrade(x, SR, parse_degradations("gsm"))
    assert _band_db(g, SR, 4500, 11000) < _band_db(x, SR, 4500, 11000) - 20  # 8 kHz codec


def test_chain_deterministic_and_sane(music):
    x = music[: 4 * SR]
    steps = parse_degradations(ALL)
    a = degrade(x, SR, steps, rng=np.random.default_rng(42))
    b = degrade(x, SR, steps, rng=np.random.default_rng(42))
    c = degrade(x, SR, steps, rng=np.random.default_rng(43))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and np.all(np.isfinite(a)) and np.max(np.abs(a)) <= 1.0
    assert len(a) / SR == pytest.approx(4.0 / 1.02 / 1.05, abs=0.05)
    assert np.array_equal(degrade(x, SR, [], rng=np.random.default_rng(0)), x)
    assert np.array_equal(x, music[: 4 * SR])  # input untouched


def test_rejects_non_mono():
    with pytest.raises(ValueError):
        degrade(np.zeros((2, 100), np.float32), SR, [])


def test_pitch_shifts_a_semitone_and_keeps_length():
    x = _tone(440.0, 2.0)
    y = degrade(x, SR, parse_degradations("pitch:+1"))
    assert len(y) == len(x)
    assert _pitch(y, SR) == pytest.approx(440.0 * 2 ** (1 / 12), rel=0.005)
    assert steps_label(parse_degradations("pitch:-0.5")) == "pitch-0.5"
    assert parse_degradations("pitch-0.5") == parse_degradations("pitch:-0.5")
