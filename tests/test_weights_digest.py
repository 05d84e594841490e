"""A model's version depends on its tensors and settings only, never on how the file lists them.

safetensors writes its header's metadata in a random order, so two conversions of the same
musicnn weights used to differ in bytes, and in version: a lost model cache re-tagged the
whole library.
"""

import json

import numpy as np
import pytest

from tfbundle_writer import fake_wheel, musicnn_tf_tensors
from tuneseek.embed import weights as W
from tuneseek.models.digest import tensors_digest


def reordered(blob: bytes) -> bytes:
    """The same safetensors file with its header's entries, metadata included, in reverse order."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    flipped = {
        key: (dict(reversed(value.items())) if key == "__metadata__" else value)
        for key, value in reversed(header.items())
    }
    text = json.dumps(flipped, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    out = len(text).to_bytes(8, "little") + text + blob[8 + size :]
    assert out != blob
    return out


def test_the_same_tensors_saved_in_a_different_order_have_the_same_digest():
    from safetensors.numpy import save

    state = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.ones(4, np.int64)}
    one = save(state, metadata={"format": "pt", "architecture": "x"})
    settings = {"labels": ["a", "b"], "rate": 16000}
    assert tensors_digest(one, settings) == tensors_digest(reordered(one), dict(reversed(settings.items())))
    assert tensors_digest(one, settings) == tensors_digest(save(state), settings)  # no metadata at all


@pytest.mark.parametrize("change", ["value", "dtype", "shape", "name", "settings"])
def test_a_changed_tensor_or_setting_changes_the_digest(change):
    from safetensors.numpy import save

    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    settings = {"labels": ["a", "b"]}
    before = tensors_digest(save(state), settings)
    if change == "value":
        state["w"][1, 2] += 1e-6
    elif change == "dtype":
        state["w"] = state["w"].view(np.int32)
    elif change == "shape":
        state["w"] = state["w"].reshape(3, 2)
    elif change == "name":
        state = {"v": state["w"]}
    else:
        settings = {"labels": ["b", "a"]}
    assert tensors_digest(save(state), settings) != before


def test_converting_the_same_wheel_twice_gives_the_same_version(tmp_path):
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(fake_wheel(musicnn_tf_tensors(seed=3)))
    first = W.convert_wheel(wheel, models_dir=tmp_path / "one", names=["mtt"], sha256=None)["mtt"]
    second = W.convert_wheel(wheel, models_dir=tmp_path / "two", names=["mtt"], sha256=None)["mtt"]
    # as if the second conversion had written its metadata in the other order
    (second / "model.safetensors").write_bytes(reordered((second / "model.safetensors").read_bytes()))
    assert (first / "model.safetensors").read_bytes() != (second / "model.safetensors").read_bytes()
    version = json.loads((first / "config.json").read_text())["weights_sha256"]
    assert json.loads((second / "config.json").read_text())["weights_sha256"] == version
    assert W.read_converted(first)[1]["weights_sha256"] == W.read_converted(second)[1]["weights_sha256"] == version

    other = tmp_path / "other.whl"
    other.write_bytes(fake_wheel(musicnn_tf_tensors(seed=4)))
    third = W.convert_wheel(other, models_dir=tmp_path / "three", names=["mtt"], sha256=None)["mtt"]
    assert W.read_converted(third)[1]["weights_sha256"] != version


def test_a_model_converted_before_the_digest_keeps_its_weights_and_gets_the_new_version(tmp_path):
    import hashlib

    wheel = tmp_path / "w.whl"
    wheel.write_bytes(fake_wheel(musicnn_tf_tensors(seed=3)))
    folder = W.convert_wheel(wheel, models_dir=tmp_path / "models", names=["mtt"], sha256=None)["mtt"]
    config = json.loads((folder / "config.json").read_text())
    version = config["weights_sha256"]
    config["weights_sha256"] = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()  # the old way
    (folder / "config.json").write_text(json.dumps(config))
    assert W.read_converted(folder)[1]["weights_sha256"] == version


def test_saving_a_trained_model_twice_gives_the_same_version(tmp_path):
    torch = pytest.importorskip("torch")
    from tuneseek.models import checkpoint
    from tuneseek.models.text_audio import TextAudioModel

    torch.manual_seed(0)
    model = TextAudioModel(audio_dim=8, text_dim=6, dim=4)
    one = checkpoint.save(tmp_path / "one", model, extra={"metrics": {"loss": 1.0}})
    two = checkpoint.save(tmp_path / "two", model, extra={"metrics": {"loss": 2.0}})  # trainer extras are not settings
    (two / checkpoint.WEIGHTS_FILE).write_bytes(reordered((two / checkpoint.WEIGHTS_FILE).read_bytes()))
    assert checkpoint.weights_digest(one) == checkpoint.weights_digest(two)

    with torch.no_grad():
        model.text_proj.bias[0] += 1.0
    three = checkpoint.save(tmp_path / "three", model)
    assert checkpoint.weights_digest(three) != checkpoint.weights_digest(one)
