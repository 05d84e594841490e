"""tuneseek.descriptors: rhythm and timbre statistics of one window, on synthetic audio."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
from scipy.signal import butter, sosfilt

from tuneseek.descriptors import GROUPS, NAMES, SAMPLE_RATE, VERSION, describe
from tuneseek.errors import UsageError
from tuneseek.features import mel_spectrogram

SR = SAMPLE_RATE
INDEX = {name: i for i, name in enumerate(NAMES)}


def value(vector: np.ndarray, name: str) -> float:
    return float(vector[INDEX[name]])


def click_track(bpm: float, accents=(1.0,), seconds: float = 16.0, seed: int = 0) -> np.ndarray:
    """Noise clicks on every beat, the k-th scaled by ``accents[k % len(accents)]``, over faint noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.003, int(seconds * SR))
    burst = rng.normal(0, 0.5, 400) * np.exp(-np.arange(400) / 60)
    for k, t in enumerate(np.arange(0.1, seconds - 0.1, 60 / bpm)):
        start = int(t * SR)
        x[start : start + 400] += accents[k % len(accents)] * burst
    return x.astype(np.float32)


def test_output_is_a_finite_float32_vector_named_by_names():
    out = describe(click_track(120))
    assert VERSION.startswith("descriptors-")
    assert out.dtype == np.float32 and out.shape == (len(NAMES),)
    assert np.isfinite(out).all()


def test_names_and_groups_agree():
    assert len(set(NAMES)) == len(NAMES)
    assert all(name.startswith(("rhythm.", "timbre.")) for name in NAMES)
    for group in ("rhythm", "timbre"):
        assert [NAMES[i] for i in GROUPS[group]] == [n for n in NAMES if n.startswith(group + ".")]
    assert sorted(np.concatenate([GROUPS["rhythm"], GROUPS["timbre"]]).tolist()) == list(range(len(NAMES)))
    mfcc = [NAMES[i] for i in GROUPS["mfcc"]]
    assert set(GROUPS["mfcc"]) <= set(GROUPS["timbre"])
    assert mfcc == [f"timbre.mfcc{i:02d}_mean" for i in range(20)] + [f"timbre.mfcc{i:02d}_std" for i in range(20)]
    assert sum(n.startswith("rhythm.acf_lag_") for n in NAMES) >= 30


