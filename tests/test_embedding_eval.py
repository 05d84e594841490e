"""Evaluating self-supervised embeddings against labels: the metrics, the map page, and the whole run.

The metrics are checked on vectors whose answer is known (separable clusters score near 1,
shuffled labels near chance); the end-to-end tests use a tiny untrained ResNet-18 saved as a
triplet run, so they check the machinery (splits, files, refusals), not what a model learns.
"""

import json
import re

import numpy as np
import pytest
import soundfile as sf

from training_data import SR, save_run, write_styles
from tuneseek.data.datasets import open_dataset
from tuneseek.errors import UsageError
from tuneseek.evaluate.embedding_map import clock, write_html
from tuneseek.evaluate.embeddings import evaluate_embeddings, format_embedding_table
from tuneseek.synth import synth_catalog
from tuneseek.train.metrics import embedding

LABELS = ["a", "b", "c", "d"]


def clusters(per_class: int, seed: int, spread: float = 1.0):
    """Four Gaussian clusters in 16-d, the centres the same for every call, ``spread`` their width."""
    centres = np.random.default_rng(0).normal(size=(4, 16)) * 4
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), per_class)
    return centres[y] + spread * rng.normal(size=(len(y), 16)), y


def test_separated_clusters_score_near_one_everywhere():
    (train_x, train_y), (test_x, test_y) = clusters(30, 1), clusters(15, 2)
    m = embedding(train_x, train_y, test_x, test_y, labels=LABELS)
    assert m["linear_probe"]["accuracy"] >= 0.95 and m["linear_probe"]["macro_f1"] >= 0.95
    assert m["kmeans"]["k"] == 4 and m["kmeans"]["purity"] >= 0.95 and m["kmeans"]["nmi"] >= 0.9
    assert m["kmeans"]["ari"] >= 0.9 and m["knn"]["precision_at_k"] >= 0.95 and m["knn"]["k"] == 5
    assert m["linear_probe"]["majority_class_accuracy"] == 0.25 and abs(m["knn"]["chance"] - 14 / 59) < 1e-9
    assert set(m["linear_probe"]["per_class_f1"]) == set(LABELS)
    json.dumps(m)  # JSON-ready as it is


def test_shuffled_labels_score_near_chance():
    (train_x, train_y), (test_x, test_y) = clusters(30, 1), clusters(15, 2)
    rng = np.random.default_rng(3)
    m = embedding(train_x, rng.permutation(train_y), test_x, rng.permutation(test_y), labels=LABELS)
    assert m["linear_probe"]["accuracy"] < 0.5 and m["linear_probe"]["macro_f1"] < 0.5  # chance: 0.25
    assert m["kmeans"]["purity"] < 0.5 and m["kmeans"]["nmi"] < 0.2 and abs(m["kmeans"]["ari"]) < 0.1
    assert m["knn"]["precision_at_k"] < 0.45


def test_knn_k_is_clipped_to_the_smallest_class_and_lone_items_are_not_queries():
    (train_x, train_y), (test_x, test_y) = clusters(10, 1), clusters(10, 2)
    keep = np.r_[np.arange(20), 20, 21, 22, 30]  # c keeps 3 test items (2 neighbours of its own at most), d one
    m = embedding(train_x, train_y, test_x[keep], test_y[keep], labels=LABELS, k=5)
    assert m["knn"]["k"] == 2 and m["knn"]["k_asked"] == 5 and m["knn"]["precision_at_k"] >= 0.95
    assert m["knn"]["queries"] == 23 and m["knn"]["items"] == 24
    assert m["test_items_per_class"] == {"a": 10, "b": 10, "c": 3, "d": 1}
    alone = embedding(train_x, train_y, test_x[[0, 10]], test_y[[0, 10]], labels=LABELS)["knn"]
    assert alone["queries"] == 0 and alone["precision_at_k"] is None and alone["k"] is None
    with pytest.raises(ValueError, match="two classes"):
        embedding(train_x, np.zeros_like(train_y), test_x, test_y, labels=LABELS)


def test_the_map_page_is_self_contained_and_escapes_hostile_names(tmp_path):
    xy = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 1.0]])
    tracks = ["</script><b>x", "</script><b>x", "plain.wav"]
    labels = ["<i>rock</i>", "r&b"]
    path = write_html(
        tmp_path / "map.html",
        xy=xy,
        classes=np.array([0, 0, 1]),
        labels=labels,
        tracks=tracks,
        seconds=[0.0, 83.4, 5.0],
        title="run </title><b>",
        caption="caption <x>",
    )
    page = path.read_text(encoding="utf-8")
    assert page.count("</script>") == 1 and page.count("<script>") == 1  # our own script element only
    assert "<b>" not in page and "<i>" not in page and "&lt;i&gt;rock&lt;/i&gt;" in page and "r&amp;b" in page
    assert not re.search(r"https?:|\bsrc=|<link|@import|url\(", page)  # nothing to fetch
    data = json.loads(re.search(r"const data = (.*?);\n", page).group(1))
    assert data["tracks"] == ["</script><b>x", "plain.wav"] and data["labels"] == labels
    assert data["points"] == [[0, 0, "0:00.0"], [0, 0, "1:23.4"], [1, 1, "0:05.0"]]
    assert page.count("<circle") == 3


