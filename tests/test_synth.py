import time

import numpy as np
import pytest
from scipy import signal

from tuneseek.errors import UsageError
from tuneseek.synth import TIMBRES, SynthTrack, synth_catalog, synth_track

SR = 22050


@pytest.fixture(scope="module")
def tracks() -> dict[int, np.ndarray]:
    return {s: synth_track(s, duration=30.0, sr=SR) for s in (0, 1, 2)}


def test_deterministic(tracks):
    again = synth_track(1, duration=30.0, sr=SR)
    assert np.array_equal(tracks[1], again)


def test_different_seeds_differ(tracks):
    a, b = tracks[0], tracks[1]
    assert not np.array_equal(a, b)
    corr = np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b))
    assert abs(corr) < 0.2


@pytest.mark.parametrize("duration,sr", [(30.0, 22050), (2.5, 16000), (0.3, 44100)])
def test_length_dtype_range(duration, sr):
    a = synth_track(7, duration=duration, sr=sr)
    assert a.dtype == np.float32
    assert a.ndim == 1 and len(a) == round(duration * sr)
    assert np.all(np.isfinite(a))
    assert np.max(np.abs(a)) == pytest.approx(0.9, abs=1e-3)
    # not a near-silent or clipped mess: plenty of signal everywhere
    assert np.sqrt(np.mean(a.astype(np.float64) ** 2)) > 0.05


def test_bad_arguments():
    with pytest.raises(UsageError):
        synth_track(0, duration=0.0)
    with pytest.raises(UsageError):
        synth_track(0, duration=1.0, sr=100)
    with pytest.raises(UsageError):
        synth_catalog(-1)


def test_fast_enough():
    synth_track(11, duration=30.0, sr=SR)  # warm up
    t0 = time.perf_counter()
    synth_track(12, duration=30.0, sr=SR)
    assert time.perf_counter() - t0 < 1.0  # ~0.15 s on a laptop core; leave room for busy CI


def test_catalog():
    cat = synth_catalog(4, duration=3.0, seed=5)
    assert len(cat) == 4
    assert all(isinstance(t, SynthTrack) for t in cat)
    assert len({t.name for t in cat}) == 4 and len({t.seed for t in cat}) == 4
    for i, t in enumerate(cat):
        assert t.name.startswith(f"synth-{i:02d}-")
        assert t.name == t.name.lower() and " " not in t.name
        assert t.name.endswith(f"-{int(round(t.tempo))}bpm")
        assert t.key.split()[1] in ("major", "minor") and t.key.split()[1] in t.name
        assert 70 <= t.tempo <= 160
        assert t.timbre in TIMBRES
        assert t.sr == SR and len(t.audio) == 3 * SR
        assert np.array_equal(t.audio, synth_track(t.seed, duration=3.0, sr=SR))
    # same arguments, same catalogue; another catalogue seed, other tracks
    again = synth_catalog(4, duration=3.0, seed=5)
    assert [t.name for t in again] == [t.name for t in cat]
    other = synth_catalog(4, duration=3.0, seed=6)
    assert {t.seed for t in other}.isdisjoint({t.seed for t in cat})


def test_catalog_varies_keys_tempi_timbres():
    cat = synth_catalog(12, duration=0.5)
    assert len({t.key for t in cat}) >= 5
    assert len({t.tempo for t in cat}) >= 8
    assert len({t.timbre for t in cat}) >= 3


# ------------------------------------------------------------------- non-repetition


def _ncc(track: np.ndarray, excerpt: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of ``excerpt`` at every offset of ``track``."""
    track = track.astype(np.float64)
    ex = excerpt.astype(np.float64)
    num = signal.fftconvolve(track, ex[::-1], mode="valid")
    c = np.concatenate([[0.0], np.cumsum(track**2)])
    energy = c[len(ex) :] - c[: -len(ex)]
    return num / np.sqrt(np.maximum(energy, 1e-12) * np.sum(ex**2))


def _band_energies(x: np.ndarray, sr: int, hop: int = 512) -> np.ndarray:
    """(32 log-spaced bands × frames) log energies, mean removed per band."""
    f, _, z = signal.stft(x, sr, nperseg=2 * hop, noverlap=hop)
    p = np.abs(z) ** 2
    edges = np.geomspace(60, 8000, 33)
    b = np.stack([p[(f >= lo) & (f < hi)].sum(0) for lo, hi in zip(edges[:-1], edges[1:])])
    b = np.log(b + 1e-8)
    return b - b.mean(axis=1, keepdims=True)


def _band_ncc(bt: np.ndarray, be: np.ndarray) -> np.ndarray:
    num = sum(signal.fftconvolve(bt[i], be[i][::-1], mode="valid") for i in range(len(bt)))
    c = np.concatenate([[0.0], np.cumsum((bt**2).sum(0))])
    L = be.shape[1]
    return num / np.sqrt((c[L:] - c[:-L]) * np.sum(be**2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_repetition_inside_a_track(tracks, seed):
    a = tracks[seed]
    hop = 512
    bands = _band_energies(a, SR, hop)
    for start_s in (4.0, 17.3):
        st = int(start_s * SR)
        excerpt = a[st : st + 3 * SR]
        # raw waveform
        r = _ncc(a, excerpt)
        assert int(np.argmax(r)) == st and r[st] == pytest.approx(1.0, abs=1e-6)
        off = np.ones(len(r), bool)
        off[max(0, st - SR // 2) : st + SR // 2] = False
        assert r[off].max() < 0.6, f"seed {seed} @ {start_s}s: waveform repeats ({r[off].max():.2f})"
        # spectral envelope (what a fingerprinter sees, roughly)
        fr = st // hop
        rb = _band_ncc(bands, bands[:, fr : fr + (3 * SR) // hop])
        assert int(np.argmax(rb)) == fr
        offb = np.ones(len(rb), bool)
        offb[max(0, fr - SR // (2 * hop)) : fr + SR // (2 * hop)] = False
        assert rb[offb].max() < 0.8, f"seed {seed} @ {start_s}s: spectrum repeats ({rb[offb].max():.2f})"


def test_no_shared_excerpts_between_tracks(tracks):
    a, b, c = tracks[0], tracks[1], tracks[2]
    for src, other in ((a, b), (b, c), (c, a)):
        excerpt = src[10 * SR : 13 * SR]
        assert _ncc(other, excerpt).max() < 0.3
