"""musicnn in PyTorch: parity with the original TensorFlow outputs, weight conversion and caching,
tagging and multi-scale embeddings, and the errors a person can meet on the way."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REAL_MODELS_DIR, REAL_WHEEL
from tfbundle_writer import fake_wheel, musicnn_tf_tensors
from tuneseek.embed import weights as W
from tuneseek.embed.musicnn_extractor import (
    PATCH_FRAMES,
    embed,
    prepare,
    run_windows,
    seconds_to_frames,
    tag,
    tag_over_time,
)
from tuneseek.errors import ModelError, UsageError
from tuneseek.features import musicnn_logmel
from tuneseek.models.musicnn import Musicnn

torch.set_num_threads(1)

FIXTURE = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "musicnn-reference.npz"
SR = 16000


# --------------------------------------------------------------------------- helpers


def random_model(seed: int = 0) -> Musicnn:
    """A musicnn with random weights (negative batch-norm scales included), via the TF converter."""
    state = W.tf_to_state_dict(musicnn_tf_tensors(seed))
    model = Musicnn()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return model


@pytest.fixture(scope="module")
def model() -> Musicnn:
    return random_model()


@pytest.fixture(scope="session")
def pretrained_dir(tmp_path_factory) -> Path:
    """A models directory holding the real converted musicnn weights, or skip.

    Looks for the wheel in $TUNESEEK_MUSICNN_WHEEL or the user's models directory (converting
    it into a temporary folder), else for weights already converted in that directory.
    Never downloads.
    """
    wheel = W.find_wheel(REAL_WHEEL, models_dir=REAL_MODELS_DIR)
    if wheel is not None:
        out = tmp_path_factory.mktemp("models")
        W.convert_wheel(wheel, models_dir=out)
        return out
    try:
        for name in W.MUSICNN_MODELS:
            W.read_converted(W.model_dir(name, models_dir=REAL_MODELS_DIR))
        return REAL_MODELS_DIR
    except ModelError:
        pytest.skip(
            "musicnn weights not available: set TUNESEEK_MUSICNN_WHEEL to musicnn-0.1.0-py3-none-any.whl "
            "(from `pip download --no-deps musicnn==0.1.0`) to run the parity tests"
        )


def reference():
    if not FIXTURE.exists():
        pytest.skip(f"musicnn reference fixture not found at {FIXTURE}")
    return np.load(FIXTURE)


def music(seconds: float, seed: int = 0) -> np.ndarray:
    """Deterministic test audio: decaying harmonic notes over a little noise, at 16 kHz."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    out = 0.01 * rng.standard_normal(n)
    for start in np.arange(0, seconds, 0.4):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        s = int(start * SR)
        tt = t[s : s + 2 * SR] - start  # each note rings for 2 s
        env = np.exp(-3 * tt)
        out[s : s + 2 * SR] += env * sum(0.2 / k * np.sin(2 * np.pi * k * f0 * tt) for k in (1, 2, 3))
    return out.astype(np.float32)


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("name", ["mtt", "msd"])
def test_parity_with_tensorflow(name, pretrained_dir):
    ref = reference()
    model, config = W.load_musicnn(name, models_dir=pretrained_dir, download=False)
    key = f"{name.upper()}_musicnn"
    x = torch.from_numpy(ref["logmel_patches"])
    with torch.inference_mode():
        for reference_path in (False, True):
            out = model(x, reference=reference_path)
            d = {
                k: np.abs(out[k].numpy() - ref[f"{key}/{k}"]) for k in ("prob", "penultimate", "max_pool", "mean_pool")
            }
            print(
                f"\n{key} ({'layer by layer' if reference_path else 'fast'}): "
                + ", ".join(f"max|d {k}| {v.max():.2e}" for k, v in d.items())
            )
            assert d["prob"].max() <= 1e-4
            assert d["penultimate"].max() <= 1e-3
            for k in ("max_pool", "mean_pool"):  # 753-d pooled layers reach ~100: relative bound
                assert (d[k] <= 1e-3 + 1e-5 * np.abs(ref[f"{key}/{k}"])).all()
    assert config["labels"] == list(W.MTT_LABELS if name == "mtt" else W.MSD_LABELS)
    assert config["preprocessing"]["patch_frames"] == 187 and config["source"]["wheel_sha256"] == W.MUSICNN_WHEEL_SHA256


