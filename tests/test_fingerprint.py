"""The landmark fingerprint engine, on synthetic music and without a library."""

import numpy as np
import pytest
import soxr

from tuneseek.fingerprint.hashes import HASH_SPACE, landmarks, pair_peaks, quantise
from tuneseek.fingerprint.matcher import best_offsets
from tuneseek.fingerprint.params import DEFAULT as P
from tuneseek.fingerprint.peaks import PeakStream, find_peaks
from tuneseek.synth import synth_track


@pytest.fixture(scope="module")
def song():
    return soxr.resample(synth_track(7, duration=40.0), 22050, P.sr).astype(np.float32)


def test_streamed_peaks_equal_whole_signal_peaks(song):
    whole = find_peaks(song)
    stream = PeakStream(block_frames=100)
    parts = [stream.feed(song[i : i + 3001]) for i in range(0, len(song), 3001)]
    parts.append(stream.finish())
    t = np.concatenate([p.t for p in parts])
    f = np.concatenate([p.f for p in parts])
    assert sum(p.frames for p in parts) == whole.frames
    np.testing.assert_array_equal(t, whole.t)
    np.testing.assert_array_equal(f, whole.f)


def test_peak_density_is_bounded_and_in_band(song):
    peaks = find_peaks(song)
    per_second = len(peaks) / (len(song) / P.sr)
    assert 10 < per_second <= P.peaks_per_frame * P.frames_per_second
    assert peaks.f.min() >= P.min_bin and peaks.f.max() < P.max_bin
    assert np.all(np.diff(peaks.t) >= 0)


def test_silence_has_no_peaks():
    peaks = find_peaks(np.zeros(P.sr * 5, np.float32))
    assert len(peaks) == 0 and peaks.loud_frames == 0


def test_hashes_fit_their_bits_and_pairs_respect_the_zone(song):
    peaks = find_peaks(song)
    pairs = pair_peaks(peaks, P.fanout, P.dt_max, P.df_max, P.lookahead)
    assert np.all((pairs.dt >= 1) & (pairs.dt <= P.dt_max))
    assert np.all(np.abs(pairs.f2 - pairs.f1) < P.df_max)
    counts = np.bincount(np.searchsorted(peaks.t, pairs.t1), minlength=len(peaks))
    assert counts.max() <= P.fanout * P.peaks_per_frame
    h, t = landmarks(peaks)
    assert h.dtype == np.uint32 and h.max() < HASH_SPACE and len(h) == len(t)


def test_clip_hashes_vote_for_the_true_offset(song):
    h, t = landmarks(find_peaks(song))
    start_frame = 300
    clip = song[start_frame * P.hop : start_frame * P.hop + 8 * P.sr]
    ch, ct = landmarks(find_peaks(clip))
    # every clip hash against every track hash with the same value: the offsets pile up
    order = np.argsort(h)
    hs, ts = h[order], t[order]
    lo, hi = np.searchsorted(hs, ch, "left"), np.searchsorted(hs, ch, "right")
    offsets = np.concatenate([ts[a:b] - q for a, b, q in zip(lo, hi, ct)])
    best, score = best_offsets(offsets, tolerance=1, top=2)
    assert best[0] == pytest.approx(start_frame, abs=1)
    assert score[0] > 5 * score[1]


def test_speed_hypothesis_maps_clip_coordinates_back():
    from tuneseek.fingerprint.hashes import Pairs

    pairs = Pairs(np.array([100.0]), np.array([102.0]), np.array([122.4]), np.array([10.0]))
    h_plain, _ = quantise(Pairs(np.array([102.0]), np.array([100.0]), np.array([120.0]), np.array([10.2])))
    h_mapped, t = quantise(pairs, time_scale=1.02, freq_scale=1.02)
    assert h_mapped[0] == h_plain[0]
    assert t[0] == 102


def test_best_offsets_counts_hits_within_tolerance_and_separates_piles():
    offs = np.array([10, 11, 11, 12, 50, 50, 90])
    best, score = best_offsets(offs, tolerance=1, top=3)
    assert best[0] == 11 and score[0] == 4
    assert set(best[1:]) == {50, 90}


def test_box_mean_is_scipys_uniform_filter_with_nearest_edges():
    from scipy.ndimage import uniform_filter

    from tuneseek.fingerprint.peaks import box_mean

    rng = np.random.default_rng(0)
    for shape in [(300, 257), (5, 40), (1, 257)]:
        a = (rng.standard_normal(shape) * 3).astype(np.float32)
        np.testing.assert_allclose(box_mean(a, 15, 31), uniform_filter(a, (15, 31), mode="nearest"), atol=1e-6)


def test_a_short_clip_has_the_same_peaks_whichever_fft_computes_its_spectrum(song, monkeypatch):
    import tuneseek.features

    clip = song[: 10 * P.sr]
    numpy_fft = find_peaks(clip)
    monkeypatch.setattr(tuneseek.features, "SCIPY_FFT_FRAMES", 0)
    scipy_fft = find_peaks(clip)
    np.testing.assert_array_equal(numpy_fft.t, scipy_fft.t)
    np.testing.assert_array_equal(numpy_fft.f, scipy_fft.f)


def test_the_same_evidence_is_less_sure_in_a_larger_library_and_in_the_wide_search():
    from tuneseek.fingerprint.query import CALIBRATION_LIBRARY_HOURS, Pile, confidence

    pile = Pile(track=0, offset=0.0, score=16, time_scale=1.0, freq_scale=1.0, first=0.0, last=150.0, covered=5)
    base = confidence(pile, 0, P.frames_per_second, 10.0, library_hours=CALIBRATION_LIBRARY_HOURS)
    assert confidence(pile, 0, P.frames_per_second, 10.0, library_hours=0.5) == base  # a small library earns no bonus
    assert confidence(pile, 0, P.frames_per_second, 10.0, library_hours=10 * CALIBRATION_LIBRARY_HOURS) < base
    assert confidence(pile, 1, P.frames_per_second, 10.0, library_hours=CALIBRATION_LIBRARY_HOURS) < base
