"""Probes on frozen features: ``train classifier --from musicnn`` (or ``--features``), then ``tag``, ``index --tagger``
and ``evaluate`` on the run folder, and what they refuse.

The musicnn here is the stand-in of random weights (conftest), so its features are checked for plumbing;
what a probe learns is checked on the rhythm and timbre descriptors, which need no weights.
"""

import json

import numpy as np
import pytest
import soundfile as sf

from training_data import SR, write_styles
from tuneseek.cli import main
from tuneseek.library import Library
from tuneseek.models import checkpoint


@pytest.fixture(scope="module")
def styles(tmp_path_factory):
    """Three timbre classes (low-passed, high-passed, as generated), eight 6 s songs each."""
    return write_styles(tmp_path_factory.mktemp("styles"), 8, 6.0)


def train_probe(data, out, *extra):
    return main(
        ["train", "classifier", "--data", f"folder:{data}", "--out", str(out), "--loader-workers", "1", "--folds", "3"]
        + ["--cache", str(out.parent / "cache"), *extra]
    )


def test_a_probe_on_timbre_features_tells_the_timbre_classes_apart(styles, tmp_path, capsys):
    assert train_probe(styles, tmp_path / "probe", "--features", "timbre") == 0
    said = capsys.readouterr().out
    assert "fitted a probe on timbre/" in said and "cross-validation on the training split" in said
    assert main(["evaluate", str(tmp_path / "probe"), "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "classifier" and result["items"] == 3
    assert result["accuracy"] == 1.0 and result["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert (tmp_path / "probe" / "eval" / "test" / "confusion-matrix.png").exists()


def test_the_probe_run_folder_holds_the_head_the_summary_and_the_cross_validation_curve(styles, tmp_path):
    assert train_probe(styles, tmp_path / "probe", "--features", "mfcc", "--pool", "mean,std") == 0
    run = tmp_path / "probe"
    for name in ("config.json", "model.safetensors", "summary.json", "training-curves.png"):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["kind"] == "probe" and summary["features"]["groups"] == ["mfcc"]
    cv = summary["cross_validation"]
    assert cv["chosen_C"] in [float(c) for c in cv["scores"]] and cv["folds"] == 3
    head, config = checkpoint.load(run)
    assert config["labels"] == ["bright", "dark", "plain"] and config["features"]["stats"] == ["mean", "std"]
    assert head.mean.shape == (40 * 2,)  # 20 MFCC means and 20 standard deviations, each pooled twice


def test_the_probe_is_fitted_on_the_training_split_alone(styles, tmp_path):
    """Replacing every valid and test file by noise leaves the fitted weights exactly as they were."""
    from tuneseek.data.datasets import open_dataset

    copy = tmp_path / "copy"
    for path in styles.rglob("*.wav"):
        (copy / path.relative_to(styles)).parent.mkdir(parents=True, exist_ok=True)
        (copy / path.relative_to(styles)).write_bytes(path.read_bytes())
    assert train_probe(copy, tmp_path / "first", "--features", "timbre") == 0
    ds = open_dataset(f"folder:{copy}")
    rng = np.random.default_rng(0)
    for item in ds.splits["valid"] + ds.splits["test"]:
        sf.write(item.path, 0.1 * rng.standard_normal(6 * SR).astype(np.float32), SR)
    assert train_probe(copy, tmp_path / "second", "--features", "timbre") == 0
    assert checkpoint.weights_digest(tmp_path / "first") == checkpoint.weights_digest(tmp_path / "second")


def test_a_probe_from_musicnn_tags_files_and_tags_the_library_as_its_tagger(styles, tmp_path, with_models, capsys):
    assert train_probe(styles, tmp_path / "clf", "--from", "musicnn") == 0
    summary = json.loads((tmp_path / "clf" / "summary.json").read_text())
    assert summary["features"]["groups"] == ["musicnn", "rhythm", "timbre"]
    capsys.readouterr()
    song = next(styles.glob("dark/*.wav"))
    assert main(["tag", "--model", str(tmp_path / "clf"), str(song), "--json"]) == 0
    tags = json.loads(capsys.readouterr().out.splitlines()[0])
    assert set(tags["tags"]) == {"bright", "dark", "plain"} and abs(sum(tags["tags"].values()) - 1) < 1e-4
    with Library.open(tmp_path / "lib", create=True) as lib:
        assert lib.use_model(tmp_path / "clf", role="tagger") == "tags:clf"
        lib.add([song], workers=1)
        stored = lib.tags(str(song))["clf"]
    assert stored.labels == ("bright", "dark", "plain") and abs(float(stored.probs.sum()) - 1) < 1e-4


def test_unreadable_silent_and_too_short_files_are_left_out_each_with_its_reason(styles, tmp_path, capsys):
    data = tmp_path / "data"
    for path in styles.rglob("*.wav"):
        (data / path.relative_to(styles)).parent.mkdir(parents=True, exist_ok=True)
        (data / path.relative_to(styles)).write_bytes(path.read_bytes())
    (data / "dark" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    sf.write(data / "dark" / "silent.wav", np.zeros(4 * SR, np.float32), SR)
    sf.write(data / "dark" / "short.wav", 0.1 * np.ones(SR, np.float32), SR)
    assert train_probe(data, tmp_path / "probe", "--features", "timbre") == 0
    said = capsys.readouterr().out
    summary = json.loads((tmp_path / "probe" / "summary.json").read_text())
    reasons = {p.rsplit("/", 1)[1]: r for p, r in ((x["path"], x["reason"]) for x in summary["left_out"])}
    in_train_or_valid = {"broken.wav", "silent.wav", "short.wav"} & set(reasons)
    for name in in_train_or_valid:
        assert f"left out {data / 'dark' / name}: {reasons[name]}" in said
    if "silent.wav" in reasons:
        assert reasons["silent.wav"] == "silent"
    if "short.wav" in reasons:
        assert "shorter than the 3 s a probe needs" in reasons["short.wav"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fine-tune"], "--fine-tune needs --from musicnn"),
        (["--features", "loudness"], "unknown feature group(s) loudness"),
        (["--features", "mfcc", "--pool", "median"], "unknown pooling statistic(s) median"),
        (["--from", "musicnn", "--fine-tune", "--features", "mfcc"], "--features and --pool are for a probe"),
    ],
)
def test_probe_options_that_do_not_fit_are_refused_in_one_line(styles, tmp_path, capsys, args, message):
    assert train_probe(styles, tmp_path / "probe", *args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_probe_is_refused_as_an_embedder_and_on_data_with_labels_it_does_not_know(styles, tmp_path, capsys):
    assert train_probe(styles, tmp_path / "probe", "--features", "timbre") == 0
    with Library.open(tmp_path / "lib", create=True) as lib, pytest.raises(Exception, match="is a probe"):
        lib.use_model(tmp_path / "probe", role="embedder")
    other = write_styles(tmp_path / "other", 3, 4.0)
    (other / "plain").rename(other / "jazz")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "probe"), "--data", f"folder:{other}"]) == 1
    assert "jazz" in capsys.readouterr().err


def test_evaluate_scores_another_dataset_labelled_the_same_way(styles, tmp_path, capsys):
    assert train_probe(styles, tmp_path / "probe", "--features", "timbre") == 0
    other = write_styles(tmp_path / "other", 3, 4.0)
    capsys.readouterr()
    assert main(["evaluate", "model", str(tmp_path / "probe"), "--data", f"folder:{other}", "--split", "train"]) == 0
    said = capsys.readouterr().out
    assert f"train split of folder:{other}" in said and "confusion matrix" in said
    assert (tmp_path / "probe" / "eval" / "other-train" / "metrics.json").exists()
