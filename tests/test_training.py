"""Training and evaluating taggers, genre classifiers and triplet embeddings on tiny generated datasets.

The datasets are synthetic and the networks tiny, so these tests check the machinery (splits,
checkpoints, resume, logs, curves, metrics, errors), not what a model learns.
"""

import json

import numpy as np
import pytest

from training_data import SR, timbre, write_styles
from tuneseek import audio
from tuneseek.cli import main
from tuneseek.data.datasets import open_dataset
from tuneseek.errors import UsageError
from tuneseek.evaluate.trained import evaluate_run
from tuneseek.models import checkpoint
from tuneseek.synth import synth_catalog
from tuneseek.train.run import TrainSettings, train

TINY_CRNN = {"channels": [4, 8], "hidden": 8}


@pytest.fixture(scope="module")
def genres(tmp_path_factory):
    """One folder per genre, five 4 s files each."""
    return write_styles(tmp_path_factory.mktemp("genres"), 5, 4.0)


@pytest.fixture(scope="module")
def mtat(tmp_path_factory):
    """A MagnaTagATune-shaped folder: annotations_final.csv and mp3 clips, three tags, six songs of two clips."""
    root = tmp_path_factory.mktemp("mtat")
    tags = ["dark", "bright", "loud"]
    rows = ["clip_id\t" + "\t".join(tags) + "\tmp3_path"]
    tracks = synth_catalog(12, duration=4.0, sr=SR, seed=5)
    for i, t in enumerate(tracks):
        kind = ("dark", "bright", "plain")[i % 3]
        rel = f"{i % 2}/artist-album-{i // 2:02d}-song-{(i % 2) * 30}-{(i % 2) * 30 + 29}.mp3"
        (root / rel).parent.mkdir(exist_ok=True)
        audio.write(root / rel, timbre(t.audio, kind), SR)
        flags = [int(kind == "dark"), int(kind == "bright"), int(i % 2 == 0)]
        rows.append(f"{i}\t" + "\t".join(map(str, flags)) + f"\t{rel}")
    (root / "annotations_final.csv").write_text("\n".join(rows) + "\n")
    return root


def settings(tmp_path, **kw) -> TrainSettings:
    base = dict(
        kind="genre",
        data=f"folder:{kw.pop('data')}",
        out=str(tmp_path / "run"),
        window=2.0,
        model_options=dict(TINY_CRNN),
        epochs=2,
        batch_size=4,
        loader_workers=0,
        patience=5,
        cache=str(tmp_path / "cache"),
    )
    base.update(kw)
    return TrainSettings(**base)


def quiet(_msg):
    pass


@pytest.mark.slow
def test_genre_training_exports_a_checkpoint_folder_with_summary_logs_and_curves(genres, tmp_path):
    summary = train(settings(tmp_path, data=genres), say=quiet)
    run = tmp_path / "run"
    for name in (
        "config.json",
        "model.safetensors",
        "summary.json",
        "training-curves.png",
        "lightning/last.ckpt",
        "logs/run-1/metrics.csv",
    ):
        assert (run / name).exists(), name
    assert summary["epochs_run"] == 2 and summary["monitor"] == "val_balanced_accuracy"
    assert summary["dataset"]["split_source"].startswith("deterministic") and 0 <= summary["best"] <= 1
    model, config = checkpoint.load(run)
    assert config["labels"] == ["bright", "dark", "plain"] and config["task"] == "single-label"
    assert config["data"]["spec"] == f"folder:{genres}" and config["window_seconds"] == 2.0
    x = np.zeros((1, model.spec.samples(2.0)), np.float32)
    assert model(__import__("torch").from_numpy(x)).shape == (1, 3)


def test_evaluate_reports_accuracy_balanced_accuracy_and_a_confusion_matrix(genres, tmp_path):
    train(settings(tmp_path, data=genres), say=quiet)
    result = evaluate_run(tmp_path / "run", cache=str(tmp_path / "cache"), say=quiet)
    assert result["items"] == 3 and set(result["per_class_recall"]) == {"bright", "dark", "plain"}
    assert np.array(result["confusion"]).sum() == 3
    assert (tmp_path / "run" / "eval" / "test" / "confusion-matrix.png").exists()
    assert (
        json.loads((tmp_path / "run" / "eval" / "test" / "metrics.json").read_text())["accuracy"] == result["accuracy"]
    )


def test_the_same_seed_trains_the_same_model(genres, tmp_path):
    a = train(settings(tmp_path / "a", data=genres, out=str(tmp_path / "a" / "run")), say=quiet)
    b = train(settings(tmp_path / "b", data=genres, out=str(tmp_path / "b" / "run")), say=quiet)
    wa = (tmp_path / "a" / "run" / "model.safetensors").read_bytes()
    assert wa == (tmp_path / "b" / "run" / "model.safetensors").read_bytes() and a["best"] == b["best"]


def test_an_interrupted_run_resumes_where_it_stopped(genres, tmp_path):
    train(settings(tmp_path, data=genres, epochs=1), say=quiet)
    with pytest.raises(UsageError, match="already holds a run: --resume"):
        train(settings(tmp_path, data=genres, epochs=2), say=quiet)
    summary = train(settings(tmp_path, data=genres, epochs=2, resume=True), say=quiet)
    assert summary["epochs_run"] == 2 and (tmp_path / "run" / "logs" / "run-2" / "metrics.csv").exists()
    with pytest.raises(UsageError, match="nothing to resume"):
        train(settings(tmp_path, data=genres, out=str(tmp_path / "elsewhere"), resume=True), say=quiet)


