"""Trained runs used where musicnn is: ``tag --model``, ``embed --model``, ``index --tagger/--embedder``, ``similar --space``.

The runs are tiny untrained networks saved as ``tuneseek train`` saves them (what they say is
not the point here: the plumbing, the windows, the storage and the refusals are).
"""

import json

import numpy as np
import pytest
import soundfile as sf

from training_data import save_run
from tuneseek import analysis
from tuneseek.cli import main
from tuneseek.errors import AudioError, ModelError, UsageError
from tuneseek.library import Library
from tuneseek.models.frontend import MelSpec
from tuneseek.synth import synth_catalog

SR = 16000


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "tagger": save_run(
            root / "tiny-tagger",
            "crnn",
            "multi-label",
            ("loud", "quiet", "bright"),
            n_outputs=3,
            window_seconds=2.0,
            channels=[4, 8],
            hidden=8,
        ),
        "genre": save_run(
            root / "genre",
            "crnn",
            "single-label",
            ("rock", "orchestral"),
            n_outputs=2,
            window_seconds=2.0,
            channels=[4, 8],
            hidden=8,
        ),
        "t2v": save_run(root / "t2v", "resnet18", "triplet", dim=16, window_seconds=1.0, width=0.125),
    }


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    for i, t in enumerate(synth_catalog(4, duration=6.0, sr=SR, seed=11)):
        sf.write(root / f"song{i}.wav", t.audio, SR)
    return root


def test_a_trained_tagger_tags_a_file_window_by_window(runs, music):
    tags = Library.tag_file(music / "song0.wav", model=str(runs["tagger"]))
    assert tags.model == "tiny-tagger" and tags.labels == ("loud", "quiet", "bright")
    assert tags.curve.shape == (3, 3) and list(tags.times) == [0.0, 2.0, 4.0]  # 6 s in 2 s windows, side by side
    assert np.all((tags.curve >= 0) & (tags.curve <= 1))
    np.testing.assert_allclose(tags.probs, tags.curve.mean(axis=0), rtol=1e-6)


def test_a_trained_classifier_gives_class_probabilities_that_sum_to_one(runs, music):
    tags = Library.tag_file(music / "song1.wav", model=str(runs["genre"]))
    np.testing.assert_allclose(tags.curve.sum(axis=1), 1.0, rtol=1e-5)
    assert [name for name, _ in tags.top(2)] in (["rock", "orchestral"], ["orchestral", "rock"])


def test_a_file_shorter_than_the_window_is_refused_not_repeated(runs, tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, synth_catalog(1, duration=0.7, sr=SR, seed=3)[0].audio, SR)
    with pytest.raises(AudioError, match=r"short.wav: too short: 0.70 s \(at least 2 s, the window of tiny-tagger\)"):
        Library.tag_file(short, model=str(runs["tagger"]))


def test_a_trained_embedder_gives_vectors_in_its_own_window(runs, music):
    emb = Library.embed_file(music / "song0.wav", model=str(runs["t2v"]))
    assert emb.window == 1.0 and emb.hop == 0.5 and emb.layer == "embedding"
    assert emb.vectors.shape == (11, 16)  # 6 s: windows at 0, 0.5, ... 5.0
    with pytest.raises(UsageError, match="takes 1 s windows"):
        Library.embed_file(music / "song0.wav", window=3.7, model=str(runs["t2v"]))


def test_an_embedding_run_has_no_tags(runs, music):
    with pytest.raises(UsageError, match="embedding model"):
        Library.tag_file(music / "song0.wav", model=str(runs["t2v"]))


def test_a_model_trained_on_precomputed_mels_refuses_audio(tmp_path, music):
    run = save_run(
        tmp_path / "jamendo-genre",
        "crnn",
        "single-label",
        ("a", "b"),
        n_outputs=2,
        window_seconds=2.0,
        channels=[4, 8],
        hidden=8,
        features={"sample_rate": 12000, "n_fft": 512, "hop": 256, "n_mels": 96},
    )
    with pytest.raises(ModelError, match="precomputed mel-spectrograms"):
        Library.tag_file(music / "song0.wav", model=str(run))


