"""Vectors in Milvus (Milvus Lite, a local file): the same answers as FAISS through the public API,
kept in step with the catalogue through adds, removals, re-indexing and crashes between the two.

Needs the ``scale`` extra (pymilvus, milvus-lite); skipped without it.
"""

import json
import shutil
from contextlib import contextmanager

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("faiss", reason="vector search needs faiss-cpu (the models extra)")
pytest.importorskip("pymilvus", reason="the Milvus store needs pymilvus: pip install 'tuneseek[scale]'")
pytest.importorskip("milvus_lite", reason="Milvus Lite needs milvus-lite: pip install 'tuneseek[scale]'")

from conftest import SR
from tuneseek import Library
from tuneseek.cli import main
from tuneseek.errors import LibraryError, UsageError
from tuneseek.similarity import SEGMENT_BITS, Spaces
from tuneseek.store import milvus
from tuneseek.store.manifest import MANIFEST_NAME
from tuneseek.store.milvus import MilvusVectors
from tuneseek.store.vectors import FaissStore, VectorsSpec
from tuneseek.synth import synth_catalog


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Five 12 s synthetic songs."""
    root = tmp_path_factory.mktemp("songs")
    for t in synth_catalog(5, duration=12.0, sr=SR, seed=13):
        sf.write(root / f"{t.name}.wav", t.audio, SR)
    return root


@pytest.fixture(scope="module")
def indexed(models, songs, tmp_path_factory):
    """A library indexed with its vectors in Milvus Lite (closed), and its songs' folder."""
    base = tmp_path_factory.mktemp("milvus")
    root = base / "lib"
    with Library.open(root, vectors=f"milvus:{base / 'vectors.db'}") as lib:
        report = lib.add([songs], workers=1)
        assert len(report.added) == 5 and report.analysis_skipped is None
    return root


def twins(indexed, tmp_path):
    """A copy of the Milvus library and of its Milvus Lite file, and a copy of the library whose manifest
    forgets Milvus (so FAISS is built from the very same catalogue)."""
    m_root, f_root = tmp_path / "m" / "lib", tmp_path / "f" / "lib"
    shutil.copytree(indexed, m_root)
    shutil.copytree(indexed.parent / "vectors.db", tmp_path / "m" / "vectors.db")
    shutil.copytree(indexed, f_root)
    data = json.loads((m_root / MANIFEST_NAME).read_text())
    data["vectors"]["uri"] = str(tmp_path / "m" / "vectors.db")
    (m_root / MANIFEST_NAME).write_text(json.dumps(data))
    del data["vectors"]
    (f_root / MANIFEST_NAME).write_text(json.dumps(data))
    return Library.open(m_root), Library.open(f_root)


def answers(lib, clips=()):
    """What ``similar`` says for every track as a query, and for each clip (segment search)."""
    out = {}
    for t in lib.tracks():
        out[t.id] = [(r.track.id, round(r.score, 5)) for r in lib.similar(t.id, k=3)]
    for i, (x, sr) in enumerate(clips):
        out[f"clip{i}"] = [(r.track.id, round(r.score, 5), r.time) for r in lib.similar(x, sr=sr, k=3)]
    return out


def clips_of(lib):
    out = []
    for t in lib.tracks()[:2]:
        x, sr = sf.read(t.path, dtype="float32")
        out.append((x[int(3.7 * sr) : int(7.4 * sr)], sr))
    return out


@contextmanager
def milvus_of(lib):
    """The Milvus store the manifest of ``lib`` names, opened beside the library (as another reader of
    its Milvus Lite file in this process would)."""
    data = json.loads((lib.root / MANIFEST_NAME).read_text())
    store = MilvusVectors(VectorsSpec.from_manifest(data, lib.root), lib.root)
    try:
        yield store
    finally:
        store.close()


def collections(lib) -> dict[str, set[int]]:
    """``{"track"|"segment": ids}`` the Milvus store holds for the musicnn space."""
    with milvus_of(lib) as vectors:
        return {kind: set(vectors.open("musicnn", kind).stamps()) for kind in ("track", "segment")}


def collection_names(lib) -> dict[str, str]:
    """``{"track"|"segment": the collection answering}`` for the musicnn space."""
    with milvus_of(lib) as vectors:
        return {kind: vectors.open("musicnn", kind).name for kind in ("track", "segment")}


def catalogued(lib) -> dict[str, set[int]]:
    """What the catalogue holds of the musicnn space, as ``collections`` names it."""
    embedded = [(t.id, len(e.vectors)) for t in lib.tracks() if (e := lib.embedding(t, space="musicnn")) is not None]
    return {
        "track": {t for t, _ in embedded},
        "segment": {(t << SEGMENT_BITS) + i for t, n in embedded for i in range(n)},
    }


def test_similar_from_milvus_is_what_faiss_says(models, indexed, tmp_path):
    m, f = twins(indexed, tmp_path)
    with m, f:
        assert m.one_process_only and not f.one_process_only  # a Lite file: a server keeps queries in-process
        clips = clips_of(f)
        assert answers(m, clips) == answers(f, clips)
        assert collections(m) == catalogued(m)


