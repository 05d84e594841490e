"""Fine-tuning the pretrained musicnn (``TrainSettings(pretrained="musicnn")``) on tiny generated datasets.

The pretrained weights are the stand-in wheel's random ones (``standin_models``): these tests check
that they are copied in, which layers learn at which rate, that the run folder is used like any
other (tags, evaluation) without the wheel, and the errors; not what the network learns.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import soundfile as sf
import torch

from training_data import SR, timbre, write_styles
from tuneseek.embed.weights import load_musicnn
from tuneseek.errors import ModelError, UsageError
from tuneseek.evaluate.trained import evaluate_run
from tuneseek.features import musicnn_logmel
from tuneseek.library import Library
from tuneseek.models import checkpoint
from tuneseek.models.frontend import LogMel, MelSpec
from tuneseek.models.musicnn_tune import FRONTEND_LAYERS, MUSICNN_SPEC, MUSICNN_WINDOW_SECONDS, MusicnnTune
from tuneseek.models.registry import build
from tuneseek.synth import synth_catalog
from tuneseek.train.run import TrainSettings, check_settings, train


def quiet(_msg):
    pass


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def styles(tmp_path_factory):
    """One folder per style, five 4 s files each (9 train, 3 valid, 3 test items)."""
    return write_styles(tmp_path_factory.mktemp("styles"), 5, 4.0)


@pytest.fixture(scope="module", autouse=True)
def standin(models):
    """The stand-in musicnn's state dict, as the trainer reads it."""
    net, _ = load_musicnn("mtt")
    return {name: t.clone() for name, t in net.state_dict().items()}


def settings(tmp_path, data, **kw) -> TrainSettings:
    """A one-epoch fine-tune of ``data`` (a spec, or a folder) with a frozen front end into ``tmp_path/run``."""
    base = dict(
        kind="classifier",
        data=data if ":" in str(data) else f"folder:{data}",
        out=str(tmp_path / "run"),
        pretrained="musicnn",
        frontend_lr_scale=0.0,
        epochs=1,
        batch_size=4,
        windows_per_item=1,
        loader_workers=0,
        cache=str(tmp_path / "cache"),
    )
    return TrainSettings(**{**base, **kw})


def weights(run) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(run / checkpoint.WEIGHTS_FILE)


def frontend_equal(saved: dict[str, torch.Tensor], standin: dict[str, torch.Tensor]) -> bool:
    names = [n for n in standin if n.split(".")[0] in FRONTEND_LAYERS]
    return len(names) == 34 and all(torch.equal(saved[f"net.{n}"], standin[n]) for n in names)


# --------------------------------------------------------------------------- the network


def test_its_log_mel_is_musicnns_input():
    """LogMel with MUSICNN_SPEC (zero-padded centred frames) gives features.musicnn_logmel, which rounds the
    mel power to float16 (a log10 step of at most 2.2e-4); reflect padding would change the edge frames."""
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 0.05, t.size)).astype(np.float32)
    ours = LogMel(MUSICNN_SPEC)(torch.from_numpy(x)[None])[0].T.numpy()
    reference = musicnn_logmel(x)
    assert ours.shape == reference.shape == (188, 96)
    np.testing.assert_allclose(ours, reference, atol=3e-4, rtol=0)
    reflect = LogMel(MelSpec(**{**MUSICNN_SPEC.to_dict(), "pad_mode": "reflect"}))(torch.from_numpy(x)[None])
    assert np.abs(reflect[0].T.numpy()[0] - reference[0]).max() > 1e-2
    assert MUSICNN_SPEC.frames(MUSICNN_WINDOW_SECONDS) == 187  # musicnn's training patch


def test_with_the_pretrained_weights_it_gives_musicnns_penultimate_layer(standin):
    from tuneseek.models.musicnn import Musicnn

    net = Musicnn()
    net.load_state_dict(standin)
    torch.manual_seed(0)
    model = MusicnnTune(n_outputs=3)
    model.load_pretrained(standin)
    x = torch.from_numpy(np.random.default_rng(1).normal(0, 0.1, (2, 47616)).astype(np.float32))
    model.eval()
    with torch.inference_mode():
        fast = model.embed(x)
        reference = net(torch.from_numpy(np.stack([musicnn_logmel(a) for a in x.numpy()]))).penultimate
    torch.testing.assert_close(fast, reference, atol=2e-3, rtol=1e-3)  # float16 rounding of musicnn_logmel
    # while the front end trains, it runs layer by layer (differentiable): the same numbers
    with torch.enable_grad():
        slow = model.embed(x)
    assert slow.requires_grad and model.net.timbral74.conv.weight.requires_grad
    torch.testing.assert_close(slow.detach(), fast, atol=1e-4, rtol=1e-4)
    slow.sum().backward()
    assert model.net.timbral74.conv.weight.grad is not None
    assert model(x).shape == (2, 3) and model.embedding_dim == 200
    with pytest.raises(UsageError, match="its own log-mel input"):
        MusicnnTune(n_outputs=3, spec=MelSpec(sample_rate=12000, n_mels=96))


