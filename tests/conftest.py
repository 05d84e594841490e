"""Shared fixtures: synthetic music written to disk once per test session."""

import os
import pathlib
import tempfile

import numpy as np
import pytest
import soundfile as sf

from tuneseek.embed.weights import default_models_dir
from tuneseek.synth import synth_catalog

# Tests see no pretrained weights and never fetch any: a library indexes for identification
# only unless a test hands it a stand-in wheel. The parity tests look for the real weights
# where the user keeps them (REAL_MODELS_DIR, REAL_WHEEL), and skip without them.
REAL_MODELS_DIR = default_models_dir()
REAL_WHEEL = os.environ.pop("TUNESEEK_MUSICNN_WHEEL", None)
os.environ["TUNESEEK_OFFLINE"] = "1"
os.environ["TUNESEEK_MODELS"] = tempfile.mkdtemp(prefix="tuneseek-test-models-")

SR = 22050


@pytest.fixture(scope="session")
def music_dir(tmp_path_factory) -> pathlib.Path:
    """Six distinct 20-second synthetic tracks as FLAC files (in a nested folder, to test recursion)."""
    root = tmp_path_factory.mktemp("music")
    (root / "album").mkdir()
    for i, track in enumerate(synth_catalog(6, duration=20.0, sr=SR, seed=1)):
        folder = root / "album" if i % 2 else root
        sf.write(folder / f"{track.name}.flac", track.audio, SR)
    return root


@pytest.fixture(scope="session")
def indexed_music(tmp_path_factory, music_dir):
    """A library of the six test tracks, landmarks only, shared by the tests that only read it."""
    from tuneseek import Library

    with Library.open(tmp_path_factory.mktemp("indexed") / "lib") as library:
        library.add([music_dir], workers=1)
        yield library


@pytest.fixture(scope="module")
def ray():
    """One local Ray instance (two CPUs, as CI has) for a module's tests."""
    ray = pytest.importorskip("ray", reason="this test needs Ray (pip install 'tuneseek[scale]')")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def stranger() -> np.ndarray:
    """A synthetic track that is in no library (another seed family)."""
    return synth_catalog(1, duration=20.0, sr=SR, seed=999)[0].audio


def track_audio(music_dir: pathlib.Path, name_part: str) -> np.ndarray:
    path = next(p for p in music_dir.rglob("*.flac") if name_part in p.name)
    return sf.read(path, dtype="float32")[0]


@pytest.fixture(scope="session")
def standin_models(tmp_path_factory) -> pathlib.Path:
    """A models directory with musicnn converted from a stand-in wheel of random weights.

    The real weights are not available to tests: what the tags say is checked by the parity
    tests; this checks shapes, storage and plumbing.
    """
    from tfbundle_writer import fake_wheel, musicnn_tf_tensors
    from tuneseek.embed.weights import MUSICNN_WHEEL_NAME, convert_wheel

    root = tmp_path_factory.mktemp("standin-models")
    wheel = root / MUSICNN_WHEEL_NAME
    wheel.write_bytes(fake_wheel(musicnn_tf_tensors(seed=1)))
    convert_wheel(wheel, models_dir=root / "converted", sha256=None)
    return root / "converted"


@pytest.fixture(scope="module")
def models(standin_models):
    """Tags and embeddings available, from the stand-in models, for a whole test module."""
    from tuneseek import analysis

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNESEEK_MODELS", str(standin_models))
        analysis.model.cache_clear()
        yield standin_models
        analysis.model.cache_clear()


@pytest.fixture
def with_models(standin_models, monkeypatch):
    """Tags and embeddings available, from the stand-in models, for one test."""
    from tuneseek import analysis

    monkeypatch.setenv("TUNESEEK_MODELS", str(standin_models))
    analysis.model.cache_clear()
    yield standin_models
    analysis.model.cache_clear()


def finished(client, job: dict, seconds: float = 60.0) -> dict:
    """The state of an HTTP job (``tuneseek serve``) once it is done or failed, asked every 50 ms."""
    import time

    for _ in range(int(seconds / 0.05)):
        state = client.get(f"/jobs/{job['job']}").json()
        if state["state"] in ("done", "failed"):
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job} did not finish in {seconds:g} s")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny batches and small networks: one torch thread, restored after the module. On a busy 2-core
    machine two threads stall each other (test_finetune.py's first run took 63 s with two, 6 s with one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
