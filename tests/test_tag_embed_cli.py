"""`tuneseek tag` and `tuneseek embed` on files, with a musicnn converted from a stand-in wheel.

The stand-in has random weights (the real wheel is not available to tests), so these tests
check shapes, formats and errors, not what the tags say: tests/test_musicnn.py checks parity.
"""

import json

import numpy as np
import pytest
import soundfile as sf

from tuneseek.cli import main
from tuneseek.synth import synth_track

SR = 22050


@pytest.fixture(autouse=True)
def use_models(with_models):
    yield


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "song.wav"
    sf.write(path, synth_track(5, duration=10.0, sr=SR), SR)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_tag_json_gives_every_tag_and_the_curve_over_time(capsys, song):
    code, out, _ = run(capsys, "tag", "--json", "--over-time", song)
    result = json.loads(out)
    assert code == 0 and result["model"] == "mtt" and len(result["tags"]) == 50
    assert all(0.0 <= p <= 1.0 for p in result["tags"].values())
    assert result["times"] == [0.0, 2.992, 5.984]  # three whole 3 s patches in 10 s
    assert all(len(curve) == 3 for curve in result["curve"].values())


def test_tag_lists_the_top_tags_of_each_file(capsys, song):
    code, out, _ = run(capsys, "tag", "--model", "msd", "--top", "4", song)
    assert code == 0 and out.startswith(f"{song}: ") and out.count(",") == 3


@pytest.mark.parametrize("window, frames", [(0.5, 38), (3.7, 4), (29.0, 1)])
def test_embed_writes_vectors_and_times_for_each_window_size(capsys, song, tmp_path, window, frames):
    out = tmp_path / "song.npy"
    code, text, _ = run(capsys, "embed", "--window", window, "-o", out, song)
    vectors, times = np.load(out), np.load(tmp_path / "song.times.npy")
    assert code == 0 and vectors.shape == (frames, 200) and len(times) == frames
    assert np.all(np.diff(times) > 0) and np.isfinite(vectors).all()
    again = tmp_path / "again.npy"
    run(capsys, "embed", "--window", window, "-o", again, song)
    assert np.array_equal(np.load(again), vectors)  # deterministic


def test_embed_pools_to_one_vector_and_prints_json_lines(capsys, song):
    code, out, _ = run(capsys, "embed", "--pool", "mean", "--layer", "max_pool", song)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 1 and len(lines[0]["vector"]) == 753 and lines[0]["time"] is None


def test_silent_short_and_broken_files_get_one_line_each(capsys, tmp_path, song):
    silent, short, junk = tmp_path / "silent.wav", tmp_path / "short.wav", tmp_path / "junk.mp3"
    sf.write(silent, np.zeros(SR * 5, np.float32), SR)
    sf.write(short, synth_track(1, duration=0.2, sr=SR), SR)
    junk.write_bytes(b"\x00" * 999)
    code, out, err = run(capsys, "tag", silent, short, junk, song)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 3 and "Traceback" not in err
    assert "silent.wav: silent" in lines[0] and "short.wav: too short" in lines[1] and "junk.mp3" in lines[2]
    assert out.startswith(f"{song}: ")


def test_missing_weights_offline_say_how_to_get_them(capsys, song, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESEEK_MODELS", str(tmp_path / "empty"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no package index: the download must fail, quickly
    monkeypatch.delenv("TUNESEEK_MUSICNN_WHEEL", raising=False)
    code, _, err = run(capsys, "tag", song)
    assert code == 1 and err.count("\n") == 1 and "pip download --no-deps musicnn==0.1.0" in err


def test_without_torch_the_commands_say_what_to_install(capsys, song, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    code, _, err = run(capsys, "tag", song)
    assert code == 1 and "need PyTorch" in err and "pip install torch==2.13.0" in err
