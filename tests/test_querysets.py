import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tuneseek.data.querysets import (
    Origin,
    QuerySet,
    Sample,
    make_queries,
    parse_sample_name,
    read_queryset,
    slugify,
)
from tuneseek.errors import UsageError

SR = 8000


def _song(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """A non-periodic test signal: a chirp, a chord and coloured noise bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = 200 + 100 * seed % 300
    x = 0.3 * np.sin(2 * np.pi * (f0 * t + 40 * t**2))
    for f in rng.uniform(150, 1500, 3):
        x += 0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6))
    noise = np.convolve(rng.standard_normal(len(t)), np.ones(8) / 8, mode="same")
    env = (np.sin(2 * np.pi * rng.uniform(0.5, 3) * t) > 0).astype(float)
    x += 0.3 * noise * env
    return (0.8 * x / np.max(np.abs(x))).astype(np.float32)


def _wav(path: Path, seconds: float = 1.0, seed: int = 0, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _song(seconds, seed, sr), sr)
    return path


# ----------------------------------------------------------------------------- reading


def _handbuilt(root: Path) -> Path:
    t = root / "ds" / "test"
    _wav(t / "origin" / "my_song" / "my_song_0.wav", seed=1)
    _wav(t / "origin" / "my_song" / "my_song_1.wav", seed=2)
    _wav(t / "origin" / "other" / "other.wav", seed=3)
    (t / "origin" / "my_song" / "notes.txt").write_text("not audio")
    _wav(t / "origin" / "my_song" / ".hidden.wav", seed=4)
    _wav(t / "origin" / ".trash" / "x.wav", seed=4)
    _wav(t / "sample" / "my_song" / "my_song_1000_3500.wav", seed=5)
    _wav(t / "sample" / "my_song" / "my_song_250_2250.wav", seed=5)
    _wav(t / "sample" / "other" / "other_0_2000.wav", seed=6)
    _wav(t / "sample" / "not_in_lib" / "not_in_lib_500_1500.wav", seed=7)
    (t / "sample" / "other" / "README.md").write_text("ignored")
    _wav(t / "sample" / "other" / "._other_0_2000.wav", seed=6)  # macOS resource file
    return root / "ds"


def test_read_handbuilt_layout(tmp_path):
    ds = _handbuilt(tmp_path)
    qs = read_queryset(ds)
    assert isinstance(qs, QuerySet)
    assert qs.root == ds / "test" and qs.split == "test"
    assert [(o.label, o.path.name) for o in qs.origins] == [
        ("my_song", "my_song_0.wav"),
        ("my_song", "my_song_1.wav"),
        ("other", "other.wav"),
    ]
    assert qs.labels == ["my_song", "other"]
    assert len(qs.origins_of("my_song")) == 2 and qs.origins_of("not_in_lib") == []
    assert [(s.label, s.start, s.end, s.in_library) for s in qs.samples] == [
        ("my_song", 0.25, 2.25, True),
        ("my_song", 1.0, 3.5, True),
        ("not_in_lib", 0.5, 1.5, False),
        ("other", 0.0, 2.0, True),
    ]
    neg = [s for s in qs.samples if s.negative]
    assert [s.label for s in neg] == ["not_in_lib"] and qs.negatives == neg
    assert len(qs.positives) == 3
    assert qs.samples[1].duration == pytest.approx(2.5)
    assert all(isinstance(s, Sample) for s in qs.samples)
    assert all(isinstance(o, Origin) and o.path.is_file() for o in qs.origins)

    # a split directory given directly, and split=None with one split present
    assert read_queryset(ds / "test") == qs
    assert read_queryset(ds / "test", split=None) == qs
    assert read_queryset(ds, split=None) == qs


def test_parse_sample_name():
    assert parse_sample_name("a_b_c_10_20.wav") == (10, 20)
    assert parse_sample_name(Path("x/7_1_2.flac")) == (1, 2)
    with pytest.raises(UsageError, match="_<start_ms>_<end_ms>"):
        parse_sample_name("song_10.wav")
    with pytest.raises(UsageError, match="not after"):
        parse_sample_name("song_20_20.wav")


def _err(fn, *args, **kw) -> str:
    with pytest.raises(UsageError) as e:
        fn(*args, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_read_errors(tmp_path):
    missing = tmp_path / "nope"
    assert str(missing) in _err(read_queryset, missing)

    ds = _handbuilt(tmp_path)
    # split not present: the message lists those that are
    msg = _err(read_queryset, ds, split="train")
    assert "train" in msg and "test" in msg and str(ds) in msg

    # several splits and split=None
    _wav(ds / "valid" / "origin" / "a" / "a.wav")
    _wav(ds / "valid" / "sample" / "a" / "a_0_500.wav")
    msg = _err(read_queryset, ds, split=None)
    assert "test" in msg and "valid" in msg

    # no origin/ or no sample/
    only_s = tmp_path / "only_s"
    _wav(only_s / "sample" / "a" / "a_0_500.wav")
    assert "origin/" in _err(read_queryset, only_s) and str(only_s) in _err(read_queryset, only_s)
    only_o = tmp_path / "only_o"
    _wav(only_o / "origin" / "a" / "a.wav")
    assert "sample/" in _err(read_queryset, only_o)

    # empty folders: no samples, no origins
    e1 = tmp_path / "e1"
    _wav(e1 / "origin" / "a" / "a.wav")
    (e1 / "sample" / "a").mkdir(parents=True)
    assert "no sample audio" in _err(read_queryset, e1)
    e2 = tmp_path / "e2"
    (e2 / "origin" / "a").mkdir(parents=True)
    _wav(e2 / "sample" / "a" / "a_0_500.wav")
    assert "no origin audio" in _err(read_queryset, e2)

    # bad sample names name the file
    bad = ds / "test" / "sample" / "other" / "other_take2.wav"
    _wav(bad)
    msg = _err(read_queryset, ds)
    assert str(bad) in msg and "_<start_ms>_<end_ms>" in msg
    bad.unlink()
    bad = ds / "test" / "sample" / "other" / "other_3000_2000.wav"
    _wav(bad)
    msg = _err(read_queryset, ds)
    assert str(bad) in msg and "not after" in msg

    # a directory that is no query set at all
    plain = tmp_path / "plain"
    plain.mkdir()
    assert str(plain) in _err(read_queryset, plain)


# ----------------------------------------------------------------------------- making


@pytest.fixture
def music(tmp_path) -> Path:
    """A small collection: nested folders, odd names, a short track and a broken file."""
    src = tmp_path / "music"
    _wav(src / "Artist One" / "Album" / "01 First Song.wav", 4.0, seed=11)
    _wav(src / "Artist One" / "Album" / "02_Second.wav", 3.5, seed=12)
    _wav(src / "Other" / "Tune.flac", 3.0, seed=13)
    _wav(src / "Other" / "Extra.wav", 5.0, seed=14)
    _wav(src / "short.wav", 0.5, seed=15)
    (src / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 3)
    (src / "cover.jpg").write_bytes(b"\xff\xd8not audio")
    return src


def _files(d: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(d)): p.read_bytes()
        for p in sorted(d.rglob("*"))
        if p.is_file() and "origin" not in p.relative_to(d).parts
    }


def test_make_queries_layout_and_readback(music, tmp_path):
    out = tmp_path / "qs"
    calls = []
    qs = make_queries(music, out, length=1.0, per_track=2, seed=3, on_progress=lambda d, t: calls.append((d, t)))
    assert qs.root == out / "test" and qs.split == "test"
    assert qs.labels == ["artist-one-album-01-first-song", "artist-one-album-02-second", "other-extra", "other-tune"]
    assert len(qs.samples) == 8 and not qs.negatives
    assert read_queryset(out) == qs
    for o in qs.origins:
        assert o.path.is_symlink() and o.path.resolve().is_file()
        assert o.path.suffix in (".wav", ".flac")
    for s in qs.samples:
        assert s.path.suffix == ".wav" and s.path.name.startswith(s.label + "_")
        assert s.end - s.start == pytest.approx(1.0)
    # progress reaches the total
    assert calls and calls[-1][0] == calls[-1][1] == 6
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)

    meta = json.loads((out / "test" / "queries.json").read_text())
    assert meta["params"]["seed"] == 3 and meta["params"]["length"] == 1.0
    assert meta["params"]["degradations"] == "clean"
    assert meta["counts"]["samples"] == 8 and meta["counts"]["tracks"] == 4
    reasons = {Path(s["path"]).name: s["reason"] for s in meta["skipped"]}
    assert set(reasons) == {"short.wav", "broken.wav"}
    assert "shorter" in reasons["short.wav"]
    assert not list((out / "test").glob(".*"))  # no marker or temp files left

    # each clean excerpt is the source span
    for s in qs.samples:
        y, sr = sf.read(s.path, dtype="float32")
        src_path = qs.origins_of(s.label)[0].path.resolve()
        x, sr2 = sf.read(src_path, dtype="float32")
        assert sr == sr2 == SR
        seg = x[int(round(s.start * sr)) : int(round(s.end * sr))]
        assert len(seg) == len(y)
        c = np.corrcoef(seg, y)[0, 1]
        assert c > 0.999, (s.path.name, c)


def test_copies_and_formats(music, tmp_path):
    qs = make_queries(music, tmp_path / "qs", length=1.0, per_track=1, link_origins=False, fmt="flac", split="valid")
    assert qs.split == "valid"
    for o in qs.origins:
        assert not o.path.is_symlink() and o.path.is_file()
    assert {s.path.suffix for s in qs.samples} == {".flac"}
    assert read_queryset(tmp_path / "qs", split="valid") == qs


def test_holdout_makes_negatives(music, tmp_path):
    qs = make_queries(music, tmp_path / "qs", length=1.0, per_track=2, holdout=1, seed=5)
    assert len(qs.labels) == 3
    neg_labels = {s.label for s in qs.negatives}
    assert len(neg_labels) == 1 and not (neg_labels & set(qs.labels))
    assert len(qs.negatives) == 2
    assert not (qs.root / "origin" / next(iter(neg_labels))).exists()
    meta = json.loads((qs.root / "queries.json").read_text())
    assert meta["counts"]["holdout_tracks"] == 1 and meta["counts"]["negative_samples"] == 2
    with pytest.raises(UsageError, match="holdout"):
        make_queries(music, tmp_path / "qs2", length=1.0, holdout=4)


def test_deterministic(music, tmp_path):
    a = make_queries(music, tmp_path / "a", length=1.0, per_track=2, degradations="noise:0db", seed=9)
    b = make_queries(music, tmp_path / "b", length=1.0, per_track=2, degradations="noise:0db", seed=9)
    fa, fb = _files(a.root), _files(b.root)
    assert fa.keys() == fb.keys() and fa == fb
    c = make_queries(music, tmp_path / "c", length=1.0, per_track=2, degradations="noise:0db", seed=10)
    assert [s.path.name for s in c.samples] != [s.path.name for s in a.samples]


def _span(qs: QuerySet, s: Sample) -> np.ndarray:
    x, sr = sf.read(qs.origins_of(s.label)[0].path, dtype="float32")
    return x[int(round(s.start * sr)) : int(round(s.end * sr))]


def test_degradations_applied(music, tmp_path):
    noisy = make_queries(music, tmp_path / "n", length=1.0, per_track=1, degradations="noise:0db")
    clean = make_queries(music, tmp_path / "c", length=1.0, per_track=1)
    # the same spans (start positions do not depend on the degradation)
    assert [s.path.name for s in noisy.samples] == [s.path.name for s in clean.samples]
    for s in noisy.samples:
        y, _ = sf.read(s.path, dtype="float32")
        c = np.corrcoef(_span(noisy, s), y)[0, 1]
        assert c < 0.95

    fast = make_queries(music, tmp_path / "f", length=1.0, per_track=1, degradations="speed:1.02")
    for s in fast.samples:
        y, sr = sf.read(s.path, dtype="float32")
        assert s.end - s.start == pytest.approx(1.0)  # the name keeps the source span
        assert len(y) / sr == pytest.approx(1.0 / 1.02, abs=2e-3)
    meta = json.loads((fast.root / "queries.json").read_text())
    assert meta["params"]["degradations"] == "speed:1.02"


def test_short_tracks_skipped_and_nothing_usable(music, tmp_path):
    qs = make_queries(music, tmp_path / "qs", length=3.8, per_track=1)
    assert qs.labels == ["artist-one-album-01-first-song", "other-extra"]
    meta = json.loads((qs.root / "queries.json").read_text())
    assert meta["counts"]["skipped"] == 4
    msg = _err(make_queries, music, tmp_path / "qs2", length=60.0)
    assert "no usable track" in msg
    assert not (tmp_path / "qs2" / "test").exists() or not any((tmp_path / "qs2" / "test").iterdir())


def test_rerun_idempotent_and_refusal(music, tmp_path):
    out = tmp_path / "qs"
    qs = make_queries(music, out, length=1.0, per_track=1, degradations="noise:10db")
    stamp = {p: p.stat().st_mtime_ns for p in qs.root.rglob("*") if p.is_file() and not p.is_symlink()}
    again = make_queries(music, out, length=1.0, per_track=1, degradations="noise:10dB")  # same, other spelling
    assert again == qs
    assert stamp == {p: p.stat().st_mtime_ns for p in qs.root.rglob("*") if p.is_file() and not p.is_symlink()}

    msg = _err(make_queries, music, out, length=1.0, per_track=1, degradations="noise:10db", seed=1)
    assert "seed" in msg and str(out / "test") in msg
    # another split of the same output is fine
    assert make_queries(music, out, length=1.0, per_track=1, split="valid").split == "valid"
    # a folder with foreign files is refused
    foreign = tmp_path / "foreign" / "test"
    foreign.mkdir(parents=True)
    (foreign / "mine.txt").write_text("x")
    assert "already has files" in _err(make_queries, music, tmp_path / "foreign", length=1.0)


def test_interrupted_run_resumes(music, tmp_path):
    out = tmp_path / "qs"
    ref = make_queries(music, tmp_path / "ref", length=1.0, per_track=1, seed=2)
    # simulate a run killed half-way: the in-progress marker and part of the files
    import tuneseek.data.querysets as q

    calls = 0

    def boom(done, total):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        q.make_queries(music, out, length=1.0, per_track=1, seed=2, on_progress=boom)
    assert not (out / "test" / "queries.json").exists()
    assert "unfinished" in _err(make_queries, music, out, length=1.0, per_track=1, seed=3)
    qs = make_queries(music, out, length=1.0, per_track=1, seed=2)
    assert _files(qs.root).keys() == _files(ref.root).keys()
    assert [s.path.name for s in qs.samples] == [s.path.name for s in ref.samples]


def test_labels_unique_and_sources(tmp_path):
    src = tmp_path / "m"
    _wav(src / "A B.wav", 1.5, seed=1)
    _wav(src / "a-b.flac", 1.5, seed=2)
    _wav(src / "a_b.wav", 1.5, seed=3)
    _wav(src / "Ünïcode ♪.wav", 1.5, seed=4)
    one = _wav(tmp_path / "single" / "Solo Track.wav", 1.5, seed=5)
    qs = make_queries([src, one], tmp_path / "qs", length=1.0, per_track=1)
    assert qs.labels == ["a-b", "a-b-2", "a-b-3", "solo-track", "unicode"]
    assert slugify("Artist/Album/01 Song") == "artist-album-01-song"
    assert slugify("♪♪").startswith("track-")
    assert "no such file" in _err(make_queries, tmp_path / "missing", tmp_path / "x")
    assert "format" in _err(make_queries, src, tmp_path / "x", fmt="ogg")
    assert "length" in _err(make_queries, src, tmp_path / "x", length=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no audio files" in _err(make_queries, empty, tmp_path / "x")
