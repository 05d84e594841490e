"""tuneseek.audio: decoding, resampling, streaming, writing, and every way a file can be bad."""

from __future__ import annotations

import builtins
import os
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from tuneseek import audio
from tuneseek.audio import (
    SUPPORTED_EXTENSIONS,
    AudioInfo,
    find_audio_files,
    is_audio_path,
    load,
    probe,
    stream,
    write,
)
from tuneseek.errors import AudioError, UsageError

SR = 44100


def tone(seconds: float, sr: int = SR, freq: float = 440.0, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(seed)
    return (0.4 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(len(t))).astype(np.float32)


def stereo(seconds: float, sr: int = SR) -> np.ndarray:
    left = tone(seconds, sr, 440.0)
    right = tone(seconds, sr, 660.0, seed=1)
    return np.stack([left, right], axis=1)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A 3 s stereo tone (440 Hz left, 660 Hz right) in every writable format."""
    d = tmp_path_factory.mktemp("formats")
    x = stereo(3.0)
    out = {}
    for ext in (".wav", ".flac", ".ogg", ".aiff", ".mp3", ".m4a", ".opus"):
        p = d / f"tone{ext}"
        write(p, x, SR)
        out[ext] = p
    return out


# ------------------------------------------------------------------ paths


def test_extensions_and_is_audio_path():
    assert {
        ".wav",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".m4a",
        ".aac",
        ".aif",
        ".aiff",
        ".wma",
        ".mp4",
        ".webm",
        ".mka",
    } == SUPPORTED_EXTENSIONS
    assert all(e.startswith(".") and e == e.lower() for e in SUPPORTED_EXTENSIONS)
    assert is_audio_path("a/b/song.MP3")
    assert is_audio_path(Path("x.flac"))
    assert not is_audio_path("notes.txt")
    assert not is_audio_path("mp3")


def test_find_audio_files(tmp_path):
    for rel in ["b.wav", "a/c.FLAC", "a/z/d.ogg", "a/readme.txt", ".hidden.wav", ".git/e.mp3", "a/.cache/f.mp3"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    got = find_audio_files(tmp_path)
    assert got == sorted(got)
    assert [p.relative_to(tmp_path).as_posix() for p in got] == ["a/c.FLAC", "a/z/d.ogg", "b.wav"]
    assert find_audio_files(tmp_path / "a" / "readme.txt") == [tmp_path / "a" / "readme.txt"]
    with pytest.raises(AudioError, match="no such file or directory"):
        find_audio_files(tmp_path / "missing")


# ------------------------------------------------------------------ probe


def test_probe_formats(files):
    expect = {
        ".wav": "WAV",
        ".flac": "FLAC",
        ".ogg": "ogg",
        ".aiff": "AIFF",
        ".mp3": "mp3",
        ".m4a": "mp4",
        ".opus": "ogg",
    }
    for ext, p in files.items():
        info = probe(p)
        assert isinstance(info, AudioInfo)
        assert info.path == str(p)
        assert info.format == expect[ext], ext
        assert info.channels == 2
        assert info.sample_rate == (48000 if ext == ".opus" else SR)
        assert info.duration == pytest.approx(3.0, abs=0.05), ext


def test_probe_tags(tmp_path):
    p = tmp_path / "tagged.flac"
    with sf.SoundFile(p, "w", samplerate=SR, channels=1, format="FLAC") as f:
        f.title = "Sine Song"
        f.artist = "The Oscillators"
        f.write(tone(1.0))
    info = probe(p)
    assert (info.title, info.artist) == ("Sine Song", "The Oscillators")

    q = tmp_path / "tagged.ogg"  # Vorbis comments sit on the stream in PyAV
    with av.open(str(q), "w", format="ogg") as out:
        out.metadata["TITLE"] = "Ogg Title"
        out.metadata["Artist"] = "Ogg Artist"
        st = out.add_stream("libopus", rate=48000, layout="mono")
        fr = av.AudioFrame.from_ndarray(tone(1.0, 48000)[None, :], format="fltp", layout="mono")
        fr.sample_rate = 48000
        for pkt in [*st.encode(fr), *st.encode(None)]:
            out.mux(pkt)
    info = probe(q)
    assert (info.title, info.artist) == ("Ogg Title", "Ogg Artist")

    plain = tmp_path / "plain.wav"
    sf.write(plain, tone(0.5), SR)
    assert (probe(plain).title, probe(plain).artist) == (None, None)


# ------------------------------------------------------------------ decoding


def test_every_format_decodes_to_the_tone(files):
    for ext, p in files.items():
        y = load(p, 16000)
        assert y.dtype == np.float32 and y.ndim == 1
        assert len(y) / 16000 == pytest.approx(3.0, abs=0.05), ext
        # mono mix of a 440 Hz left and 660 Hz right channel has both, equally strong
        spec = np.abs(np.fft.rfft(y[:32000]))
        freqs = np.fft.rfftfreq(32000, 1 / 16000)
        top2 = sorted(freqs[np.argsort(spec)[-2:]])
        assert top2 == pytest.approx([440.0, 660.0], abs=1.0), ext


def test_stereo_is_mixed_to_mono(tmp_path):
    left = tone(1.0, noise=0.0)
    p = tmp_path / "lr.wav"
    sf.write(p, np.stack([left, np.zeros_like(left)], axis=1), SR, subtype="FLOAT")
    y = load(p, SR)  # native rate: no resampling, exact
    np.testing.assert_allclose(y, 0.5 * left, atol=1e-7)
    p2 = tmp_path / "anti.wav"
    sf.write(p2, np.stack([left, -left], axis=1), SR, subtype="FLOAT")
    assert np.abs(load(p2, SR)).max() < 1e-7


def test_tone_keeps_its_pitch_after_resampling(tmp_path):
    p = tmp_path / "a440.wav"
    sf.write(p, tone(4.0, noise=0.0), SR)
    y = load(p, 8000)
    assert len(y) == 32000
    assert peak_hz(y, 8000) == pytest.approx(440.0, abs=0.5)
    assert np.abs(y).max() == pytest.approx(0.4, abs=0.01)


def test_native_rate_is_not_resampled(tmp_path):
    x = tone(1.0, 16000)
    p = tmp_path / "16k.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load(p, 16000), x)
    np.testing.assert_array_equal(np.concatenate(list(stream(p, 16000, chunk_seconds=0.3))), x)


@pytest.mark.parametrize("ext", [".wav", ".ogg", ".mp3"])
def test_load_window_matches_full_load(files, ext):
    full = load(files[ext], 8000)
    for offset in (0.0, 0.5, 1.3):  # on the 44100/8000 grid: windows line up sample for sample
        w = load(files[ext], 8000, offset=offset, duration=1.0)
        assert len(w) == 8000
        i = int(round(offset * 8000))
        np.testing.assert_allclose(w, full[i : i + 8000], atol=1e-4)
    tail = load(files[ext], 8000, offset=2.5)
    assert len(tail) == pytest.approx(len(full) - 20000, abs=2)
    assert len(load(files[ext], 8000, offset=10.0)) == 0  # past the end: empty
    assert len(load(files[ext], 8000, offset=1.0, duration=0.0)) == 0


def test_load_seeks_in_a_long_file(tmp_path):
    """A window near the end of a long file must not cost a decode of everything before it."""
    import time

    p = tmp_path / "long.ogg"
    sr = 16000  # mono 16 kHz Vorbis: cheap to encode, still decoded by PyAV with seeking
    block = tone(10.0, sr)
    with sf.SoundFile(p, "w", samplerate=sr, channels=1, format="OGG", subtype="VORBIS") as f:
        for _ in range(30):  # 5 minutes
            f.write(block)
    t0 = time.perf_counter()
    full = load(p, 8000)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    w = load(p, 8000, offset=290.0, duration=5.0)
    t_window = time.perf_counter() - t0
    assert len(w) == 40000
    assert t_window < t_full / 5, f"window {t_window:.3f} s vs whole file {t_full:.3f} s: not seeking?"
    np.testing.assert_allclose(w, full[290 * 8000 : 295 * 8000], atol=1e-4)


# ------------------------------------------------------------------ streaming


def test_stream_matches_load(tmp_path):
    p = tmp_path / "s.flac"
    x = stereo(20.0)
    sf.write(p, x, SR)
    chunks = list(stream(p, 8000, chunk_seconds=3.0))
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    assert [len(c) for c in chunks[:-1]] == [24000] * 6 and 0 < len(chunks[-1]) <= 24000
    s = np.concatenate(chunks)
    whole = load(p, 8000)
    np.testing.assert_allclose(s, whole, atol=1e-6)
    # and both equal a one-shot resample of the decoded mono mix, up to tiny differences
    native, sr = sf.read(p, dtype="float32")
    ref = soxr.resample(native.mean(axis=1), sr, 8000, quality="HQ")
    assert len(ref) == len(s)
    np.testing.assert_allclose(s, ref, atol=1e-4)
    lq = np.concatenate(list(stream(p, 8000, quality="LQ")))
    assert len(lq) == len(s) and np.abs(lq - s).max() < 0.05


def test_stream_long_file_is_chunked_and_memory_bounded(tmp_path):
    p = tmp_path / "ten_minutes.wav"
    minutes = 10
    block = (stereo(10.0) * 0.8).astype(np.float32)
    with sf.SoundFile(p, "w", samplerate=SR, channels=2, format="WAV", subtype="PCM_16") as f:
        for _ in range(minutes * 6):
            f.write(block)
    decoded_bytes = minutes * 60 * SR * 2 * 4  # the whole file as float32 stereo: ~212 MB

    tracemalloc.start()
    try:
        total = 0
        n_chunks = 0
        for c in stream(p, 8000, chunk_seconds=30.0):
            total += len(c)
            n_chunks += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n_chunks == minutes * 2
    assert total == pytest.approx(minutes * 60 * 8000, rel=0.01)
    assert peak < decoded_bytes / 20, f"peak {peak / 1e6:.1f} MB"


def test_stream_fails_early_for_a_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        stream(tmp_path / "nope.wav", 8000)  # at the call, before iterating


def test_bad_arguments(files):
    with pytest.raises(UsageError):
        load(files[".wav"], 8000, quality="ultra")
    with pytest.raises(UsageError):
        load(files[".wav"], 0)
    with pytest.raises(UsageError):
        load(files[".wav"], 8000, offset=-1.0)
    with pytest.raises(UsageError):
        stream(files[".wav"], 8000, chunk_seconds=0)


# ------------------------------------------------------------------ writing


def test_write_is_atomic_and_replaces(tmp_path):
    p = tmp_path / "out.wav"
    write(p, tone(1.0), SR)
    write(p, tone(2.0, 22050), 22050)  # overwrite
    assert probe(p).duration == pytest.approx(2.0) and probe(p).sample_rate == 22050
    assert os.listdir(tmp_path) == ["out.wav"]


def test_write_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "keep.flac"
    write(p, tone(1.0), SR)
    before = p.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(audio, "_write_sf", boom)
    with pytest.raises(AudioError, match="cannot write"):
        write(p, tone(2.0), SR)
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.flac"]


def test_write_rejects_what_it_cannot_do(tmp_path):
    with pytest.raises(AudioError, match="cannot write"):
        write(tmp_path / "x.xyz", tone(0.1), SR)
    with pytest.raises(AudioError, match="NaN"):
        write(tmp_path / "x.wav", np.full(100, np.nan, np.float32), SR)
    with pytest.raises(AudioError, match="at most 2"):
        write(tmp_path / "x.mp3", np.zeros((100, 6), np.float32), SR)
    with pytest.raises(AudioError, match="no such directory"):
        write(tmp_path / "nodir" / "x.wav", tone(0.1), SR)


def test_write_odd_rate_to_opus_and_mp3(tmp_path):
    x = tone(1.0, 22000, noise=0.0)  # neither codec supports 22000 Hz: resampled on the way
    for ext in (".opus", ".mp3"):
        p = tmp_path / f"odd{ext}"
        write(p, x, 22000)
        y = load(p, 8000)
        assert len(y) / 8000 == pytest.approx(1.0, abs=0.05)
        assert peak_hz(y, 8000) == pytest.approx(440.0, abs=2.0)


# ------------------------------------------------------------------ errors


def _all_readers(p):
    """Every public entry point that opens a file; each must raise AudioError."""
    yield lambda: probe(p)
    yield lambda: load(p, 8000)
    yield lambda: list(stream(p, 8000))


def _assert_all_raise(p, pattern):
    for call in _all_readers(p):
        with pytest.raises(AudioError, match=pattern) as ei:
            call()
        assert ei.value.path == str(p)
        assert str(ei.value).startswith(str(p) + ": ")


def test_missing_file(tmp_path):
    _assert_all_raise(tmp_path / "gone.wav", "no such file")


def test_directory(tmp_path):
    d = tmp_path / "folder.wav"
    d.mkdir()
    _assert_all_raise(d, "is a directory")


def test_permission_denied_simulated(tmp_path, monkeypatch):
    p = tmp_path / "locked.wav"
    sf.write(p, tone(0.5), SR)
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if os.fspath(file) == str(p):
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    _assert_all_raise(p, "permission denied")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read anything")
def test_permission_denied_real(tmp_path):
    p = tmp_path / "locked.wav"
    sf.write(p, tone(0.5), SR)
    p.chmod(0)
    try:
        _assert_all_raise(p, "permission denied")
    finally:
        p.chmod(0o644)


def test_empty_file(tmp_path):
    for ext in (".wav", ".mp3", ".ogg", ".m4a"):
        p = tmp_path / f"empty{ext}"
        p.write_bytes(b"")
        _assert_all_raise(p, "empty file")


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".aiff", ".wma"])
def test_random_bytes(tmp_path, ext):
    p = tmp_path / f"noise{ext}"
    p.write_bytes(np.random.default_rng(7).bytes(30000))
    for call in _all_readers(p):
        with pytest.raises(AudioError, match=r"not a readable audio file \(.+\)") as ei:
            call()
        assert ei.value.__cause__ is not None  # the decoder's own error is chained


def test_text_file_with_audio_extension(tmp_path):
    for ext in (".wav", ".mp3", ".flac", ".aac"):
        p = tmp_path / f"notes{ext}"
        p.write_text("these are not the samples you are looking for\n" * 100)
        for call in _all_readers(p):
            with pytest.raises(AudioError, match="not a readable audio file|no audio stream"):
                call()


def test_video_only_mp4_has_no_audio_stream(tmp_path):
    p = tmp_path / "silent_film.mp4"
    with av.open(str(p), "w") as out:
        st = out.add_stream("mpeg4", rate=10)
        st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
        for _ in range(5):
            fr = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            for pkt in st.encode(fr):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)
    _assert_all_raise(p, "no audio stream")


def test_no_audio_samples(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(p, np.zeros((0, 2), np.float32), SR)
    assert probe(p).duration == 0.0  # the header is fine...
    for call in list(_all_readers(p))[1:]:  # ...but there is nothing to decode
        with pytest.raises(AudioError, match="no audio samples"):
            call()


def _cut(p: Path, fraction: float = 0.5) -> Path:
    data = p.read_bytes()
    q = p.with_name(f"cut_{p.name}")
    q.write_bytes(data[: int(len(data) * fraction)])
    return q


def test_truncated_wav_header_promises_more(tmp_path):
    p = tmp_path / "full.wav"
    sf.write(p, tone(4.0), SR)  # 16-bit mono: 44-byte header + data
    q = tmp_path / "half.wav"
    q.write_bytes(p.read_bytes()[: 44 + 2 * 2 * SR])  # data chunk cut to 2 s, header says 4 s
    for call in list(_all_readers(q))[1:]:
        with pytest.raises(AudioError, match=r"truncated: header promises 4\.0 s, only 2\.0 s decodable"):
            call()
    # a window inside the intact part still loads
    assert len(load(q, 8000, offset=0.5, duration=1.0)) == 8000


def test_slightly_short_wav_is_accepted(tmp_path):
    p = tmp_path / "full.wav"
    sf.write(p, tone(4.0), SR)
    q = tmp_path / "short.wav"
    q.write_bytes(p.read_bytes()[: 44 + 2 * int(3.5 * SR)])  # 0.5 s short: under the 1 s rule
    assert len(load(q, 8000)) == pytest.approx(3.5 * 8000, abs=2)


@pytest.mark.parametrize("ext", [".flac", ".ogg", ".mp3", ".opus"])
def test_truncated_compressed_files(tmp_path, ext):
    p = tmp_path / f"full{ext}"
    write(p, stereo(6.0), SR)
    q = _cut(p)
    for call in list(_all_readers(q))[1:]:
        with pytest.raises(AudioError, match=r"truncated") as ei:
            call()
        assert "header promises 6.0 s" in str(ei.value) or "truncated or corrupt after" in str(ei.value)
