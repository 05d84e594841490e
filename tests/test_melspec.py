"""tuneseek.features: librosa-identical mel spectrograms and musicnn's log-mel input, without librosa."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tuneseek.features import mel_filterbank, mel_spectrogram, musicnn_logmel, power_spectrogram

FIXTURE = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "musicnn-reference.npz"


def reference():
    if not FIXTURE.exists():
        pytest.skip(f"musicnn reference fixture not found at {FIXTURE}")
    return np.load(FIXTURE)


def test_logmel_reproduces_the_reference_patches():
    """decode -> 16 kHz -> mel -> float16 -> log10(10000 x + 1) gives musicnn's network input."""
    ref = reference()
    patches = ref["logmel_patches"]
    ours = musicnn_logmel(ref["audio_16k"])
    assert ours.dtype == np.float32 and ours.shape == (1 + 192000 // 256, 96)
    got = ours[: patches.shape[0] * 187].reshape(patches.shape)
    diff = np.abs(got - patches)
    # Within float16 rounding: one float16 step of the mel power moves the log by at most
    # log10(e) * 2**-11 (normal range) or 10000 * 2**-24 / ln 10 (subnormal range) < 3e-4.
    assert diff.max() <= 3e-4
    assert (diff == 0).mean() >= 0.99  # and almost every value is bit-identical (all are, today)


def test_mel_filterbank_matches_librosa_values():
    fb = mel_filterbank(16000, n_fft=512, n_mels=96)
    assert fb.shape == (96, 257) and fb.dtype == np.float32 and not fb.flags.writeable
    assert (fb >= 0).all()
    # Numbers from librosa 0.11: librosa.filters.mel(sr=16000, n_fft=512, n_mels=96)
    assert fb.astype(np.float64).sum() == pytest.approx(3.0719138523072615, rel=1e-6)
    np.testing.assert_allclose(fb[0, :4], [0.0, 0.03199922293424606, 0.0, 0.0], rtol=1e-6)
    assert fb[47].max() == pytest.approx(0.016686562448740005, rel=1e-6)
    assert fb[95].max() == pytest.approx(0.0039845602586865425, rel=1e-6)
    assert fb.argmax(1)[:12].tolist() == list(range(1, 13))  # linear below 1 kHz: one bin per band
    assert fb.argmax(1)[-5:].tolist() == [218, 225, 233, 240, 248]


def test_power_spectrogram_is_centred_and_blockwise_consistent():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.3, 5000).astype(np.float32)
    spec = power_spectrogram(x, n_fft=512, hop=256)
    assert spec.shape == (1 + 5000 // 256, 257)
    # frame 5 covers samples [5*256 - 256, 5*256 + 256), a periodic-Hann-windowed DFT
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    direct = np.abs(np.fft.rfft(x[1024:1536].astype(np.float64) * window)) ** 2
    np.testing.assert_allclose(spec[5], direct, rtol=1e-4, atol=1e-6)
    # the first frame is half zeros (centre padding with zeros, librosa's pad_mode="constant")
    first = np.abs(np.fft.rfft(np.concatenate([np.zeros(256), x[:256]]) * window)) ** 2
    np.testing.assert_allclose(spec[0], first, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(power_spectrogram(x, n_fft=512, hop=256, block_frames=3), spec)


def test_tone_lands_in_its_band():
    t = np.arange(16000) / 16000
    mel = mel_spectrogram((0.5 * np.sin(2 * np.pi * 500 * t)).astype(np.float32))
    assert mel.shape == (63, 96)
    # 96 bands from 0 to 45.25 Slaney mels: 31.1 Hz apart below 1 kHz; band i peaks at (i+1)*31.1 Hz
    assert int(mel[30].argmax()) == 15


def test_logmel_of_silence_and_of_overload_is_finite():
    assert not musicnn_logmel(np.zeros(4000, np.float32)).any()
    loud = (1e4 * np.sign(np.sin(np.arange(8000) / 3))).astype(np.float32)  # far beyond float16's range
    out = musicnn_logmel(loud)
    assert np.isfinite(out).all() and out.max() <= np.log10(1e4 * 65504 + 1) + 1e-6