def test_param_groups_put_the_front_end_at_a_lower_rate_and_freezing_leaves_it_out():
    model = MusicnnTune(n_outputs=4)
    head, front = model.param_groups(1e-3, frontend_lr_scale=0.1)
    assert head["lr"] == 1e-3 and front["lr"] == pytest.approx(1e-4)
    assert len(front["params"]) == 22  # input batch norm (2) + five branches of conv and batch norm (4 each)
    assert sum(p.numel() for p in head["params"]) + sum(p.numel() for p in front["params"]) == sum(
        p.numel() for p in model.parameters()
    )
    assert any(p is model.output.weight for p in head["params"])
    model.freeze_frontend()
    assert [g["name"] for g in model.param_groups(1e-3, frontend_lr_scale=0.1)] == ["head"]
    triplet = MusicnnTune()
    assert triplet.output is None and triplet.config()["kwargs"]["n_outputs"] is None
    for original in (model, triplet):  # rebuilt from its config.json, as a saved run is
        rebuilt = build(json.loads(json.dumps(original.config())))
        assert rebuilt.config() == original.config()
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
            k: v.shape for k, v in original.state_dict().items()
        }
    with pytest.raises(ValueError, match="use embed"):
        triplet(torch.zeros(1, 16000))


def test_settings_that_do_not_fit_fine_tuning_are_refused(tmp_path):
    def check(**kw):
        check_settings(TrainSettings(kind="genre", data="folder:x", out=str(tmp_path), **kw))

    with pytest.raises(UsageError, match="not --arch fcn"):
        check(pretrained="musicnn", arch="fcn")
    with pytest.raises(UsageError, match="--from musicnn"):
        check(arch="musicnn")
    with pytest.raises(UsageError, match="front end's learning-rate scale is for fine-tuning"):
        check(frontend_lr_scale=0.1)
    with pytest.raises(UsageError, match="unknown pretrained network 'vggish'"):
        check(pretrained="vggish")
    with pytest.raises(UsageError, match="0 \\(frozen\\) or more"):
        check(pretrained="musicnn", frontend_lr_scale=-1)


