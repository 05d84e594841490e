"""The library's tags and embeddings: stored at index time, kept consistent, upgraded in place, searched.

The models are musicnn converted from a stand-in wheel of random weights (see conftest), so
these tests check what is stored, where, and when it is recomputed; tests/test_musicnn.py
checks what the real tags say.
"""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import SR
from tuneseek import Library, analysis
from tuneseek.cli import main
from tuneseek.errors import AudioError, LibraryError
from tuneseek.synth import synth_catalog


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Four 12 s synthetic songs, and a quieter copy of the first (same music, other bytes)."""
    root = tmp_path_factory.mktemp("songs")
    tracks = synth_catalog(4, duration=12.0, sr=SR, seed=7)
    for t in tracks:
        sf.write(root / f"{t.name}.wav", t.audio, SR)
    sf.write(root / "quieter-copy.wav", 0.5 * tracks[0].audio, SR)
    return root


@pytest.fixture(scope="module")
def lib(models, songs, tmp_path_factory):
    with Library.open(tmp_path_factory.mktemp("lib") / "lib") as library:
        report = library.add([songs], workers=1)
        assert len(report.added) == 5 and report.analysis_skipped is None and not report.analysis_failed
        yield library


def track_named(lib, part):
    return next(t for t in lib.tracks() if part in t.path)


def test_every_track_gets_both_vocabularies_and_its_segment_vectors(lib):
    stats = lib.stats()
    assert stats.tagged == stats.embedded == stats.tracks == 5
    track = lib.tracks()[1]
    tags = lib.tags(track)
    assert list(tags) == ["mtt", "msd"]
    assert tags["mtt"].labels[:2] == ("guitar", "classical") and len(tags["msd"].labels) == 50
    # the stored tags are exactly what `tuneseek tag` computes for the file (mean over 3 s patches)
    for vocab in ("mtt", "msd"):
        np.testing.assert_allclose(tags[vocab].probs, Library.tag_file(track.path, model=vocab).probs, atol=1e-6)
    stored = lib.embedding(track)
    assert stored.vectors.shape == (3, 200) and stored.hop == analysis.SEGMENT_HOP  # 12 s -> three 3.7 s segments
    assert list(stored.times) == [0.0, 3.7, 7.4] and stored.layer == analysis.SPACE
    versions = lib.extractors(track)
    assert set(versions) == {"landmarks", "tags:mtt", "tags:msd", "embedding:musicnn"}


def test_similar_from_a_track_puts_its_quieter_copy_first_and_leaves_itself_out(lib):
    first = track_named(lib, "synth-00")
    results = lib.similar(first, k=4)
    assert [r.track.id for r in results][0] == track_named(lib, "quieter-copy").id
    assert first.id not in [r.track.id for r in results] and len(results) == 4
    assert all(-1.0 <= r.score <= 1.0 and r.time is None for r in results)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    # by id or by path, the same answer
    assert [r.track.id for r in lib.similar(str(first.id), k=4)] == [r.track.id for r in results]
    assert [r.track.id for r in lib.similar(first.path, k=4)] == [r.track.id for r in results]


def test_similar_from_a_clip_names_the_track_and_where_in_it(lib, tmp_path):
    target = lib.tracks()[2]
    x, sr = sf.read(target.path, dtype="float32")
    clip = tmp_path / "clip.wav"
    sf.write(clip, x[int(7.4 * sr) : int(11.1 * sr)], sr)  # exactly the third segment
    best = lib.similar(clip, k=2)[0]
    assert best.track.id == target.id and best.time == pytest.approx(7.4)
    from_samples = lib.similar(x[int(7.4 * sr) : int(11.1 * sr)], k=2, sr=sr)[0]
    assert from_samples.track.id == target.id and from_samples.time == pytest.approx(7.4)


def test_a_file_that_is_in_the_library_under_another_name_is_not_its_own_neighbour(lib, songs, tmp_path):
    source = track_named(lib, "quieter-copy")
    twin = tmp_path / "twin.wav"
    twin.write_bytes(open(source.path, "rb").read())
    assert source.id not in [r.track.id for r in lib.similar(twin, k=4)]


def test_similar_refuses_bad_queries_clearly(lib, tmp_path):
    silent, short = tmp_path / "silent.wav", tmp_path / "short.wav"
    sf.write(silent, np.zeros(5 * SR, np.float32), SR)
    sf.write(short, 0.1 * np.ones(SR // 10, np.float32), SR)
    with pytest.raises(AudioError, match="silent"):
        lib.similar(silent)
    with pytest.raises(AudioError, match="too short"):
        lib.similar(short)
    with pytest.raises(LibraryError, match="neither an audio file nor a track"):
        lib.similar(tmp_path / "nowhere.wav")
    with pytest.raises(LibraryError, match="no track 999"):
        lib.similar(999)


@pytest.mark.slow
def test_removal_and_reindexing_leave_no_stale_tags_or_vectors(models, songs, tmp_path):
    songs = shutil.copytree(songs, tmp_path / "songs")
    with Library.open(tmp_path / "lib") as lib:
        lib.add([songs], workers=1)
        gone = track_named(lib, "quieter-copy")
        lib.remove(gone.id)
        assert lib.tags(gone) == {} and lib.embedding(gone) is None
        assert gone.id not in [r.track.id for r in lib.similar(lib.tracks()[0], k=10)]
        # a changed file is re-indexed under a new id, its old rows gone with the old id
        changed = lib.tracks()[1]
        x, sr = sf.read(changed.path, dtype="float32")
        sf.write(changed.path, x[::-1].copy(), sr)
        again = lib.add([songs], workers=1)
        assert len(again.reindexed) == 1 and len(again.unchanged) == 3 and len(again.added) == 1  # the removed copy
        new = lib.track(changed.path)
        assert new.id != changed.id and lib.tags(changed) == {}
        stats = lib.stats()
        assert stats.tracks == stats.tagged == stats.embedded == 4 + 1


@pytest.fixture
def no_models(tmp_path, monkeypatch):
    """No weights where the models are looked for (and tests never fetch any)."""
    monkeypatch.setenv("TUNESEEK_MODELS", str(tmp_path / "no-models"))
    analysis.model.cache_clear()


@pytest.mark.slow
def test_a_library_indexed_without_models_gains_tags_in_place(songs, tmp_path, standin_models, no_models, monkeypatch):
    with Library.open(tmp_path / "lib") as lib:
        first = lib.add([songs], workers=1)
        assert "not converted yet" in first.analysis_skipped and len(first.added) == 5
        assert lib.stats().tagged == 0 and lib.tracks()[0].id  # ... yet identification works
        with pytest.raises(LibraryError, match="no track has musicnn embeddings yet"):
            lib.similar(lib.tracks()[0])
        index = (lib.stats().segments, lib.stats().index_bytes)

        monkeypatch.setenv("TUNESEEK_MODELS", str(standin_models))
        analysis.model.cache_clear()
        upgrade = lib.add([songs], workers=1)
        assert len(upgrade.analysed) == 5 and not upgrade.added and not upgrade.reindexed
        assert (lib.stats().segments, lib.stats().index_bytes) == index  # the landmarks were not computed again
        assert lib.stats().tagged == lib.stats().embedded == 5
        assert len(lib.add([songs], workers=1).unchanged) == 5  # and once done, nothing more to do


@pytest.mark.slow
def test_a_changed_model_reruns_only_its_own_extractor(models, songs, tmp_path, monkeypatch):
    with Library.open(tmp_path / "lib") as lib:
        lib.add([songs], workers=1)
        track = lib.tracks()[0]
        before = dict(lib.extractors(track))
        vector = lib.embedding(track).vectors.copy()
        real = analysis.extractor_versions
        monkeypatch.setattr(
            analysis, "extractor_versions", lambda *a, **k: {**real(*a, **k), "tags:msd": "musicnn-msd/new"}
        )
        ran = []
        describe = analysis.describe_file
        monkeypatch.setattr(
            "tuneseek.indexing.describe_file", lambda path, ex, **kw: ran.append(tuple(ex)) or describe(path, ex, **kw)
        )
        report = lib.add([songs], workers=1)
        assert len(report.analysed) == 5 and set(ran) == {("tags:msd",)}
        after = lib.extractors(track)
        assert after["tags:msd"] == "musicnn-msd/new"
        assert {k: v for k, v in after.items() if k != "tags:msd"} == {
            k: v for k, v in before.items() if k != "tags:msd"
        }
        np.testing.assert_array_equal(lib.embedding(track).vectors, vector)


def test_a_file_the_models_cannot_describe_is_still_indexed_for_identification(models, songs, tmp_path, monkeypatch):
    def fail(path, extractors, **kw):
        raise AudioError(path, "decoder gave up")

    monkeypatch.setattr("tuneseek.indexing.describe_file", fail)
    with Library.open(tmp_path / "lib") as lib:
        report = lib.add([songs], workers=1)
        assert len(report.added) == 5 and len(report.analysis_failed) == 5
        assert report.analysis_failed[0][1] == "decoder gave up" and lib.stats().tagged == 0
        assert "5 without tags and embeddings" in report.summary()


@pytest.mark.slow
def test_parallel_indexing_stores_the_same_tags_as_serial(models, songs, tmp_path):
    with Library.open(tmp_path / "serial") as a, Library.open(tmp_path / "parallel") as b:
        a.add([songs], workers=1)
        report = b.add([songs], workers=2)
        assert len(report.added) == 5 and not report.analysis_failed
        for ta in a.tracks():
            tb = b.track(ta.path)
            np.testing.assert_allclose(a.tags(ta)["msd"].probs, b.tags(tb)["msd"].probs, atol=1e-5)


@pytest.mark.slow
def test_cli_index_show_similar_and_stats(models, songs, tmp_path, capsys):
    lib = str(tmp_path / "lib")
    assert main(["-L", lib, "index", "-j", "1", str(songs)]) == 0
    assert "5 added" in capsys.readouterr().out
    assert main(["-L", lib, "show", "1", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "tags (MTT)" in out and "tags (MSD)" in out and "embedding:musicnn" in out
    assert main(["-L", lib, "similar", "1", "-k", "2", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["rank"] for r in lines] == [1, 2] and all(r["track_id"] != 1 for r in lines)
    assert main(["-L", lib, "stats"]) == 0
    assert "tags         5 of 5 tracks" in capsys.readouterr().out
    assert main(["-L", lib, "similar", str(tmp_path / "missing.wav")]) == 1
    assert "neither an audio file nor a track" in capsys.readouterr().err


def test_cli_index_without_models_says_what_it_skipped(songs, tmp_path, capsys, no_models):
    assert main(["-L", str(tmp_path / "lib"), "index", "-j", "1", str(songs)]) == 0
    captured = capsys.readouterr()
    assert "5 added" in captured.out
    assert "identification only; tags and embeddings skipped" in captured.err and "\n" not in captured.err.strip()


@pytest.mark.slow
def test_a_file_too_long_to_decode_whole_is_still_described_as_it_streams(models, songs, tmp_path, monkeypatch):
    monkeypatch.setattr(analysis, "MAX_SECONDS", 10.0)  # the songs are 12 s long
    with Library.open(tmp_path / "lib") as lib:
        report = lib.add([songs], workers=1)
        assert len(report.added) == 5 and not report.analysis_failed
        assert all(set(lib.tags(t)) == {"mtt", "msd"} for t in report.added)
