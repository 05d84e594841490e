"""tuneseek.models: the trainable architectures, their log-mel front end, registry and checkpoints.

Shapes, the front end's numbers against a NumPy reference, checkpoints on disk, and that each
network can learn; all on tiny widths and inputs so the file runs in seconds.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tuneseek.errors import ModelError, UsageError
from tuneseek.features import mel_filterbank, mel_spectrogram, musicnn_logmel
from tuneseek.models import checkpoint
from tuneseek.models.crnn import CRNN
from tuneseek.models.fcn import FCN, pool_sizes
from tuneseek.models.frontend import LogMel, MelSpec
from tuneseek.models.registry import ARCHITECTURES, build, create
from tuneseek.models.resnet import ResNet18
from tuneseek.models.short_chunk import ShortChunkResCNN

# Tiny versions of every architecture (name, keyword arguments), short windows.
TINY = {
    "fcn": ("fcn", dict(n_outputs=5, window_seconds=1.0, width=1 / 16)),
    "short-chunk-res": ("short-chunk-res", dict(n_outputs=5, window_seconds=1.0, channels=4)),
    "crnn": ("crnn", dict(n_outputs=5, window_seconds=1.0, channels=(4, 8), hidden=8)),
    "crnn-last": (
        "crnn",
        dict(n_outputs=5, window_seconds=1.0, channels=(4, 8), hidden=8, summary="last", rnn_layers=2),
    ),
    "resnet18": ("resnet18", dict(dim=16, window_seconds=1.0, width=1 / 16, stem_stride=1, stem_pool=False)),
}


def tiny(key: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    name, kwargs = TINY[key]
    return create(name, **{**kwargs, **overrides})


def signal_batch(spec: MelSpec, seconds: float, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Noise plus a few tones: every mel band gets power, so log-domain comparisons are well conditioned."""
    rng = np.random.default_rng(seed)
    n = spec.samples(seconds)
    t = np.arange(n) / spec.sample_rate
    tones = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 1000.0, 3300.0))
    return torch.from_numpy((tones + rng.normal(0, 0.1, (batch, n))).astype(np.float32))


def output_dim(model: torch.nn.Module) -> int:
    return getattr(model, "n_outputs", model.embedding_dim)


# --------------------------------------------------------------------------- the front end