def test_without_the_pretrained_weights_one_line_says_what_is_missing(styles, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESEEK_MODELS", str(tmp_path / "no-models"))
    with pytest.raises(ModelError, match="musicnn mtt weights are not converted yet") as e:
        train(settings(tmp_path, styles), say=quiet)
    assert "\n" not in str(e.value) and not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- runs


@pytest.mark.slow
def test_a_frozen_front_end_fine_tune_copies_the_weights_in_and_makes_a_usable_run(
    styles, standin, tmp_path, monkeypatch
):
    summary = train(settings(tmp_path, styles), say=quiet)
    run = tmp_path / "run"
    assert summary["task"] == "single-label" and summary["pretrained"]["name"] == "musicnn-mtt"
    assert summary["settings"]["arch"] is None and summary["settings"]["lr"] == 3e-4  # chosen for a pretrained net
    saved = weights(run)
    assert frontend_equal(saved, standin)  # copied in, and frozen
    assert not torch.equal(saved["net.dense.weight"], standin["dense.weight"])  # the back end learned
    assert saved["output.weight"].shape == (3, 200) and "net.output.weight" not in saved
    _, config = checkpoint.load(run)
    assert config["architecture"] == "musicnn" and config["pretrained"]["version"].startswith("musicnn-mtt/")

    # resumed, it goes on from its own checkpoint
    resumed = train(settings(tmp_path, styles, epochs=2, resume=True), say=quiet)
    assert resumed["epochs_run"] == 2 and frontend_equal(weights(run), standin)

    # used without any musicnn weights at hand
    monkeypatch.setenv("TUNESEEK_MODELS", str(tmp_path / "no-models"))
    tags = Library.tag_file(next((styles / "dark").glob("*.wav")), model=str(run))
    assert list(tags.labels) == ["bright", "dark", "plain"] and tags.probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert tags.times.tolist() == [0.0]  # one 2.976 s window in 4 s of audio
    result = evaluate_run(run, crops=2, cache=str(tmp_path / "cache"), say=quiet)
    assert result["items"] == 3 and result["windows_per_item"] == 2


@pytest.mark.slow
def test_a_trained_front_end_learns_at_the_lower_rate(styles, standin, tmp_path):
    summary = train(settings(tmp_path, styles, kind="genre", frontend_lr_scale=0.1, lr=1e-3, window=1.0), say=quiet)
    assert summary["settings"]["frontend_lr_scale"] == 0.1 and "frontend_lr_scale" not in summary["chosen"]
    state = torch.load(tmp_path / "run" / "lightning" / "last.ckpt", map_location="cpu", weights_only=False)
    groups = state["optimizer_states"][0]["param_groups"]
    assert sorted((g["name"], g["lr"]) for g in groups) == [("frontend", pytest.approx(1e-4)), ("head", 1e-3)]
    saved = weights(tmp_path / "run")
    assert not frontend_equal(saved, standin)
    change = (saved["net.timbral74.conv.weight"] - standin["timbral74.conv.weight"]).abs().max()
    assert 0 < change < 1e-3  # a few steps at 1e-4 (Adam moves a weight by about the rate per step)


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """A MagnaTagATune-shaped folder of twelve 4 s clips with three tags (multi-label)."""
    root = tmp_path_factory.mktemp("mtat")
    rows = ["clip_id\tdark\tbright\tloud\tmp3_path"]
    for i, t in enumerate(synth_catalog(12, duration=4.0, sr=SR, seed=5)):
        kind = ("dark", "bright", "plain")[i % 3]
        rel = f"{i % 2}/artist-album-{i // 2:02d}-song-{(i % 2) * 30}-{(i % 2) * 30 + 29}.wav"
        (root / rel).parent.mkdir(exist_ok=True)
        sf.write(root / rel, timbre(t.audio, kind), SR)
        rows.append(f"{i}\t{int(kind == 'dark')}\t{int(kind == 'bright')}\t{int(i % 2 == 0)}\t{rel}")
    (root / "annotations_final.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.slow
def test_multi_label_data_fine_tunes_a_tagger(tagged, tmp_path):
    summary = train(settings(tmp_path, f"mtat:{tagged}"), say=quiet)
    assert summary["task"] == "multi-label" and summary["monitor"] == "val_roc_auc"
    _, config = checkpoint.load(tmp_path / "run")
    assert sorted(config["labels"]) == ["bright", "dark", "loud"] and config["kwargs"]["n_outputs"] == 3
    result = evaluate_run(tmp_path / "run", crops=1, cache=str(tmp_path / "cache"), say=quiet)
    assert "roc_auc" in result


@pytest.mark.slow
def test_triplet_embeddings_start_from_musicnn(styles, standin, tmp_path):
    summary = train(settings(tmp_path, styles, kind="triplet"), say=quiet)
    assert summary["task"] == "triplet"
    model, config = checkpoint.load(tmp_path / "run")
    assert config["kwargs"]["n_outputs"] is None and model.output is None and model.embedding_dim == 200
    assert frontend_equal(weights(tmp_path / "run"), standin)
    vectors = Library.embed_file(next((styles / "plain").glob("*.wav")), model=str(tmp_path / "run"))
    assert vectors.vectors.shape[1] == 200


def test_the_command_line_fine_tunes_with_a_frozen_front_end_on_the_cpu_and_says_what_it_chose(
    styles, standin, tmp_path, capsys
):
    from tuneseek.cli import main

    args = ["train", "classifier", "--data", f"folder:{styles}", "--from", "musicnn", "--fine-tune"]
    args += ["--out", str(tmp_path / "ft"), "--epochs", "1", "--batch-size", "4", "--loader-workers", "0"]
    assert main([*args, "--cache", str(tmp_path / "cache"), "--accelerator", "cpu"]) == 0
    said = capsys.readouterr().out
    assert "frontend_lr_scale 0" in said and "trained 1 epoch(s)" in said
    assert frontend_equal(weights(tmp_path / "ft"), standin)
    assert json.loads((tmp_path / "ft" / "summary.json").read_text())["settings"]["lr"] == 3e-4