def test_the_resume_checkpoint_is_the_last_epoch_even_when_an_earlier_one_was_best(genres, tmp_path):
    import torch

    summary = train(settings(tmp_path, data=genres, epochs=3, lr=0.0), say=quiet)  # nothing learned: epoch 1 stays best
    assert summary["epochs_run"] == 3 and summary["best_epoch"] == 1
    saved = torch.load(tmp_path / "run" / "lightning" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["epoch"] == 2  # the third epoch, counted from 0


def test_items_shorter_than_the_window_are_repeated_to_fill_it_and_the_log_says_so(genres, tmp_path):
    said = []
    summary = train(settings(tmp_path, data=genres, window=5.0, epochs=1), say=said.append)
    assert summary["epochs_run"] >= 1
    line = next(line for line in said if "shorter than the 5 s window" in line)
    assert line.startswith("12 item(s)")  # every 4 s file of train (9) and valid (3)


def test_files_that_cannot_be_decoded_are_left_out_and_named(genres, tmp_path):
    import shutil

    data = shutil.copytree(genres, tmp_path / "data")
    (data / "dark" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    seed = next(
        seed
        for seed in range(20)  # a split that puts the broken file where training reads it
        if any(i.path.name == "broken.wav" for i in open_dataset(f"folder:{data}", seed=seed).splits["train"])
    )
    said = []
    summary = train(settings(tmp_path, data=data, data_options={"seed": seed}), say=said.append)
    assert [x["path"] for x in summary["left_out"]] == [str(data / "dark" / "broken.wav")]
    assert any(line.startswith("left out") and "broken.wav" in line for line in said)


def test_tagger_trains_on_the_mtat_layout_and_reports_macro_auc(mtat, tmp_path):
    summary = train(
        TrainSettings(
            kind="tagger",
            data=f"mtat:{mtat}",
            out=str(tmp_path / "fcn"),
            window=1.0,
            model_options={"width": 0.02},
            epochs=2,
            batch_size=4,
            loader_workers=0,
            cache=str(tmp_path / "cache"),
        ),
        say=quiet,
    )
    assert summary["task"] == "multi-label" and summary["monitor"] == "val_roc_auc"
    result = evaluate_run(tmp_path / "fcn", cache=str(tmp_path / "cache"), say=quiet)
    assert 0.0 <= result["roc_auc"] <= 1.0 or result["tags_without_both_classes"]


def test_a_tagger_refuses_single_label_data_and_evaluate_refuses_embedding_models(genres, tmp_path):
    with pytest.raises(UsageError, match="a tagger learns tags"):
        train(settings(tmp_path, data=genres, kind="tagger"), say=quiet)
    train(
        TrainSettings(
            kind="triplet",
            data=f"folder:{genres}",
            out=str(tmp_path / "t2v"),
            window=1.0,
            model_options={"width": 0.05, "dim": 8},
            epochs=1,
            batch_size=4,
            loader_workers=0,
            cache=str(tmp_path / "cache"),
        ),
        say=quiet,
    )
    model, config = checkpoint.load(tmp_path / "t2v")
    assert config["task"] == "triplet" and model.embedding_dim == 8
    with pytest.raises(UsageError, match="with --labels KIND:PATH"):
        evaluate_run(tmp_path / "t2v", say=quiet)


def test_cli_train_and_evaluate(genres, tmp_path, capsys):
    out, cache = str(tmp_path / "run"), str(tmp_path / "cache")
    code = main(
        [
            "train",
            "genre",
            "--data",
            f"folder:{genres}",
            "--out",
            out,
            "--window",
            "2",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--loader-workers",
            "0",
            "--model-option",
            "channels=[4,8]",
            "--model-option",
            "hidden=8",
            "--cache",
            cache,
        ]
    )
    assert code == 0 and "best val_balanced_accuracy" in capsys.readouterr().out
    assert main(["evaluate", "model", out, "--cache", cache, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 3
    assert main(["train", "genre", "--data", f"folder:{tmp_path / 'none'}", "--out", str(tmp_path / "x")]) == 1
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.slow
def test_a_separable_generated_task_is_learned_well_above_chance(tmp_path):
    """Three "styles" told apart by spectral tilt: dark (low-passed), bright (high-passed), plain."""
    data = write_styles(tmp_path / "styles", 20, 2.5)
    summary = train(settings(tmp_path, data=data, epochs=6, batch_size=8, patience=6), say=quiet)
    result = evaluate_run(tmp_path / "run", cache=str(tmp_path / "cache"), say=quiet)
    assert summary["best"] >= 0.8  # balanced accuracy on the 6 validation files; chance is 1/3
    assert result["items"] == 6 and result["accuracy"] >= 0.5


def test_a_class_with_no_example_in_the_split_has_no_recall_rather_than_zero():
    from tuneseek.train.metrics import classification

    scores = np.array([[0.9, 0.1, 0.0], [0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
    result = classification(np.array([0, 0, 1, 1]), scores, labels=["a", "b", "c"])
    assert result["per_class_recall"] == {"a": 1.0, "b": 0.5, "c": None}
    assert result["classes_without_examples"] == ["c"] and result["balanced_accuracy"] == 0.75