def test_clock():
    assert [clock(s) for s in (0, 5.04, 83.4, 59.96, 3600)] == ["0:00.0", "0:05.0", "1:23.4", "1:00.0", "60:00.0"]


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def genres(tmp_path_factory):
    """One folder per class, fifteen 2 s files each: 11 train, 2 valid, 2 test per class."""
    return write_styles(tmp_path_factory.mktemp("genres"), 15, 2.0)


@pytest.fixture(scope="module")
def t2v(tmp_path_factory):
    return save_run(
        tmp_path_factory.mktemp("t2v") / "run", "resnet18", "triplet", window_seconds=1.0, width=0.05, dim=8
    )


def quiet(_msg):
    pass


def test_evaluate_embeddings_writes_metrics_and_both_maps(genres, t2v, tmp_path):
    said = []
    result = evaluate_embeddings(t2v, f"folder:{genres}", crops=3, cache=str(tmp_path / "cache"), say=said.append)
    folder = t2v / "eval" / genres.name
    assert result["files"] == {
        "metrics": str(folder / "metrics.json"),
        "map_png": str(folder / "embedding-map.png"),
        "map_html": str(folder / "embedding-map.html"),
    }
    assert json.loads((folder / "metrics.json").read_text()) == json.loads(json.dumps(result))
    assert (folder / "embedding-map.png").stat().st_size > 1000
    assert result["classes"] == ["bright", "dark", "plain"] and result["notes"] == [] and result["left_out"] == []
    assert result["splits"]["train"]["items"] == 33 and result["splits"]["test"]["items"] == 6
    probe = result["linear_probe"]
    assert probe["fit_split"] == "train" and probe["scored_split"] == "test" and probe["train_items"] == 33
    assert result["kmeans"]["split"] == result["knn"]["split"] == "test"
    assert result["knn"]["k"] == 1 and result["knn"]["queries"] == 6  # two test items a class: one neighbour each
    for value in (
        probe["accuracy"],
        probe["macro_f1"],
        result["kmeans"]["purity"],
        result["kmeans"]["nmi"],
        result["knn"]["precision_at_k"],
    ):
        assert 0.0 <= value <= 1.0
    assert -1.0 <= result["kmeans"]["ari"] <= 1.0
    # 2 s items, 1 s windows, 3 crops: windows at 0, 0.5 and 1 s of each of the 6 test tracks
    assert result["map"] == {"method": "tsne", "split": "test", "points": 18, "windows": 18}
    page = (folder / "embedding-map.html").read_text()
    data = json.loads(re.search(r"const data = (.*?);\n", page).group(1))
    assert sorted({p[2] for p in data["points"]}) == ["0:00.0", "0:00.5", "0:01.0"]
    assert {data["tracks"][p[1]].split("/")[0] == data["labels"][p[0]] for p in data["points"]} == {True}
    assert any(line.startswith("embedding 33 train and 6 test items") for line in said)
    table = format_embedding_table(result)
    assert "fitted on train (33 items), scored on test (6 items)" in table and "k clipped from 5" in table
    assert f"written: {folder}" in table


def test_an_embedding_is_scored_against_a_chosen_column_of_a_table_and_its_own_split(genres, t2v, tmp_path):
    rows = ["path,style,split"]
    for label in ("bright", "dark", "plain"):
        rows += [
            f"{label}/{label}{i}.wav,{label},{'test' if i < 4 else 'valid' if i < 5 else 'train'}" for i in range(15)
        ]
    (genres / "labels.csv").write_text("\n".join(rows) + "\n")
    try:
        result = evaluate_embeddings(
            t2v, f"csv:{genres / 'labels.csv'}", labels_options={"label": "style"}, crops=1, map_method="pca", say=quiet
        )
    finally:
        (genres / "labels.csv").unlink()
    assert result["classes"] == ["bright", "dark", "plain"]
    assert result["splits"]["train"]["items"] == 30 and result["splits"]["test"]["items"] == 12


def test_a_tagger_run_is_scored_by_its_penultimate_layer(genres, tmp_path):
    tagger = save_run(
        tmp_path / "fcn", "fcn", "multi-label", ("x", "y", "z"), window_seconds=1.0, n_outputs=3, width=0.02
    )
    result = evaluate_embeddings(tagger, f"folder:{genres}", crops=2, map_method="pca", say=quiet)
    assert result["task"] == "multi-label" and result["space"] == "fcn"
    assert (
        0.0 <= result["linear_probe"]["accuracy"] <= 1.0 and (tagger / "eval" / genres.name / "metrics.json").exists()
    )