def test_mfcc_block_is_the_mean_and_std_of_librosa_style_mfccs():
    rng = np.random.default_rng(5)
    t = np.arange(4 * SR) / SR
    x = (0.3 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 0.7 * t)) + rng.normal(0, 0.02, len(t))).astype(
        np.float32
    )
    # independently: dB mel power floored 80 dB below its peak, orthonormal DCT-II, first 20
    log_mel = 10 * np.log10(np.maximum(mel_spectrogram(x, sr=SR, n_fft=512, hop=160, n_mels=64), 1e-10))
    log_mel = np.maximum(log_mel, log_mel.max() - 80)
    mfcc = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=1)[:, :20]
    expected = np.concatenate([mfcc.mean(0), mfcc.std(0)])
    np.testing.assert_allclose(describe(x)[GROUPS["mfcc"]], expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("bpm", [90, 120, 150])
def test_tempo_of_a_click_track_is_found_without_octave_errors(bpm):
    out = describe(click_track(bpm))
    assert value(out, "rhythm.tempo_bpm") == pytest.approx(bpm, rel=0.04)
    assert value(out, "rhythm.tempo_log2_bpm") == pytest.approx(np.log2(bpm), abs=0.06)
    assert value(out, "rhythm.pulse_clarity") > 0.8
    assert value(out, "rhythm.onset_rate_hz") == pytest.approx(bpm / 60, rel=0.1)


@pytest.mark.parametrize("bpm", [90, 120, 140])
def test_waltz_and_four_four_accents_are_told_apart_by_the_metre_features(bpm):
    waltz = describe(click_track(bpm, accents=(1.0, 0.4, 0.4)))
    four = describe(click_track(bpm, accents=(1.0, 0.4, 0.7, 0.4)))
    for out in (waltz, four):
        assert value(out, "rhythm.tempo_bpm") == pytest.approx(bpm, rel=0.04)  # the beat, not the bar
    assert value(waltz, "rhythm.metre_triple_minus_duple") > 0.01
    assert value(four, "rhythm.metre_triple_minus_duple") < -0.01
    assert value(waltz, "rhythm.metre_acf3_minus_acf1") > value(four, "rhythm.metre_acf3_minus_acf1")
    assert value(four, "rhythm.metre_acf4_minus_acf1") > value(waltz, "rhythm.metre_acf4_minus_acf1")
    assert value(four, "rhythm.metre_acf2_minus_acf1") > value(waltz, "rhythm.metre_acf2_minus_acf1")


def test_band_envelopes_separate_the_kick_pattern_from_the_hats():
    """Kicks every 1 s and hats every 0.25 s: each band's ACF shows its own period."""
    rng = np.random.default_rng(2)
    seconds = 16
    x = rng.normal(0, 0.002, seconds * SR)
    n = np.arange(2400)
    kick = 0.8 * np.sin(2 * np.pi * 60 * n / SR) * np.exp(-n / 1200)
    hat = sosfilt(butter(4, 5000, "highpass", fs=SR, output="sos"), rng.normal(0, 0.3, 800)) * np.exp(
        -np.arange(800) / 150
    )
    for t in np.arange(0.05, seconds - 0.2, 0.25):
        start = round(t * SR)
        x[start : start + 800] += hat
        if round((t - 0.05) / 0.25) % 4 == 0:
            x[start : start + 2400] += kick
    out = describe(x.astype(np.float32))

    def band_acf(band: str, lo: float, hi: float) -> float:
        lags = [n for n in NAMES if n.startswith(f"rhythm.{band}_acf_lag_")]
        return max(value(out, n) for n in lags if lo <= float(n.rsplit("_", 1)[1][:-1]) <= hi)

    assert band_acf("high", 0.2, 0.3) > 0.6  # hats repeat every 0.25 s
    assert band_acf("low", 0.9, 1.1) > 0.6  # the kick every 1 s
    assert band_acf("low", 0.2, 0.6) < 0.2  # ... and not at the hats' period
    assert value(out, "rhythm.low_flux_share") > 0.1 and value(out, "rhythm.high_flux_share") > 0.1


def test_rhythm_features_do_not_depend_on_loudness():
    loud = click_track(120, accents=(1.0, 0.4, 0.7, 0.4))
    loud_out, quiet_out = describe(loud), describe(loud * 10 ** (-20 / 20))
    rhythm = GROUPS["rhythm"]
    np.testing.assert_allclose(quiet_out[rhythm], loud_out[rhythm], atol=1e-3, rtol=1e-4)
    assert value(quiet_out, "timbre.rms_db_mean") == pytest.approx(value(loud_out, "timbre.rms_db_mean") - 20, abs=0.1)


def test_tone_and_noise_order_flatness_centroid_and_zero_crossings():
    t = np.arange(5 * SR) / SR
    tone = describe((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    noise = describe(np.random.default_rng(1).normal(0, 0.2, len(t)).astype(np.float32))
    assert value(tone, "timbre.flatness_db_mean") < value(noise, "timbre.flatness_db_mean") - 20
    assert value(noise, "timbre.flatness_db_mean") > -10  # white noise is nearly flat
    assert value(tone, "timbre.centroid_log2hz_mean") == pytest.approx(np.log2(440), abs=0.3)
    assert value(noise, "timbre.centroid_log2hz_mean") == pytest.approx(np.log2(4000), abs=0.2)
    assert value(tone, "timbre.rolloff85_log2hz_mean") < value(noise, "timbre.rolloff85_log2hz_mean") - 3
    assert value(tone, "timbre.zcr_mean") == pytest.approx(2 * 440 / SR, rel=0.05)
    assert value(noise, "timbre.zcr_mean") == pytest.approx(0.5, abs=0.05)
    assert value(tone, "timbre.rms_db_mean") == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.3)


@pytest.mark.parametrize("seconds", [1.0, 30.0])
def test_silence_gives_finite_values_and_no_pulse(seconds):
    out = describe(np.zeros(int(seconds * SR), np.float32))
    assert np.isfinite(out).all()
    assert value(out, "rhythm.pulse_clarity") == 0 and value(out, "rhythm.onset_rate_hz") == 0


def test_the_shortest_window_gives_finite_values():
    assert np.isfinite(describe(click_track(120, seconds=1.0))).all()


@pytest.mark.parametrize(
    ("audio", "sample_rate", "message"),
    [
        (np.zeros(8000, np.float32), SR, "0.500 s (8000 samples) is shorter than the 1 s"),
        (np.full(SR, np.nan, np.float32), SR, "NaN or infinite"),
        (np.zeros((2, SR), np.float32), SR, "got shape (2, 16000)"),
        (np.zeros(SR, np.float32), 22050, "got 22050 Hz"),
    ],
    ids=["too-short", "nan", "stereo", "wrong-rate"],
)
def test_unusable_audio_is_refused_with_a_readable_reason(audio, sample_rate, message):
    with pytest.raises(UsageError) as caught:
        describe(audio, sample_rate=sample_rate)
    assert message in str(caught.value) and "\n" not in str(caught.value)
