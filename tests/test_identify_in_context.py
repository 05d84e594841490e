"""Identification of a song wherever it sits in the recording: after noise, silence or other music,
ending mid-clip, or next to another song; and whatever sub-frame position the clip was cut at."""

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
def songs(lib):
    return {t.id: sf.read(t.path, dtype="float32")[0] for t in lib.tracks()}


@pytest.fixture(scope="module")
def other_music():
    """Three minutes of music that is in no library (another seed family), in nine 20 s pieces."""
    return np.concatenate([t.audio for t in synth_catalog(9, duration=20.0, sr=SR, seed=4242)])


def lead_in(kind: str, seconds: float, other_music: np.ndarray) -> np.ndarray:
    n = int(seconds * SR)
    if kind == "silence":
        return np.zeros(n, np.float32)
    if kind == "noise":
        return (np.random.default_rng(3).standard_normal(n) * 0.02).astype(np.float32)
    return other_music[:n]


@pytest.mark.parametrize("kind", ["noise", "silence", "music"])
@pytest.mark.parametrize("seconds", [0.3, 2.0, 40.0, 150.0])
def test_a_song_after_other_audio_is_found_with_where_it_starts_in_the_clip(lib, songs, other_music, kind, seconds):
    track = lib.tracks()[1]
    clip = np.concatenate([lead_in(kind, seconds, other_music), songs[track.id][: 8 * SR]])
    match = lib.identify(clip, sr=SR)
    assert match is not None and match.track.id == track.id
    assert match.offset == pytest.approx(-seconds, abs=0.1)  # the clip starts before the track
    assert match.clip_start == pytest.approx(seconds, abs=0.1)
    assert match.track_start == pytest.approx(0.0, abs=0.1)


def test_a_clip_from_inside_a_song_after_other_music_reports_where_the_song_enters(lib, songs, other_music):
    track = lib.tracks()[2]
    clip = np.concatenate([other_music[: 5 * SR], songs[track.id][6 * SR : 14 * SR]])
    match = lib.identify(clip, sr=SR)
    assert match.track.id == track.id
    assert match.clip_start == pytest.approx(5.0, abs=1.0)
    assert match.track_start == pytest.approx(6.0, abs=1.0)


def test_a_song_that_ends_mid_clip_is_found_and_its_end_reported(lib, songs, other_music):
    track = lib.tracks()[3]
    song = songs[track.id]
    clip = np.concatenate([song[-6 * SR :], np.zeros(6 * SR, np.float32)])
    match = lib.identify(clip, sr=SR)
    assert match.track.id == track.id
    assert match.offset == pytest.approx(len(song) / SR - 6.0, abs=0.1)
    assert match.clip_end == pytest.approx(6.0, abs=0.5)


def test_two_library_songs_back_to_back_are_both_candidates_in_clip_order(lib, songs):
    first, second = lib.tracks()[0], lib.tracks()[4]
    clip = np.concatenate([songs[first.id][-7 * SR :], songs[second.id][: 7 * SR]])
    found = lib.candidates(clip, sr=SR, k=3)
    by_id = {m.track.id: m for m in found}
    assert {first.id, second.id} <= set(by_id)
    assert by_id[first.id].clip_start == pytest.approx(0.0, abs=0.3)
    assert by_id[first.id].clip_end == pytest.approx(7.0, abs=0.6)
    assert by_id[second.id].clip_start == pytest.approx(7.0, abs=0.3)
    assert by_id[second.id].offset == pytest.approx(-7.0, abs=0.1)


def test_the_score_barely_depends_on_where_the_clip_was_cut_within_a_frame(lib, songs):
    track = lib.tracks()[5]
    song = songs[track.id]
    scores = []
    for shift_ms in (0, 8, 16, 24):
        start = 5 * SR + int(shift_ms * SR / 1000)
        scores.append(lib.identify(song[start : start + 6 * SR], sr=SR).score)
    assert min(scores) >= 0.75 * max(scores)


@pytest.mark.parametrize("k", [0, -1])
def test_asking_for_fewer_than_one_candidate_is_refused(lib, songs, k):
    with pytest.raises(UsageError, match="at least 1"):
        lib.candidates(songs[lib.tracks()[0].id][: 5 * SR], sr=SR, k=k)


def test_identify_command_says_where_in_the_recording_the_song_starts(lib, songs, other_music, tmp_path):
    import json
    import os
    import subprocess
    import sys

    track = lib.tracks()[1]
    path = tmp_path / "lead-in.wav"
    sf.write(path, np.concatenate([lead_in("noise", 3.0, other_music), songs[track.id][: 6 * SR]]), SR)
    env = dict(
        os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"), TUNESEEK_LIBRARY=str(lib.root)
    )
    cmd = [sys.executable, "-m", "tuneseek.cli", "identify"]
    human = subprocess.run([*cmd, str(path)], capture_output=True, text=True, env=env, check=True).stdout
    assert f"[track {track.id}] at 0:00.0, starting 3.0 s into the clip" in human
    match = json.loads(
        subprocess.run([*cmd, "--json", str(path)], capture_output=True, text=True, env=env, check=True).stdout
    )["match"]
    assert match["offset"] == pytest.approx(-3.0, abs=0.1) and match["clip_start"] == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("seconds", [2.0, 40.0])
def test_silence_before_an_excerpt_from_inside_a_song_is_not_taken_for_the_song(lib, songs, seconds):
    track = lib.tracks()[2]
    clip = np.concatenate([np.zeros(int(seconds * SR), np.float32), songs[track.id][7 * SR : 15 * SR]])
    match = lib.identify(clip, sr=SR)
    assert match.track.id == track.id
    assert match.clip_start == pytest.approx(seconds, abs=0.3)
    assert match.track_start == pytest.approx(7.0, abs=0.3)


@pytest.mark.parametrize("tempo", [0.92, 1.10])
def test_a_clip_with_its_tempo_changed_by_up_to_ten_percent_gets_tempo_and_offset_right(lib, songs, tempo):
    from tuneseek.degrade import degrade, parse_degradations

    track = lib.tracks()[3]
    clip = degrade(
        songs[track.id][4 * SR : 16 * SR], SR, parse_degradations(f"tempo:{tempo}"), rng=np.random.default_rng(0)
    )[: 10 * SR]
    match = lib.identify(clip, sr=SR)
    assert match.track.id == track.id
    assert match.tempo == pytest.approx(tempo, abs=0.006) and match.speed == 1.0
    assert match.offset == pytest.approx(4.0, abs=0.2)
