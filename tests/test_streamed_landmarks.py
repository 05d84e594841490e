"""Landmarks paired chunk by chunk, and streamed while a file decodes, equal one pass over all the peaks.

The reference below is the one-pass pairing tuneseek used before chunking (one 2-D array of
``n_peaks x lookahead`` for the whole track): the chunked and streamed code must give the same
bytes, whatever the chunk size and wherever a chunk boundary falls.
"""

import numpy as np
import pytest
import soundfile as sf

from tuneseek import audio
from tuneseek.fingerprint import hashes
from tuneseek.fingerprint.extract import RESAMPLE_QUALITY, fingerprint_file
from tuneseek.fingerprint.hashes import (
    LandmarkStream,
    Pairs,
    landmarks,
    pair_peaks,
    quantise,
)
from tuneseek.fingerprint.params import DEFAULT as P
from tuneseek.fingerprint.peaks import Peaks, PeakStream
from tuneseek.synth import synth_catalog

SR = 22050


def one_pass_pairs(peaks: Peaks) -> Pairs:
    """The pairing as it was before chunking: every anchor at once."""
    n = len(peaks)
    t, f = peaks.t, peaks.f
    j = np.arange(n, dtype=np.int32)[:, None] + np.arange(1, P.lookahead + 1, dtype=np.int32)[None, :]
    inside = j < n
    j = np.minimum(j, n - 1)
    dt = t[j] - t[:, None]
    df = f[j] - f[:, None]
    ok = inside & (dt >= 1) & (dt <= P.dt_max) & (np.abs(df) < P.df_max)
    ok &= np.cumsum(ok, axis=1, dtype=np.int32) <= P.fanout
    a, b = np.nonzero(ok)
    return Pairs(*(x.astype(np.float64) for x in (t[a], f[a], f[j[a, b]], dt[a, b])))


def streamed_peaks(path) -> Peaks:
    """The file's peaks as fingerprint_file finds them, all kept."""
    stream = PeakStream(P)
    parts = [stream.feed(chunk) for chunk in audio.stream(path, P.sr, quality=RESAMPLE_QUALITY)]
    return Peaks.concatenate([*parts, stream.finish()])


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """About 8 minutes of synthetic songs end to end: more than two default pairing chunks of peaks."""
    path = tmp_path_factory.mktemp("long") / "long.flac"
    songs = synth_catalog(4, duration=120.0, sr=SR, seed=21)
    sf.write(path, np.concatenate([s.audio for s in songs]), SR)
    return path


@pytest.fixture(scope="module")
def peaks(long_file):
    return streamed_peaks(long_file)


def test_the_file_crosses_several_default_chunks(peaks):
    assert len(peaks) > 2 * hashes.PAIR_CHUNK


@pytest.mark.parametrize("chunk", [None, 1, 39, 40, 41, 1000])
def test_chunked_pairs_and_landmarks_equal_one_pass(peaks, chunk, monkeypatch):
    if chunk is not None:
        monkeypatch.setattr(hashes, "PAIR_CHUNK", chunk)
    reference = one_pass_pairs(peaks)
    got = pair_peaks(peaks, P.fanout, P.dt_max, P.df_max, P.lookahead)
    for name in ("t1", "f1", "f2", "dt"):
        np.testing.assert_array_equal(getattr(got, name), getattr(reference, name))
    want_h, want_t = quantise(reference)
    h, t = landmarks(peaks)
    assert h.dtype == want_h.dtype and t.dtype == want_t.dtype
    assert h.tobytes() == want_h.tobytes() and t.tobytes() == want_t.tobytes()


@pytest.mark.parametrize("piece", [1, 7, 40, 3001])
def test_landmark_stream_equals_one_pass_whatever_the_pieces(peaks, piece, monkeypatch):
    monkeypatch.setattr(hashes, "PAIR_CHUNK", 997)
    stream = LandmarkStream(P)
    n = min(len(peaks), 20 * piece + 5000)  # enough pieces to cross chunk and lookahead boundaries
    part = Peaks(peaks.t[:n], peaks.f[:n], peaks.strength[:n], 0, 0)
    want_h, want_t = quantise(one_pass_pairs(part))
    out = [
        stream.feed(Peaks(part.t[i : i + piece], part.f[i : i + piece], part.strength[i : i + piece], 0, 0))
        for i in range(0, n, piece)
    ]
    out.append(stream.finish())
    h = np.concatenate([x for x, _ in out])
    t = np.concatenate([x for _, x in out])
    assert h.tobytes() == want_h.tobytes()
    assert t.tobytes() == want_t.astype(np.uint32).tobytes()


def test_a_streamed_file_has_the_landmarks_of_its_whole_peaks(long_file, peaks):
    want_h, want_t = quantise(one_pass_pairs(peaks))
    fp = fingerprint_file(str(long_file))
    assert fp.hashes.dtype == np.uint32 and fp.frames.dtype == np.uint32
    assert fp.hashes.tobytes() == want_h.tobytes()
    assert fp.frames.tobytes() == want_t.astype(np.uint32).tobytes()
    assert fp.n_frames == peaks.frames


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_a_handful_of_peaks(n):
    t = np.arange(n, dtype=np.int32) * 3
    f = np.full(n, 40, np.int32)
    few = Peaks(t, f, np.ones(n, np.float32), 10, 10)
    want_h, want_t = quantise(one_pass_pairs(few)) if n >= 2 else (np.zeros(0, np.uint32), np.zeros(0, np.int64))
    h, frames = landmarks(few)
    assert h.tobytes() == want_h.tobytes() and frames.tobytes() == want_t.tobytes()
    stream = LandmarkStream(P)
    out = [stream.feed(few), stream.finish()]
    assert np.concatenate([x for x, _ in out]).tobytes() == want_h.tobytes()