def test_a_folder_that_is_no_run_and_a_run_named_like_musicnn_are_refused(tmp_path, music):
    with pytest.raises(UsageError, match="unknown model 'nonsense'"):
        Library.tag_file(music / "song0.wav", model="nonsense")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json is missing"):
        Library.tag_file(music / "song0.wav", model=str(tmp_path / "empty"))
    clash = save_run(
        tmp_path / "mtt" / ".." / "MTT",
        "crnn",
        "multi-label",
        ("x",),
        n_outputs=1,
        window_seconds=2.0,
        channels=[4, 8],
        hidden=8,
    )
    with pytest.raises(UsageError, match="cannot be called 'mtt'"):
        Library.tag_file(music / "song0.wav", model=str(clash))


def test_weights_of_another_architecture_are_refused_with_the_tensor_named(runs, tmp_path, music):
    wrong = tmp_path / "wrong"
    save_run(wrong, "resnet18", "triplet", dim=16, window_seconds=1.0, width=0.125)
    config = json.loads((runs["tagger"] / "config.json").read_text())
    (wrong / "config.json").write_text(json.dumps(config))  # a CRNN's config over ResNet weights
    with pytest.raises(ModelError, match="do not fit architecture 'crnn'"):
        Library.tag_file(music / "song0.wav", model=str(wrong))


def test_the_library_runs_its_trained_models_on_every_track_and_searches_their_space(runs, music, tmp_path):
    with Library.open(tmp_path / "lib") as lib:
        assert lib.use_model(runs["tagger"], role="tagger") == "tags:tiny-tagger"
        assert lib.use_model(runs["t2v"], role="embedder") == "embedding:t2v"
        report = lib.add([music], workers=1)
        assert len(report.added) == 4 and not report.analysis_failed and not report.models_skipped
        track = lib.tracks()[0]
        assert lib.tags(track)["tiny-tagger"].labels == ("loud", "quiet", "bright")
        assert set(lib.extractors(track)) >= {"landmarks", "tags:tiny-tagger", "embedding:t2v"}
        stored = lib.embedding(track, space="t2v")
        assert stored.window == 1.0 and stored.hop == 1.0 and stored.vectors.shape == (6, 16)
        assert lib.spaces()["t2v"] == 4

        found = lib.similar(track, k=3, space="t2v")
        assert len(found) == 3 and track.id not in {r.track.id for r in found}
        clip, _ = sf.read(music / "song2.wav", dtype="float32")
        found = lib.similar(clip[2 * SR : 5 * SR], k=1, sr=SR, space="t2v")
        assert found[0].time is not None
        with pytest.raises(UsageError, match="no embedding space 'nope'"):
            lib.similar(track, space="nope")


def test_a_library_keeps_running_its_models_on_later_additions_and_says_when_one_is_gone(runs, music, tmp_path):
    import shutil

    tagger = shutil.copytree(runs["tagger"], tmp_path / "tiny-tagger")
    with Library.open(tmp_path / "lib") as lib:
        lib.use_model(tagger, role="tagger")
        lib.add([music / "song0.wav"], workers=1)
    with Library.open(tmp_path / "lib") as lib:  # a later session, no flags
        lib.add([music / "song1.wav"], workers=1)
        assert all("tiny-tagger" in lib.tags(t) for t in lib.tracks())
    shutil.rmtree(tagger)
    with Library.open(tmp_path / "lib") as lib:
        report = lib.add([music / "song2.wav"], workers=1)
        assert len(report.added) == 1 and report.models_skipped[0][0] == "tags:tiny-tagger"
        assert "no such folder" in report.models_skipped[0][1]


