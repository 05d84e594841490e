"""tuneseek.embed.tfbundle: reading TensorFlow tensor-bundle checkpoints with NumPy, and every way one can be bad."""

from __future__ import annotations

import numpy as np
import pytest

from tfbundle_writer import bundle_bytes, write_bundle
from tuneseek.embed.tfbundle import TensorBundle, _raw_crc_small, crc32c, is_training_state, mask_crc, unmask_crc
from tuneseek.errors import ModelError, TuneseekError


def sample_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "conv2d/kernel": rng.normal(size=(7, 38, 1, 20)).astype(np.float32),  # > 4 kB: vectorised CRC path
        "conv2d/bias": rng.normal(size=20).astype(np.float32),
        "conv2d/kernel/Adam": np.ones((7, 38, 1, 20), np.float32),
        "conv2d/kernel/Adam_1": np.ones((7, 38, 1, 20), np.float32),
        "batch_normalization/gamma": np.array([1.5], np.float32),
        "batch_normalization_1/gamma": np.arange(3, dtype=np.float64),
        "beta1_power": np.array(0.9, np.float32),
        "global_step": np.array(99, np.int64),
        "ids": np.array([[1, -2], [3, 4]], np.int32),
    }


def test_crc32c_known_value_and_fast_path():
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert crc32c(b"") == 0
    rng = np.random.default_rng(0)
    for n in (4095, 4096, 4097, 10007, 70000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc32c(data) == _raw_crc_small(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    for c in (0, 1, 0xFFFFFFFF, 0x12345678):
        assert unmask_crc(mask_crc(c)) == c


def test_round_trip(tmp_path):
    tensors = sample_tensors()
    write_bundle(str(tmp_path / "ckpt"), tensors, entries_per_block=3)  # several data blocks
    bundle = TensorBundle.from_prefix(tmp_path / "ckpt")
    assert bundle.names() == sorted(tensors)
    for name, arr in tensors.items():
        got = bundle.read(name)
        assert got.dtype == arr.dtype and got.shape == arr.shape
        np.testing.assert_array_equal(got, arr)
    weights = bundle.read_all()
    assert set(weights) == {
        "conv2d/kernel",
        "conv2d/bias",
        "batch_normalization/gamma",
        "batch_normalization_1/gamma",
        "ids",
    }
    assert bundle.shapes()["conv2d/kernel"] == (7, 38, 1, 20)
    assert is_training_state("x/Adam_1") and is_training_state("global_step") and not is_training_state("dense/kernel")


def test_hidden_names_prefix_is_a_folder(tmp_path):
    """musicnn ships ``MTT_musicnn/.index``: the prefix is the folder plus '/'."""
    (tmp_path / "MTT").mkdir()
    write_bundle(str(tmp_path / "MTT") + "/", {"a": np.zeros(2, np.float32)})
    assert (tmp_path / "MTT" / ".index").exists()
    assert TensorBundle.from_prefix(str(tmp_path / "MTT") + "/").read("a").tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda ix: ix[:-10], "shorter than a table footer|bad magic"),
        (lambda ix: ix[:20], "shorter than a table footer"),
        (lambda ix: ix[: len(ix) // 2] + ix[-48:], "past the end of the file|checksum"),
        (lambda ix: ix[:-1] + bytes([ix[-1] ^ 0xFF]), "bad magic"),
        (lambda ix: bytes([ix[0] ^ 0x01]) + ix[1:], "checksum mismatch"),
        (lambda ix: ix[:30] + bytes([ix[30] ^ 0x40]) + ix[31:], "checksum mismatch"),
    ],
)
def test_corrupt_index(damage, message):
    index, data = bundle_bytes(sample_tensors())
    with pytest.raises(ModelError, match=message) as info:
        TensorBundle(damage(index), [data], source="ckpt")
    assert isinstance(info.value, TuneseekError)
    assert str(info.value).startswith("ckpt: corrupt checkpoint index")


def test_truncated_or_corrupt_data():
    tensors = sample_tensors()
    index, data = bundle_bytes(tensors)
    short = TensorBundle(index, [data[: len(data) - 100]], source="ckpt")
    with pytest.raises(ModelError, match="truncated"):
        short.read_all()
    flipped = bytearray(data)
    flipped[100] ^= 0x10  # inside conv2d/kernel (the first tensor in sorted order is batch_normalization*)
    bad = TensorBundle(index, [bytes(flipped)], source="ckpt")
    with pytest.raises(ModelError, match="checksum mismatch"):
        bad.read_all()


def test_entry_size_must_match_shape():
    tensors = {"w": np.zeros((4, 5), np.float32)}
    index, data = bundle_bytes(tensors, overrides={"w": {"shape": (4, 6)}})
    with pytest.raises(ModelError, match=r"needs 96 bytes, the index says 80"):
        TensorBundle(index, [data]).read("w")


def test_unsupported_dtype_and_missing_names(tmp_path):
    index, data = bundle_bytes({"s": np.zeros(2, np.float32)}, overrides={"s": {"dtype_code": 7}})
    bundle = TensorBundle(index, [data], source="ckpt")
    with pytest.raises(ModelError, match="unsupported dtype string"):
        bundle.read("s")
    with pytest.raises(ModelError, match="no tensor named 'nope'"):
        bundle.read("nope")
    with pytest.raises(ModelError, match="cannot read checkpoint index"):
        TensorBundle.from_prefix(tmp_path / "absent")
    write_bundle(str(tmp_path / "c"), {"a": np.zeros(1, np.float32)})
    (tmp_path / "c.data-00000-of-00001").unlink()
    with pytest.raises(ModelError, match="cannot read checkpoint data"):
        TensorBundle.from_prefix(tmp_path / "c")