def numpy_logmel(x: np.ndarray, spec: MelSpec) -> np.ndarray:
    """Reference log-mel ``(n_mels, frames)`` in float64 NumPy: centred frames, periodic Hann,
    rfft power, the Slaney filterbank, then the spec's log."""
    half = spec.n_fft // 2
    padded = np.pad(x.astype(np.float64), half, mode=spec.pad_mode)
    frames = np.stack([padded[k * spec.hop : k * spec.hop + spec.n_fft] for k in range(1 + len(x) // spec.hop)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(spec.n_fft) / spec.n_fft)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = power @ mel_filterbank(
        spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax
    ).T.astype(np.float64)
    if spec.log == "db":
        return (10 * np.log10(np.maximum(mel, 1e-10))).T
    return np.log10(1 + 10000 * mel).T


@pytest.mark.parametrize(
    "spec, atol",
    [
        (MelSpec(), 2e-3),  # dB: 2e-3 dB is a relative power error of 5e-4
        (MelSpec(sample_rate=12000, n_mels=96, log="log1p"), 2e-4),
        (MelSpec(sample_rate=22050, n_fft=1024, hop=512, n_mels=64, fmin=30.0, fmax=8000.0, pad_mode="constant"), 2e-3),
    ],
)
def test_logmel_matches_a_numpy_reference(spec, atol):
    x = signal_batch(spec, 0.7)
    got = LogMel(spec)(x)
    assert got.dtype == torch.float32 and got.shape == (2, spec.n_mels, spec.frames(0.7))
    for b in range(2):
        np.testing.assert_allclose(got[b].numpy(), numpy_logmel(x[b].numpy(), spec), rtol=0, atol=atol)


def test_logmel_with_zero_padding_equals_the_librosa_exact_features():
    """pad_mode="constant" reproduces tuneseek.features (librosa 0.10+) at every frame, ends included."""
    spec = MelSpec(sample_rate=16000, n_mels=96, pad_mode="constant")
    x = signal_batch(spec, 0.7, batch=1)[0]
    reference = mel_spectrogram(x.numpy(), sr=16000, n_fft=512, hop=256, n_mels=96).T
    got = LogMel(spec)(x[None])[0].numpy()
    np.testing.assert_allclose(got, 10 * np.log10(np.maximum(reference, 1e-10)), rtol=0, atol=2e-3)
    # log1p is musicnn's compression: equal to musicnn_logmel up to its float16 rounding of the mel power
    log1p = LogMel(MelSpec(sample_rate=16000, n_mels=96, pad_mode="constant", log="log1p"))(x[None])[0].numpy()
    np.testing.assert_allclose(log1p, musicnn_logmel(x.numpy()).T, rtol=0, atol=3e-4)


def test_logmel_filterbank_is_not_saved_with_the_weights():
    assert LogMel(MelSpec()).state_dict() == {}


def test_melspec_counts_frames_like_the_papers_and_round_trips_through_json():
    assert MelSpec(sample_rate=12000, n_mels=96).frames(29.12) == 1366  # Choi et al.'s 96 x 1366 input
    assert MelSpec().samples(59049 / 16000) == 59049 and MelSpec().frames(59049 / 16000) == 231  # Won et al.'s chunk
    spec = MelSpec(
        sample_rate=22050, n_fft=1024, hop=512, n_mels=64, fmin=30.0, fmax=8000.0, log="log1p", pad_mode="constant"
    )
    assert MelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert MelSpec.from_dict({"n_mels": 96}) == MelSpec(n_mels=96)


@pytest.mark.parametrize(
    "bad", [dict(log="ln"), dict(pad_mode="edge"), dict(fmax=9000.0), dict(fmin=8000.0), dict(hop=0)]
)
def test_melspec_refuses_impossible_settings(bad):
    with pytest.raises(UsageError):
        MelSpec(**bad)


def test_melspec_refuses_unknown_settings():
    with pytest.raises(UsageError, match="hop_length"):
        MelSpec.from_dict({"hop_length": 256})


# --------------------------------------------------------------------------- the architectures


@pytest.mark.parametrize("key", TINY)
def test_forward_takes_audio_or_precomputed_logmel(key):
    model = tiny(key).eval()
    audio = signal_batch(model.spec, 1.0, batch=3)
    with torch.no_grad():
        from_audio = model(audio)
        from_mel = model(model.logmel(audio))
        embedding = model.embed(audio)
    assert from_audio.shape == (3, output_dim(model)) and torch.isfinite(from_audio).all()
    torch.testing.assert_close(from_mel, from_audio)
    assert embedding.shape == (3, model.embedding_dim) and torch.isfinite(embedding).all()


@pytest.mark.parametrize("key", TINY)
def test_forward_refuses_features_of_the_wrong_shape(key):
    model = tiny(key)
    with pytest.raises(ValueError, match="expects audio"):
        model(torch.zeros(2, model.spec.n_mels + 1, 64))


@pytest.mark.parametrize("seconds", [0.5, 3.7, 29.12])
def test_fcn_works_at_every_embedding_window(seconds):
    model = FCN(n_outputs=7, window_seconds=seconds, width=1 / 16).eval()
    with torch.no_grad():
        logits = model(signal_batch(model.spec, seconds))
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    assert model.min_frames <= model.spec.frames(seconds)
    with pytest.raises(ValueError, match="at least"):
        model(torch.zeros(2, model.spec.n_mels, model.min_frames - 1))


def test_fcn_pools_96_by_1366_down_to_one_by_one_like_the_paper():
    model = FCN(n_outputs=50)
    assert model.spec.n_mels == 96 and model.spec.frames(model.window_seconds) == 1366
    assert pool_sizes(96, 5) == [2, 2, 2, 3]  # the paper's frequency pools; the last layer takes the remaining 4
    assert [t for _, t in model.pools] == [4, 4, 4, 4]  # the last takes the remaining 5 (paper: 4, 4, 4, 5, then 4)
    assert 96 // math.prod(f for f, _ in model.pools) == 4 and 1366 // model.min_frames == 5


def test_resnet_embeddings_are_unit_vectors():
    model = tiny("resnet18").eval()
    with torch.no_grad():
        z = model(signal_batch(model.spec, 1.0, batch=4))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(model.embed(signal_batch(model.spec, 1.0, batch=4)).detach(), z)


@pytest.mark.parametrize(
    "cls, kwargs, low, high",
    [
        (FCN, dict(n_outputs=50), 24e6, 26e6),  # FCN-5: 128 ... 2048 channels
        (ShortChunkResCNN, dict(n_outputs=50), 11e6, 13e6),
        (CRNN, dict(n_outputs=10), 0.5e6, 1.5e6),
        (ResNet18, dict(), 10.5e6, 12e6),  # torchvision's resnet18 has 11.7 M with its 1000-class head
    ],
)
def test_parameter_counts_at_default_sizes(cls, kwargs, low, high):
    n = sum(p.numel() for p in cls(**kwargs).parameters())
    assert low <= n <= high


@pytest.mark.parametrize("key", TINY)
def test_a_few_gradient_steps_reduce_the_loss_on_a_fixed_batch(key):
    no_dropout = {
        "resnet18": {},
        "crnn": {"dropout": 0.0, "conv_dropout": 0.0},
        "crnn-last": {"dropout": 0.0, "conv_dropout": 0.0},
    }
    model = tiny(key, **no_dropout.get(key, {"dropout": 0.0})).train()
    torch.manual_seed(1)
    mels = torch.randn(6, model.spec.n_mels, model.spec.frames(1.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    if key == "resnet18":  # triplets: anchors near their positives, far from negatives
        positives = mels + 0.1 * torch.randn_like(mels)
        negatives = torch.randn_like(mels)
        triplet = torch.nn.TripletMarginLoss(margin=0.5)
        loss_fn = lambda: triplet(*model(torch.cat([mels, positives, negatives])).split(6))  # noqa: E731
    else:
        targets = torch.randint(0, 2, (6, 5)).float()
        loss_fn = lambda: torch.nn.functional.binary_cross_entropy_with_logits(model(mels), targets)  # noqa: E731
    losses = []
    for _ in range(10):
        loss = loss_fn()
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.85 * losses[0]


# --------------------------------------------------------------------------- registry and checkpoints


def test_registry_knows_the_six_architectures_and_rebuilds_from_config():
    # musicnn: test_finetune.py; fingerprint: test_fingerprint_net.py
    assert set(ARCHITECTURES) == {"fcn", "short-chunk-res", "crnn", "resnet18", "musicnn", "fingerprint"}
    for key in TINY:
        model = tiny(key)
        rebuilt = build(json.loads(json.dumps(model.config())))
        assert type(rebuilt) is type(model) and rebuilt.config() == model.config()
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
            k: v.shape for k, v in model.state_dict().items()
        }


def test_registry_refuses_unknown_names_listing_the_known_ones():
    with pytest.raises(UsageError, match="known: fcn, short-chunk-res, crnn, resnet18"):
        create("vgg", n_outputs=3)
    with pytest.raises(UsageError, match="does not fit"):
        build({**tiny("fcn").config(), "kwargs": {"n_outputs": 5, "depth": 3}})


def trained_tiny(key: str) -> torch.nn.Module:
    """A tiny model whose batch-norm statistics moved away from their initial values."""
    model = tiny(key).train()
    with torch.no_grad():
        model(signal_batch(model.spec, 1.0, batch=3, seed=5))
    return model.eval()


@pytest.mark.parametrize("key", TINY)
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, key):
    model = trained_tiny(key)
    folder = checkpoint.save(tmp_path / "ckpt", model, extra={"labels": ["a", "b", "c", "d", "e"]})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded, config = checkpoint.load(folder)
    assert not loaded.training and type(loaded) is type(model)
    assert config["format"] == "tuneseek-checkpoint" and config["format_version"] == 1
    assert config["labels"] == ["a", "b", "c", "d", "e"] and config["spec"] == model.spec.to_dict()
    x = signal_batch(model.spec, 1.0, batch=2, seed=9)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_checkpoint_refuses_extras_that_would_replace_the_model_config(tmp_path):
    with pytest.raises(UsageError, match="architecture"):
        checkpoint.save(tmp_path / "ckpt", tiny("fcn"), extra={"architecture": "crnn"})
    assert not (tmp_path / "ckpt").exists()


def test_checkpoint_missing_folder_or_files_are_named(tmp_path):
    with pytest.raises(ModelError, match="no such checkpoint folder"):
        checkpoint.load(tmp_path / "nowhere")
    folder = checkpoint.save(tmp_path / "ckpt", tiny("fcn"))
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="model.safetensors is missing"):
        checkpoint.load(folder)
    (folder / "config.json").unlink()
    with pytest.raises(ModelError, match="config.json is missing"):
        checkpoint.load(folder)


def edit_config(folder, **changes) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_checkpoint_weights_of_another_shape_name_the_tensor(tmp_path):
    folder = checkpoint.save(tmp_path / "ckpt", tiny("fcn"))
    edit_config(
        folder, kwargs={"n_outputs": 5, "channels": [128, 256, 512, 1024, 2048], "width": 1 / 8, "dropout": 0.5}
    )
    with pytest.raises(
        ModelError,
        match=r"tensor 'blocks.0.conv.weight' has shape \(8, 1, 3, 3\), the architecture expects \(16, 1, 3, 3\)",
    ):
        checkpoint.load(folder)
    edit_config(
        folder, kwargs={"n_outputs": 5, "channels": [128, 256, 512, 1024, 2048, 2048], "width": 1 / 16, "dropout": 0.5}
    )
    with pytest.raises(ModelError, match=r"tensor 'blocks.5.conv.weight' \(128, 128, 3, 3\) is missing"):
        checkpoint.load(folder)
    folder = checkpoint.save(tmp_path / "crnn", tiny("crnn-last"))  # a 2-layer LSTM, read as a 1-layer one
    edit_config(folder, kwargs={**json.loads((folder / "config.json").read_text())["kwargs"], "rnn_layers": 1})
    with pytest.raises(ModelError, match=r"unexpected tensor 'rnn\.\w+_l1'"):
        checkpoint.load(folder)


def test_checkpoint_unknown_architecture_or_bad_json_is_refused(tmp_path):
    folder = checkpoint.save(tmp_path / "ckpt", tiny("fcn"))
    edit_config(folder, architecture="transformer")
    with pytest.raises(ModelError, match="unknown architecture 'transformer'; known: fcn"):
        checkpoint.load(folder)
    (folder / "config.json").write_text('{"format": "tuneseek-checkpoint",')
    with pytest.raises(ModelError, match="not valid JSON"):
        checkpoint.load(folder)
    (folder / "config.json").write_text(json.dumps({"format": "tuneseek-checkpoint", "format_version": 2}))
    with pytest.raises(ModelError, match="format version 2"):
        checkpoint.load(folder)
