"""The Library API: indexing, identifying, removing, and keeping the library whole."""

import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import SR
from tuneseek import Library
from tuneseek.errors import AudioError, FormatVersionError, LibraryBusyError, LibraryError
from tuneseek.store.lock import WriterLock


@pytest.fixture
def lib(tmp_path, music_dir):
    with Library.open(tmp_path / "lib") as library:
        report = library.add([music_dir], workers=1)
        assert len(report.added) == 6 and not report.failed
        yield library


def clip_of(path, start, seconds):
    x, sr = sf.read(path, dtype="float32")
    return x[int(start * sr) : int((start + seconds) * sr)], sr


def test_identify_finds_track_and_offset_of_a_clean_clip(lib):
    for track in lib.tracks():
        clip, sr = clip_of(track.path, 7.3, 5.0)
        match = lib.identify(clip, sr=sr)
        assert match is not None and match.track.id == track.id
        assert match.offset == pytest.approx(7.3, abs=0.1)
        assert match.score > 20 and 0.9 < match.confidence <= 1.0


def test_identify_reads_a_clip_file_in_another_format(lib, tmp_path):
    track = lib.tracks()[2]
    clip, sr = clip_of(track.path, 3.0, 4.0)
    path = tmp_path / "clip.ogg"
    sf.write(path, clip, sr)
    assert lib.identify(path).track.id == track.id


def test_music_not_in_the_library_gives_no_match(lib, stranger):
    for start in (0.0, 6.0, 12.0):
        assert lib.identify(stranger[int(start * SR) : int((start + 6) * SR)], sr=SR) is None