def test_pretrained_tags_of_the_reference_audio(pretrained_dir):
    """The whole path from audio: musicnn_logmel -> patches -> mean probability per tag."""
    ref = reference()
    model, _ = W.load_musicnn("mtt", models_dir=pretrained_dir, download=False)
    times, probs = tag_over_time(ref["audio_16k"], model)
    np.testing.assert_allclose(times, np.arange(4) * 187 * 256 / SR)
    assert np.abs(probs - ref["MTT_musicnn/prob"]).max() <= 1e-4
    np.testing.assert_allclose(tag(ref["audio_16k"], model), ref["MTT_musicnn/prob"].mean(0), atol=1e-4)


# --------------------------------------------------------------------------- the network


def test_size_and_fast_path_equals_layer_by_layer(model):
    n_params = sum(p.numel() for p in model.parameters())
    n_buffers = sum(b.numel() for b in model.buffers())
    assert n_params + n_buffers == 792_079  # every float of the TF checkpoint, optimizer slots aside
    assert 0.78e6 < n_params < 0.80e6
    rng = np.random.default_rng(1)
    with torch.inference_mode():
        for frames in (1, 7, 31, 200):
            x = torch.from_numpy(rng.normal(1.0, 1.0, (2, frames, 96)).astype(np.float32))
            fast, slow = model(x), model(x, reference=True)
            for k in ("prob", "penultimate", "max_pool", "mean_pool"):
                assert fast[k].shape == slow[k].shape
                torch.testing.assert_close(fast[k], slow[k], rtol=1e-4, atol=1e-4)
            # a batch is the same as its patches one by one
            torch.testing.assert_close(model(x[1:]).penultimate, fast.penultimate[1:], rtol=1e-5, atol=1e-5)
    assert not model.training and not model.train().training
    with pytest.raises(ValueError, match="log-mel patches"):
        model(torch.zeros(2, 10, 95))


def test_bfloat16_option_stays_close(model):
    x = torch.from_numpy(np.random.default_rng(2).normal(1.0, 1.0, (2, 187, 96)).astype(np.float32))
    with torch.inference_mode():
        exact = model(x)
        model.gemm_dtype = torch.bfloat16
        try:
            fast = model(x)
        finally:
            model.gemm_dtype = torch.float32
    assert fast.prob.dtype == torch.float32
    assert (fast.prob - exact.prob).abs().max() < 0.05
    assert torch.nn.functional.cosine_similarity(fast.penultimate, exact.penultimate).min() > 0.99


# --------------------------------------------------------------------------- tags and embeddings


def test_embed_window_sizes_and_times(model):
    audio = music(10.0)
    features = musicnn_logmel(audio)  # 626 frames
    long = music(30.0)  # 1876 frames
    for window, frames, hop_frames, count, clip in (
        (0.5, 31, 16, 38, audio),
        (3.7, 231, 116, 4, audio),
        (29.0, 1812, 906, 1, long),
    ):
        assert seconds_to_frames(window) == frames
        times, vectors = embed(clip, model, window=window, features=features if clip is audio else None)
        assert vectors.shape == (count, 200) and vectors.dtype == np.float32
        np.testing.assert_allclose(times, np.arange(count) * hop_frames * 256 / SR)
        assert np.isfinite(vectors).all()
    assert seconds_to_frames(3.0) == PATCH_FRAMES
    # a window's vector is the network run on exactly that window's frames
    times, vectors = embed(audio, model, window=3.7, hop=1.0, layer="max_pool", features=features)
    assert len(times) == 7 and vectors.shape == (7, 753)
    k = 5
    start = int(round(times[k] * SR / 256))
    assert start == k * 62  # 1.0 s = 62.5 frames -> 62
    with torch.inference_mode():
        alone = model(torch.from_numpy(features[None, start : start + 231].copy())).max_pool[0].numpy()
    np.testing.assert_allclose(vectors[k], alone, rtol=1e-5, atol=1e-5)
    assert embed(audio, model, window=3.7, layer="mean_pool", features=features)[1].shape == (4, 753)


