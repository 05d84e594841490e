"""Shared fixtures: synthetic music written to disk once per test session."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "src"))

import numpy as np
import pytest
import soundfile as sf

from tuneseek.synth import synth_catalog

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
def stranger() -> np.ndarray:
    """A synthetic track that is in no library (another seed family)."""
    return synth_catalog(1, duration=20.0, sr=SR, seed=999)[0].audio


def track_audio(music_dir: pathlib.Path, name_part: str) -> np.ndarray:
    path = next(p for p in music_dir.rglob("*.flac") if name_part in p.name)
    return sf.read(path, dtype="float32")[0]