def test_the_manifest_records_the_store_and_a_mismatch_is_one_line(models, indexed, tmp_path):
    m, f = twins(indexed, tmp_path)
    m.close(), f.close()
    recorded = json.loads((m.root / MANIFEST_NAME).read_text())["vectors"]
    assert recorded["store"] == "milvus" and recorded["prefix"].startswith("tuneseek_")
    with Library.open(m.root, vectors=f"milvus:{recorded['uri']}") as again:  # the same store: fine
        assert again.one_process_only and collections(again) == catalogued(again)
    assert json.loads((m.root / MANIFEST_NAME).read_text())["vectors"] == recorded
    for other in ("faiss", f"milvus:{tmp_path / 'other.db'}"):
        with pytest.raises(LibraryError, match="its vectors are kept in milvus:") as e:
            Library.open(m.root, vectors=other)
        assert "\n" not in str(e.value) and "leave out --vectors" in str(e.value)


def test_removal_and_reindexing_keep_milvus_and_faiss_alike(models, indexed, tmp_path):
    m, f = twins(indexed, tmp_path)
    with m, f:
        gone = m.tracks()[1]
        for lib in (m, f):
            lib.remove(gone.id)
        assert gone.id not in {r.track.id for r in m.similar(m.tracks()[0].id, k=10)}
        assert answers(m) == answers(f) and collections(m) == catalogued(m)
        # a changed file is re-indexed under a new id; its old vectors leave Milvus
        song = tmp_path / "song.wav"
        x = synth_catalog(1, duration=8.0, sr=SR, seed=41)[0].audio
        sf.write(song, x, SR)
        for lib in (m, f):
            lib.add([song], workers=1)
        before = m.track(song).id
        sf.write(song, x[::-1].copy(), SR)
        for lib in (m, f):
            assert len(lib.add([song], workers=1).reindexed) == 1
        assert m.track(song).id != before and f.track(song).id == m.track(song).id
        assert answers(m) == answers(f) and collections(m) == catalogued(m)


def test_a_crash_between_milvus_and_the_catalogue_is_repaired_by_the_next_write(
    models, indexed, songs, tmp_path, monkeypatch
):
    m, f = twins(indexed, tmp_path)
    extra = tmp_path / "extra"
    extra.mkdir()
    for t in synth_catalog(2, duration=8.0, sr=SR, seed=31):
        sf.write(extra / f"{t.name}.wav", t.audio, SR)
    with m, f:
        # 1. the process dies inside the catalogue transaction, after Milvus got a track row and
        #    segments but before the row's stamp: the catalogue rolls back, Milvus keeps a half track
        real_upsert = milvus.MilvusStore.upsert

        def dies_at_the_stamp(self, ids, vectors, *, stamps=0):
            if self.name.split("_")[-2] == "t" and np.all(np.asarray(stamps) != milvus.PENDING):
                raise KeyboardInterrupt("killed")
            return real_upsert(self, ids, vectors, stamps=stamps)

        monkeypatch.setattr(milvus.MilvusStore, "upsert", dies_at_the_stamp)
        with pytest.raises(KeyboardInterrupt):
            m.add([extra], workers=1)
        monkeypatch.setattr(milvus.MilvusStore, "upsert", real_upsert)
        assert len(m.tracks()) == 5 and collections(m) != catalogued(m)
        # 2. a removal whose Milvus step never ran (the process died after the catalogue committed)
        gone = m.tracks()[2]
        with monkeypatch.context() as mp:
            mp.setattr(Spaces, "sync", lambda self, ids: None)
            mp.setattr(Spaces, "reconcile", lambda self: None)
            mp.setattr(Spaces, "settle", lambda self: None)
            m.remove(gone.id)
        assert gone.id in collections(m)["track"]
        # readers skip what the catalogue no longer holds, before any repair
        assert gone.id not in {r.track.id for r in m.similar(m.tracks()[0].id, k=10)}
        # the next write repairs both (checked before it re-centres: scored against the moved mean), then adds
        with monkeypatch.context() as mp:
            mp.setattr(Spaces, "settle", lambda self: None)
            m.compact()
        f.remove(gone.id)
        assert collections(m) == catalogued(m)
        assert answers(m, clips_of(f)) == answers(f, clips_of(f))
        assert len(m.add([extra], workers=1).added) == len(f.add([extra], workers=1).added) == 2
        assert collections(m) == catalogued(m)
        assert answers(m, clips_of(f)) == answers(f, clips_of(f))