def test_deterministic(model):
    audio = music(8.0, seed=4)
    a = embed(audio, model, window=3.7)
    b = embed(audio, model, window=3.7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(tag(audio, model), tag(audio, model))


def test_short_clip_is_padded_by_repetition(model):
    audio = music(1.0, seed=2)
    times, vectors = embed(audio, model, window=3.7)
    assert times.tolist() == [0.0] and vectors.shape == (1, 200)
    repeated = np.resize(audio, (231 - 1) * 256)  # the clip end to end, 231 frames' worth
    with torch.inference_mode():
        direct = model(torch.from_numpy(musicnn_logmel(repeated)[None])).penultimate[0].numpy()
    np.testing.assert_allclose(vectors[0], direct, rtol=1e-5, atol=1e-5)
    assert prepare(audio, min_frames=187).shape == (187, 96)
    t, p = tag_over_time(audio, model)
    assert t.tolist() == [0.0] and p.shape == (1, 50)
    assert tag(audio, model).shape == (50,)


def test_tag_is_the_mean_over_non_overlapping_patches(model):
    audio = music(10.0, seed=5)  # 626 frames: 3 whole patches, the rest dropped as in musicnn
    times, probs = tag_over_time(audio, model)
    np.testing.assert_allclose(times, [0.0, 2.992, 5.984])
    np.testing.assert_allclose(tag(audio, model), probs.mean(0), rtol=1e-6)
    assert ((probs > 0) & (probs < 1)).all()


def test_silence_gives_finite_output(model):
    silence = np.zeros(5 * SR, np.float32)
    assert np.isfinite(tag(silence, model)).all()
    assert np.isfinite(embed(silence, model, window=0.5)[1]).all()


def test_bad_requests(model):
    audio = music(4.0)
    with pytest.raises(UsageError, match="too short to analyse"):
        tag(np.zeros(100, np.float32), model)
    with pytest.raises(UsageError, match="window of 0.4 s is too short"):
        embed(audio, model, window=0.4)
    with pytest.raises(UsageError, match="unknown embedding layer"):
        embed(audio, model, layer="logits")
    with pytest.raises(UsageError, match="hop must be"):
        embed(audio, model, hop=0)
    bad = audio.copy()
    bad[10] = np.nan
    with pytest.raises(UsageError, match="NaN"):
        tag(bad, model)
    with pytest.raises(UsageError, match="mono"):
        tag(np.zeros((SR, 2), np.float32), model)
    with pytest.raises(UsageError, match="do not belong"):
        tag(audio, model, features=np.zeros((5, 96), np.float32))
    with pytest.raises(UsageError, match="fewer than one"):
        run_windows(np.zeros((10, 96), np.float32), model, 31, 16)


# --------------------------------------------------------------------------- weights: convert, cache, load


def test_convert_and_load_round_trip(tmp_path):
    tensors = musicnn_tf_tensors(seed=3)
    wheel = tmp_path / W.MUSICNN_WHEEL_NAME
    wheel.write_bytes(fake_wheel(tensors))
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    models = tmp_path / "models"
    out = W.convert_wheel(wheel, models_dir=models, sha256=digest)
    assert set(out) == {"mtt", "msd"}
    assert sorted(p.name for p in (models / "musicnn-mtt").iterdir()) == ["config.json", "model.safetensors"]
    model, config = W.load_musicnn("msd", models_dir=models, download=False)
    assert (
        W.load_musicnn("msd", models_dir=models, download=False, precision="bfloat16")[0].gemm_dtype == torch.bfloat16
    )
    with pytest.raises(ModelError, match="unknown precision"):
        W.load_musicnn("msd", models_dir=models, download=False, precision="int8")
    assert model.labels == W.MSD_LABELS and config["source"]["wheel_sha256"] == digest
    assert config["preprocessing"]["sample_rate"] == 16000 and config["preprocessing"]["log"] == "log10(10000 * x + 1)"
    # the layouts were converted: TF (kh, kw, in, out) -> torch (out, in, kh, kw); dense (in, out) -> (out, in)
    np.testing.assert_array_equal(model.timbral74.conv.weight.numpy(), tensors["conv2d/kernel"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(
        model.midend1.conv.weight.numpy(), tensors["conv2d_5/kernel"][:, :, 0, :].transpose(2, 1, 0)
    )
    np.testing.assert_array_equal(model.dense.weight.numpy(), tensors["dense/kernel"].T)
    np.testing.assert_array_equal(model.pool_bn.running_var.numpy(), tensors["batch_normalization_9/moving_variance"])
    reference_model = random_model(seed=3)
    x = torch.randn(2, 50, 96)
    with torch.inference_mode():
        torch.testing.assert_close(model(x).prob, reference_model(x).prob)


def test_wheel_found_through_the_environment(tmp_path, monkeypatch):
    wheel = tmp_path / "elsewhere.whl"
    wheel.write_bytes(fake_wheel(musicnn_tf_tensors()))
    monkeypatch.setenv("TUNESEEK_MUSICNN_WHEEL", str(wheel))
    assert W.find_wheel(None, models_dir=tmp_path / "models") == wheel
    # the real hash is required by default: a home-made wheel is refused, in one line
    with pytest.raises(ModelError, match="wrong SHA-256") as info:
        W.load_musicnn("mtt", models_dir=tmp_path / "models", download=False)
    assert "\n" not in str(info.value) and str(wheel) in str(info.value)
    monkeypatch.setenv("TUNESEEK_MUSICNN_WHEEL", str(tmp_path / "missing.whl"))
    with pytest.raises(ModelError, match="no such wheel file"):
        W.find_wheel()


def test_models_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESEEK_MODELS", str(tmp_path / "m"))
    assert W.model_dir("mtt") == tmp_path / "m" / "musicnn-mtt"
    monkeypatch.delenv("TUNESEEK_MODELS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert W.default_models_dir() == tmp_path / "c" / "tuneseek" / "models"
    with pytest.raises(ModelError, match="unknown musicnn model 'xyz'"):
        W.model_dir("xyz")


def test_wheel_without_checkpoint_or_not_a_zip(tmp_path):
    empty = tmp_path / "empty.whl"
    empty.write_bytes(fake_wheel(None))
    with pytest.raises(ModelError, match="wheel has no MTT_musicnn checkpoint"):
        W.convert_wheel(empty, models_dir=tmp_path / "models", sha256=None)
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"PK\x03\x04 this is not a zip file at all" * 10)
    with pytest.raises(ModelError, match="corrupt zip"):
        W.convert_wheel(junk, models_dir=tmp_path / "models", sha256=None)
    whole = fake_wheel(musicnn_tf_tensors())
    truncated = tmp_path / "truncated.whl"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ModelError, match="corrupt zip"):
        W.convert_wheel(truncated, models_dir=tmp_path / "models", sha256=None)
    assert not (tmp_path / "models").exists()  # nothing half-written


def test_checkpoint_of_the_wrong_shape(tmp_path):
    tensors = musicnn_tf_tensors()
    tensors["dense/kernel"] = np.zeros((1506, 100), np.float32)
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(fake_wheel(tensors))
    with pytest.raises(ModelError, match=r"'dense/kernel' has shape \[1506, 100\], which does not fit"):
        W.convert_wheel(wheel, models_dir=tmp_path / "models", sha256=None)
    del tensors["dense/kernel"]
    wheel.write_bytes(fake_wheel(tensors))
    with pytest.raises(ModelError, match="no tensor 'dense/kernel'"):
        W.convert_wheel(wheel, models_dir=tmp_path / "models", sha256=None)


def test_corrupt_checkpoint_inside_the_wheel(tmp_path):
    tensors = musicnn_tf_tensors()
    good = fake_wheel(tensors)
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    data = bytearray(members["musicnn/MTT_musicnn/.data-00000-of-00001"])
    data[5000] ^= 0x01
    members["musicnn/MTT_musicnn/.data-00000-of-00001"] = bytes(data)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(buf.getvalue())
    with pytest.raises(ModelError, match="checksum mismatch"):
        W.convert_wheel(wheel, models_dir=tmp_path / "models", sha256=None)


def test_converted_weights_of_the_wrong_shape_or_damaged(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNESEEK_MUSICNN_WHEEL", raising=False)
    models = tmp_path / "models"
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(fake_wheel(musicnn_tf_tensors()))
    W.convert_wheel(wheel, models_dir=models, sha256=None)
    folder = models / "musicnn-mtt"
    from safetensors.numpy import load, save

    state = load((folder / "model.safetensors").read_bytes())
    state["output.weight"] = np.zeros((40, 200), np.float32)
    blob = save(state)
    (folder / "model.safetensors").write_bytes(blob)
    config = json.loads((folder / "config.json").read_text())
    config["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"'output.weight' has shape \[40, 200\], musicnn needs \[50, 200\]"):
        W.read_converted(folder)
    # a damaged weights file no longer matches its config: refused, then redone from a wheel
    (folder / "model.safetensors").write_bytes(blob[:-7])
    with pytest.raises(ModelError, match="does not match its config.json"):
        W.read_converted(folder)
    with pytest.raises(ModelError, match="does not match its config.json.*no wheel to convert it again from: offline"):
        W.load_musicnn("mtt", models_dir=models, download=False)
    # with the wheel at hand it is converted again (this home-made wheel has its own hash)
    monkeypatch.setattr(W, "MUSICNN_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    model, config = W.load_musicnn("mtt", models_dir=models, wheel=wheel, download=False)
    assert config["labels"][0] == "guitar" and model.labels[0] == "guitar"


def test_offline_without_a_wheel_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNESEEK_MUSICNN_WHEEL", raising=False)
    monkeypatch.delenv("TUNESEEK_OFFLINE")
    monkeypatch.setattr(
        W,
        "PIP_DOWNLOAD_COMMAND",
        [
            sys.executable,
            "-c",
            "import sys; print('ERROR: No matching distribution found for musicnn==0.1.0', file=sys.stderr); sys.exit(1)",
            "-d",
        ],
    )
    with pytest.raises(ModelError) as info:
        W.load_musicnn("mtt", models_dir=tmp_path / "models")
    message = str(info.value)
    assert "cannot download musicnn==0.1.0 (pip: ERROR: No matching distribution" in message
    assert "pip download --no-deps musicnn==0.1.0" in message and "TUNESEEK_MUSICNN_WHEEL" in message
    assert "\n" not in message
    with pytest.raises(ModelError, match="not converted yet and no wheel was given; offline"):
        W.load_musicnn("msd", models_dir=tmp_path / "models", download=False)


def test_offline_setting_never_runs_pip(tmp_path, monkeypatch):
    ran = tmp_path / "pip-ran"
    monkeypatch.setattr(W, "PIP_DOWNLOAD_COMMAND", [sys.executable, "-c", f"open({str(ran)!r}, 'w')", "-d"])
    monkeypatch.setenv("TUNESEEK_OFFLINE", "1")
    with pytest.raises(ModelError, match="not converted yet and no wheel was given"):
        W.load_musicnn("mtt", models_dir=tmp_path / "models")
    assert not ran.exists()
    monkeypatch.setenv("TUNESEEK_OFFLINE", "0")
    with pytest.raises(ModelError, match="cannot download"):  # the stand-in pip leaves no wheel behind
        W.load_musicnn("mtt", models_dir=tmp_path / "models")
    assert ran.exists()


def test_download_path_converts_what_pip_fetched(tmp_path, monkeypatch):
    """load_musicnn with no wheel runs pip (here a stand-in that copies a fake wheel) and converts."""
    monkeypatch.delenv("TUNESEEK_MUSICNN_WHEEL", raising=False)
    monkeypatch.delenv("TUNESEEK_OFFLINE")
    source = tmp_path / "src.whl"
    source.write_bytes(fake_wheel(musicnn_tf_tensors()))
    script = f"import shutil, sys; shutil.copy({str(source)!r}, sys.argv[-1] + '/{W.MUSICNN_WHEEL_NAME}')"
    monkeypatch.setattr(W, "PIP_DOWNLOAD_COMMAND", [sys.executable, "-c", script])
    with pytest.raises(ModelError, match="wrong SHA-256"):  # the stand-in is not the published wheel
        W.load_musicnn("mtt", models_dir=tmp_path / "models")
    monkeypatch.setattr(W, "MUSICNN_WHEEL_SHA256", hashlib.sha256(source.read_bytes()).hexdigest())
    model, config = W.load_musicnn("mtt", models_dir=tmp_path / "models")
    assert (
        config["labels"][:2] == ["guitar", "classical"]
        and (tmp_path / "models" / "musicnn-msd" / "config.json").exists()
    )
