"""Monitoring long recordings: a timeline of library tracks and unknown stretches, in bounded memory."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import SR
from tuneseek.errors import UsageError
from tuneseek.synth import synth_catalog


@pytest.fixture(scope="module")
def lib(indexed_music):
    return indexed_music


@pytest.fixture(scope="module")
def mix(lib):
    """A 'radio show': three library tracks with talk-like noise and an unknown song between them.

    Returns the samples and the truth, ``[(start, end, track id or None, track start)]``.
    """
    rng = np.random.default_rng(5)
    stranger = synth_catalog(1, duration=20.0, sr=SR, seed=777)[0].audio
    tracks = lib.tracks()
    parts, truth, t = [], [], 0.0

    def put(x, track_id, track_start):
        nonlocal t
        parts.append(x.astype(np.float32))
        truth.append((t, t + len(x) / SR, track_id, track_start))
        t += len(x) / SR

    for i, track in enumerate(tracks[:3]):
        song = sf.read(track.path, dtype="float32")[0]
        put(song[2 * SR : 18 * SR], track.id, 2.0)
        put(rng.standard_normal(4 * SR) * 0.02, None, None)
        if i == 0:
            put(stranger, None, None)
    return np.concatenate(parts), truth


def test_monitor_gives_each_track_where_it_plays_and_the_unknown_stretches(lib, mix):
    samples, truth = mix
    segments = list(lib.monitor(samples, sr=SR))
    found = [s for s in segments if s.track is not None]
    expected = [row for row in truth if row[2] is not None]
    assert [s.track.id for s in found] == [row[2] for row in expected]
    for seg, (start, end, _, track_start) in zip(found, expected):
        assert abs(seg.start - start) <= 1.0 and abs(seg.end - end) <= 1.0
        assert seg.track_start == pytest.approx(track_start, abs=1.0)
        assert seg.track_end == pytest.approx(track_start + end - start, abs=1.0)
    unknown = [s for s in segments if s.track is None]
    assert unknown and all(s.end > s.start for s in unknown)
    assert sum(s.end - s.start for s in unknown) == pytest.approx(4 * 3 + 20, abs=4.0)
    # the timeline is in order and covers the recording without gaps
    assert segments[0].start == 0.0 and segments[-1].end == pytest.approx(len(samples) / SR, abs=0.1)
    assert all(a.end <= b.start + 1.0 for a, b in zip(segments, segments[1:]))


def test_monitor_of_music_not_in_the_library_is_one_unknown_stretch(lib):
    stranger = np.concatenate([t.audio for t in synth_catalog(3, duration=20.0, sr=SR, seed=31337)])
    segments = list(lib.monitor(stranger, sr=SR))
    assert len(segments) == 1 and segments[0].track is None
    assert segments[0].end == pytest.approx(60.0, abs=0.1)


def test_monitor_refuses_a_window_it_cannot_use(lib, mix):
    with pytest.raises(UsageError):
        list(lib.monitor(mix[0], sr=SR, window=5.0, hop=6.0))


def test_identify_on_a_long_recording_names_the_tracks_it_holds(lib, mix, monkeypatch):
    import tuneseek.library

    samples, truth = mix
    monkeypatch.setattr(tuneseek.library, "LONG_CLIP_SECONDS", 60.0)  # as a 3 h file would be, in a second
    found = lib.candidates(samples, sr=SR, k=5)
    assert {m.track.id for m in found} == {row[2] for row in truth if row[2] is not None}
    first = next(m for m in found if m.track.id == truth[0][2])
    assert first.clip_start == pytest.approx(0.0, abs=1.0) and first.track_start == pytest.approx(2.0, abs=1.0)


def test_monitor_command_prints_a_timeline_and_json_lines(lib, mix, tmp_path):
    samples, truth = mix
    path = tmp_path / "show.flac"
    sf.write(path, samples, SR)
    env = dict(
        os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"), TUNESEEK_LIBRARY=str(lib.root)
    )
    cmd = [sys.executable, "-m", "tuneseek.cli", "monitor"]
    human = subprocess.run([*cmd, str(path)], capture_output=True, text=True, env=env, check=True).stdout
    first = lib.track(truth[0][2])
    assert first.name in human and "unknown" in human
    rows = [
        json.loads(line)
        for line in subprocess.run(
            [*cmd, "--json", str(path)], capture_output=True, text=True, env=env, check=True
        ).stdout.splitlines()
    ]
    assert [r["track_id"] for r in rows if r["track_id"]] == [row[2] for row in truth if row[2] is not None]
    assert all({"start", "end", "track_id"} <= set(r) for r in rows)
    bad = subprocess.run([*cmd, str(tmp_path / "missing.wav")], capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "missing.wav" in bad.stderr