def test_unchanged_files_are_skipped_and_changed_ones_reindexed(music_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(music_dir, copy)
    with Library.open(tmp_path / "lib") as lib:
        lib.add([copy], workers=1)
        again = lib.add([copy], workers=1)
        assert len(again.unchanged) == 6 and not again.added
        target = sorted(copy.rglob("*.flac"))[0]
        x, _ = sf.read(target, dtype="float32")
        sf.write(target, x[::-1].copy(), SR)  # same name, new content
        changed = lib.add([copy], workers=1)
        assert [t.path for t in changed.reindexed] == [str(target)]
        assert len(changed.unchanged) == 5 and len(lib.tracks()) == 6
        clip = x[::-1][SR * 4 : SR * 9].copy()
        assert lib.identify(clip, sr=SR).track.path == str(target)


def test_same_audio_under_a_second_name_is_not_indexed_twice(lib, music_dir, tmp_path):
    src = sorted(music_dir.rglob("*.flac"))[0]
    twin = tmp_path / "twin.flac"
    shutil.copy(src, twin)
    report = lib.add([twin], workers=1)
    assert not report.added and report.duplicates == [(str(twin), str(src))]


def test_two_copies_of_new_audio_in_one_run_are_indexed_once(tmp_path, music_dir):
    src = sorted(music_dir.rglob("*.flac"))[0]
    for name in ("a.flac", "b.flac"):
        shutil.copy(src, tmp_path / name)
    with Library.open(tmp_path / "lib") as lib:
        report = lib.add([tmp_path / "a.flac", tmp_path / "b.flac"], workers=1)
        assert len(report.added) == 1 and len(report.duplicates) == 1 and len(lib.tracks()) == 1


def test_a_moved_file_keeps_its_track(tmp_path, music_dir):
    src = sorted(music_dir.rglob("*.flac"))[0]
    first = tmp_path / "a.flac"
    shutil.copy(src, first)
    with Library.open(tmp_path / "lib") as lib:
        track_id = lib.add([first], workers=1).added[0].id
        moved = tmp_path / "b.flac"
        first.rename(moved)
        report = lib.add([moved], workers=1)
        assert report.moved[0].id == track_id and lib.track(track_id).path == str(moved)


def test_remove_takes_the_track_out_of_identification_and_compact_drops_its_postings(lib):
    track = lib.tracks()[0]
    clip, sr = clip_of(track.path, 5.0, 5.0)
    assert lib.identify(clip, sr=sr).track.id == track.id
    postings_before = lib.stats().landmarks
    removed = lib.remove(track.id)
    assert removed.id == track.id and track.id not in [t.id for t in lib.tracks()]
    assert lib.identify(clip, sr=sr) is None
    lib.compact()
    stats = lib.stats()
    assert stats.segments == 1 and stats.landmarks == postings_before - track.n_landmarks
    assert lib.identify(clip, sr=sr) is None
    with pytest.raises(LibraryError, match="no track"):
        lib.remove(track.id)


def test_a_folder_given_from_the_home_directory_is_found(tmp_path, music_dir, monkeypatch):
    monkeypatch.setenv("HOME", str(music_dir.parent))
    with Library.open(tmp_path / "lib") as lib:
        report = lib.add([f"~/{music_dir.name}"], workers=1, analyse=False)
        assert len(report.added) == 6 and not report.failed


def test_bad_files_are_reported_one_line_each_and_the_rest_is_indexed(tmp_path, music_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.wav").write_bytes(b"")
    (bad / "noise.mp3").write_bytes(os.urandom(5000))
    (bad / "text.flac").write_text("this is not audio\n" * 100)
    sf.write(bad / "silence.wav", np.zeros(SR * 5, np.float32), SR)
    sf.write(bad / "blip.wav", np.zeros(100, np.float32), SR)
    good = sorted(music_dir.rglob("*.flac"))[0]
    shutil.copy(good, bad / "good.flac")
    truncated = bad / "truncated.flac"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    with Library.open(tmp_path / "lib") as lib:
        report = lib.add([bad, tmp_path / "does-not-exist"], workers=1)
        failed = dict(report.failed)
        assert [t.path for t in report.added] == [str(bad / "good.flac")]
        assert "empty" in failed[str(bad / "empty.wav")]
        assert "silent" in failed[str(bad / "silence.wav")]
        assert "short" in failed[str(bad / "blip.wav")]
        assert "truncated" in failed[str(truncated)] or "corrupt" in failed[str(truncated)]
        for name in ("noise.mp3", "text.flac"):
            assert failed[str(bad / name)]
        assert "no such file" in failed[str(tmp_path / "does-not-exist")]
        assert all("\n" not in reason for reason in failed.values())
        assert len(lib.tracks()) == 1


def test_bad_clips_get_clear_errors(lib, tmp_path):
    with pytest.raises(AudioError, match="too short"):
        lib.identify(np.random.default_rng(0).standard_normal(SR).astype(np.float32), sr=SR)
    with pytest.raises(AudioError, match="silent"):
        lib.identify(np.zeros(SR * 5, np.float32), sr=SR)
    with pytest.raises(AudioError, match="no such file"):
        lib.identify(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(os.urandom(3000))
    with pytest.raises(AudioError, match="junk.wav"):
        lib.identify(junk)


def test_a_second_writer_is_refused_while_readers_carry_on(lib):
    track = lib.tracks()[1]
    clip, sr = clip_of(track.path, 2.0, 5.0)
    with WriterLock(lib.root):
        with pytest.raises(LibraryBusyError, match="another tuneseek process"):
            lib.add([track.path], workers=1)
        with Library.open(lib.root) as reader:
            assert reader.identify(clip, sr=sr).track.id == track.id


def test_a_library_of_another_format_version_is_refused(tmp_path):
    Library.open(tmp_path / "lib").close()
    manifest = tmp_path / "lib" / "tuneseek.json"
    manifest.write_text(manifest.read_text().replace('"version": 1', '"version": 99'))
    with pytest.raises(FormatVersionError, match="version 99.*upgrade tuneseek"):
        Library.open(tmp_path / "lib")


def test_a_folder_that_is_not_a_library_is_refused(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hello")
    with pytest.raises(LibraryError, match="not empty and is not a tuneseek library"):
        Library.open(tmp_path / "stuff")
    with pytest.raises(LibraryError, match="no library here"):
        Library.open(tmp_path / "nothing", create=False)


def test_a_half_written_segment_is_ignored_and_swept(lib, music_dir):
    orphan = lib.root / "landmarks" / ".tmp-seg-dead"
    orphan.mkdir()
    (orphan / "frames.npy").write_bytes(b"partial")
    track = lib.tracks()[0]
    clip, sr = clip_of(track.path, 1.0, 5.0)
    assert lib.identify(clip, sr=sr).track.id == track.id
    lib.add([music_dir], workers=1)
    assert not orphan.exists()


def test_parallel_indexing_gives_the_same_library_as_serial(tmp_path, music_dir):
    with Library.open(tmp_path / "serial") as a, Library.open(tmp_path / "parallel") as b:
        a.add([music_dir], workers=1)
        b.add([music_dir], workers=2)
        by_path = lambda lib: {t.path: t.n_landmarks for t in lib.tracks()}
        assert by_path(a) == by_path(b)


def test_answers_do_not_depend_on_how_the_index_is_segmented(tmp_path, music_dir):
    files = sorted(music_dir.rglob("*.flac"))
    with Library.open(tmp_path / "one") as one, Library.open(tmp_path / "many") as many:
        one.add(files, workers=1)
        for f in files:
            many.add([f], workers=1)
        assert many.stats().segments == len(files) and one.stats().segments == 1
        for f in files[:3]:
            clip, sr = clip_of(f, 4.0, 4.0)
            a, b = one.identify(clip, sr=sr), many.identify(clip, sr=sr)
            assert (a.track.path, a.offset, a.score) == (b.track.path, b.offset, b.score)


def test_a_damaged_index_gives_one_clear_error(lib):
    seg = next((lib.root / "landmarks").iterdir())
    (seg / "frames.npy").unlink()
    with Library.open(lib.root) as again:
        clip, sr = clip_of(lib.tracks()[0].path, 1.0, 4.0)
        with pytest.raises(LibraryError, match="segment file missing or damaged.*re-index"):
            again.identify(clip, sr=sr)


@pytest.mark.parametrize(
    "spec, speed, tempo", [("tempo:1.05", 1.0, 1.05), ("speed:1.02", 1.02, 1.0), ("speed:0.97", 0.97, 1.0)]
)
def test_stretched_clips_report_their_speed_or_tempo_and_the_start_of_the_clip(lib, spec, speed, tempo):
    from tuneseek.degrade import degrade, parse_degradations

    track = lib.tracks()[4]
    clip, sr = clip_of(track.path, 6.0, 8.0)
    clip = degrade(clip, sr, parse_degradations(spec), rng=np.random.default_rng(0))
    match = lib.identify(clip, sr=sr)
    assert match.track.id == track.id
    assert match.speed == pytest.approx(speed, abs=0.006) and match.tempo == pytest.approx(tempo, abs=0.006)
    assert match.offset == pytest.approx(6.0, abs=0.1)


def test_a_renamed_file_is_recognised_by_its_content_without_decoding_it(tmp_path, music_dir, monkeypatch):
    import tuneseek.audio

    src = sorted(music_dir.rglob("*.flac"))[0]
    first = tmp_path / "a.flac"
    shutil.copy(src, first)
    with Library.open(tmp_path / "lib") as lib:
        track_id = lib.add([first], workers=1).added[0].id
        renamed = tmp_path / "renamed.flac"
        first.rename(renamed)

        def no_decoding(path):
            raise AssertionError(f"decoded {path}")

        monkeypatch.setattr(tuneseek.audio, "_open_source", no_decoding)
        report = lib.add([renamed], workers=1)
        assert [t.id for t in report.moved] == [track_id] and not (report.added or report.unchanged or report.failed)
        assert lib.track(track_id).path == str(renamed)