def test_retrained_weights_rerun_only_that_model(runs, music, tmp_path, monkeypatch):
    import shutil

    tagger = shutil.copytree(runs["tagger"], tmp_path / "tiny-tagger")
    with Library.open(tmp_path / "lib") as lib:
        lib.use_model(tagger, role="tagger")
        lib.use_model(runs["t2v"], role="embedder")
        lib.add([music], workers=1)
        before = lib.extractors(lib.tracks()[0])
        ran = []
        describe = analysis.describe_file
        monkeypatch.setattr(
            "tuneseek.indexing.describe_file", lambda path, ex, **kw: ran.append(tuple(ex)) or describe(path, ex, **kw)
        )
        save_run(
            tagger,
            "crnn",
            "multi-label",
            ("loud", "quiet", "bright"),
            seed=1,
            n_outputs=3,
            window_seconds=2.0,
            channels=[4, 8],
            hidden=8,
        )
        report = lib.add([music], workers=1)
        assert len(report.analysed) == 4 and not report.added and set(ran) == {("tags:tiny-tagger",)}
        after = lib.extractors(lib.tracks()[0])
        assert (
            after["tags:tiny-tagger"] != before["tags:tiny-tagger"]
            and after["embedding:t2v"] == before["embedding:t2v"]
        )


def test_a_tagger_role_refuses_an_embedding_run(runs, tmp_path):
    with Library.open(tmp_path / "lib") as lib:
        with pytest.raises(UsageError, match="index --embedder"):
            lib.use_model(runs["t2v"], role="tagger")
        assert lib.models() == {}


def test_a_silent_file_gets_no_trained_tags_but_a_clear_reason(runs, tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(3 * SR, np.float32), SR)
    with pytest.raises(AudioError, match="silent"):
        Library.tag_file(path, model=str(runs["tagger"]))


def test_cli_tag_embed_index_show_similar_and_stats_with_trained_models(runs, music, tmp_path, capsys):
    lib = str(tmp_path / "lib")
    assert main(["tag", "--model", str(runs["genre"]), str(music / "song0.wav"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "genre" and set(out["tags"]) == {"rock", "orchestral"}

    vectors = tmp_path / "v.npy"
    assert main(["embed", "--model", str(runs["t2v"]), str(music / "song0.wav"), "-o", str(vectors)]) == 0
    assert np.load(vectors).shape == (11, 16)

    assert (
        main(
            [
                "--library",
                lib,
                "index",
                str(music),
                "--tagger",
                str(runs["genre"]),
                "--embedder",
                str(runs["t2v"]),
                "-j",
                "1",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "tags:genre" in err and "embedding:t2v" in err
    assert main(["--library", lib, "show", "1"]) == 0
    assert "tags (genre)" in capsys.readouterr().out
    assert main(["--library", lib, "similar", "1", "--space", "t2v", "-k", "2"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["--library", lib, "stats"]) == 0
    assert "embedding:t2v <- " in capsys.readouterr().out
    assert main(["--library", lib, "index", str(music), "--tagger", str(runs["genre"]), "--landmarks-only"]) == 1
    assert "--landmarks-only runs no model" in capsys.readouterr().err


def test_a_track_shorter_than_a_trained_window_keeps_musicnns_tags(with_models, music, tmp_path):
    long_window = save_run(
        tmp_path / "long-tagger",
        "crnn",
        "multi-label",
        ("loud", "quiet", "bright"),
        n_outputs=3,
        window_seconds=8.0,  # longer than the 6 s songs
        channels=[4, 8],
        hidden=8,
        spec=MelSpec(sample_rate=22050),  # not musicnn's rate: a pass of its own over the file
    )
    with Library.open(tmp_path / "lib") as lib:
        lib.use_model(long_window, role="tagger")
        report = lib.add([music / "song0.wav"], workers=1)
        [(path, why)] = report.analysis_failed
        assert path.endswith("song0.wav") and why.startswith("tags:long-tagger: too short: 6.00 s")
        track = lib.tracks()[0]
        assert set(lib.tags(track)) == {"mtt", "msd"} and lib.embedding(track) is not None