def test_a_crash_while_re_centring_leaves_the_old_collection_answering(models, indexed, tmp_path, monkeypatch):
    m, f = twins(indexed, tmp_path)
    with m, f:
        names = collection_names(m)
        real = Spaces._write_all
        calls = []

        def dies_half_way(store, kind, batch, stamp_of):
            calls.append(kind)
            if len(calls) == 1:
                raise KeyboardInterrupt("killed")
            return real(store, kind, batch, stamp_of)

        gone = m.tracks()[0]
        monkeypatch.setattr(Spaces, "_write_all", staticmethod(dies_half_way))
        with pytest.raises(KeyboardInterrupt):
            m.remove(gone.id)  # the catalogue has committed; the re-centring after it dies
        monkeypatch.setattr(Spaces, "_write_all", staticmethod(real))
        f.remove(gone.id)
        # a half-made collection is never read: the old one answers, rescored for the moved mean
        assert collection_names(m) == names
        assert answers(m, clips_of(f)) == answers(f, clips_of(f)) and collections(m) == catalogued(m)
        m.compact()  # any write sweeps it and re-centres
        assert collection_names(m) != names
        with milvus_of(m) as vectors:
            assert len(vectors.client.list_collections()) == 3  # and the sync mark
        assert answers(m, clips_of(f)) == answers(f, clips_of(f)) and collections(m) == catalogued(m)


def test_moving_a_faiss_library_into_milvus_fills_the_store_from_the_catalogue(models, indexed, tmp_path):
    _, f = twins(indexed, tmp_path)
    f.close()
    before = Library.open(f.root)
    expected = answers(before)
    before.close()
    with Library.open(f.root, vectors="milvus") as moved:  # a Milvus Lite file in the library
        assert moved.one_process_only
        assert answers(moved) == expected and collections(moved) == catalogued(moved)
    assert json.loads((f.root / MANIFEST_NAME).read_text())["vectors"]["uri"] == "vectors.db"  # moves with it
    moved_root = shutil.move(f.root, tmp_path / "elsewhere")
    with Library.open(moved_root) as reopened:  # the manifest says where they went
        with milvus_of(reopened) as vectors:
            assert vectors.spec.uri == str(tmp_path / "elsewhere" / "vectors.db")
        assert answers(reopened) == expected and collections(reopened) == catalogued(reopened)


def centred_answers(store, queries, k, exclude=()):
    scores, ids = store.search(queries, k, exclude=np.array(exclude, np.int64))
    return ids, scores


@pytest.mark.parametrize("shift", [0.0, 0.02, 0.5, 3.0])
def test_search_is_exact_however_far_the_mean_moved_from_the_stored_centre(tmp_path, shift):
    rng = np.random.default_rng(4)
    centres = rng.standard_normal((20, 32))
    vectors = (centres[rng.integers(20, size=3000)] + 0.7 * rng.standard_normal((3000, 32))).astype(np.float32)
    # a few right by the centre: they can rank anywhere once it moves
    vectors[:5] = vectors.mean(axis=0) + 1e-3 * rng.standard_normal((5, 32)).astype(np.float32)
    ids = np.arange(3000, dtype=np.int64) + 100
    stored = vectors.mean(axis=0)
    now = (stored + shift * rng.standard_normal(32) / np.sqrt(32)).astype(np.float32)
    store = MilvusVectors(VectorsSpec("milvus", str(tmp_path / "v.db"), "t"), tmp_path)
    try:
        m = store.create("space", "segment", dim=32, centre=stored)
        m.upsert(ids, vectors)
        m = store.seal(m, 1.0).at(now)
        exact = FaissStore(32, centre=now)
        exact.upsert(ids, vectors)
        queries = np.concatenate([vectors[[7, 99, 250]], rng.standard_normal((3, 32)).astype(np.float32)])
        for k in (1, 10, 50):
            got_i, got_s = centred_answers(m, queries, k, exclude=[107])
            want_i, want_s = centred_answers(exact, queries, k, exclude=[107])
            np.testing.assert_array_equal(got_i, want_i)
            np.testing.assert_allclose(got_s, want_s, atol=1e-5)
    finally:
        store.close()


def test_bad_stores_are_one_line_errors(tmp_path, capsys, monkeypatch):
    for bad in ("milvus:ftp://host/x", "milvus:vectors.txt", "pinecone", "faiss:x"):
        with pytest.raises(UsageError, match="expected faiss, milvus") as e:
            Library.open(tmp_path / "lib", vectors=bad)
        assert "\n" not in str(e.value)
    with pytest.raises(LibraryError, match="cannot open the vector store milvus:http://127.0.0.1:9") as e:
        Library.open(tmp_path / "lib2", vectors="milvus:http://127.0.0.1:9")
    assert "\n" not in str(e.value)
    assert main(["-L", str(tmp_path / "lib3"), "index", "--vectors", "milvus:nowhere/x.db", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no folder" in err
    monkeypatch.setitem(__import__("sys").modules, "pymilvus", None)
    with pytest.raises(UsageError, match=r"pip install 'tuneseek\[scale\]'"):
        Library.open(tmp_path / "lib4", vectors="milvus")
    # none of these made a library that would remember a store it cannot open
    assert not any((tmp_path / f"lib{i}" / MANIFEST_NAME).exists() for i in ("", 2, 3, 4))