def test_musicnn_layers_are_scored_as_spaces_of_their_own(tmp_path, with_models, monkeypatch):
    data = write_styles(tmp_path / "styles", 3, 4.0)  # musicnn needs 3 s: one 4 s song per class and split
    monkeypatch.chdir(tmp_path)
    result = evaluate_embeddings(
        "musicnn:pooled", f"folder:{data}", crops=2, cache=str(tmp_path / "cache"), map_method="pca", say=quiet
    )
    assert result["space"] == "musicnn:pooled" and result["task"] == "pretrained"
    assert result["map"]["windows"] == 3 * 1  # one 3 s window in each 4 s test song
    assert (tmp_path / "eval" / "musicnn-pooled" / "styles" / "metrics.json").exists()
    assert (
        evaluate_embeddings("musicnn", f"folder:{data}", cache=str(tmp_path / "cache"), map_method="pca", say=quiet)[
            "space"
        ]
        == "musicnn:penultimate"
    )
    with pytest.raises(UsageError, match="unknown musicnn layer 'tags'"):
        evaluate_embeddings("musicnn:tags", f"folder:{data}", say=quiet)


def test_a_run_without_vectors_and_unlabelled_data_are_refused(genres, t2v, tmp_path):
    from tuneseek.models import checkpoint
    from tuneseek.models.probe import ProbeHead

    probe = checkpoint.save(
        tmp_path / "probe",
        ProbeHead(4, 3),
        extra={"labels": ["a", "b", "c"], "task": "single-label", "features": {"groups": ["mfcc"], "stats": ["mean"]}},
    )
    with pytest.raises(UsageError, match="holds a single-label model: it gives no vectors to score"):
        evaluate_embeddings(probe, f"folder:{genres}", say=quiet)
    loose = tmp_path / "loose"
    loose.mkdir()
    for i, t in enumerate(synth_catalog(3, duration=1.0, sr=SR, seed=7)):
        sf.write(loose / f"{i}.wav", t.audio, SR)
    with pytest.raises(UsageError, match="has no labels: embeddings are scored against one class per item"):
        evaluate_embeddings(t2v, f"folder:{loose}", say=quiet)
    with pytest.raises(UsageError, match="unknown map method"):
        evaluate_embeddings(t2v, f"folder:{genres}", map_method="umap", say=quiet)


def _break_the_file_of(root, label: str, split: str):
    """Make the one file of ``label`` in ``split`` (3 files a class: one per split) undecodable."""
    item = next(i for i in open_dataset(f"folder:{root}").splits[split] if i.labels == (label,))
    item.path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return item.path


def test_a_class_missing_from_a_split_is_left_out_and_named(t2v, tmp_path):
    root = write_styles(tmp_path / "small", 3, 1.5)
    broken = _break_the_file_of(root, "plain", "test")
    said = []
    result = evaluate_embeddings(
        t2v, f"folder:{root}", crops=2, cache=str(tmp_path / "cache"), say=said.append, map_method="pca"
    )
    assert result["classes"] == ["bright", "dark"] and result["left_out"][0]["path"] == str(broken)
    assert result["notes"] == ["class 'plain' left out: no usable item in the test split (1 train item(s) not used)"]
    assert result["notes"][0] in said and result["splits"]["train"]["items"] == 2
    assert "note           class 'plain' left out" in format_embedding_table(result)
    _break_the_file_of(root, "dark", "train")
    with pytest.raises(UsageError, match="fewer than two classes .* 'dark' left out: no usable item in the train"):
        evaluate_embeddings(t2v, f"folder:{root}", crops=2, cache=str(tmp_path / "cache2"), say=quiet)


def test_cli_evaluate_with_labels_prints_the_table_or_json(genres, t2v, tmp_path, capsys):
    from tuneseek.cli import main

    cache = str(tmp_path / "cache")
    assert (
        main(
            [
                "evaluate",
                "model",
                str(t2v),
                "--labels",
                f"folder:{genres}",
                "--map",
                "pca",
                "--crops",
                "2",
                "--cache",
                cache,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "linear probe" in out and "k-means, k=3" in out and "precision@1" in out
    assert (
        main(
            [
                "evaluate",
                "model",
                str(t2v),
                "--labels",
                f"folder:{genres}",
                "--map",
                "pca",
                "--crops",
                "2",
                "--cache",
                cache,
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["map"]["method"] == "pca" and result["windows_per_item"] == 2
    assert main(["evaluate", "model", str(t2v), "--cache", cache]) == 1
    assert "--labels KIND:PATH" in capsys.readouterr().err
