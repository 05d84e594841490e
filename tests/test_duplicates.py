"""Finding tracks of a library that hold the same audio: other encodings, edits, one inside another."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import SR
from tuneseek import Library
from tuneseek.synth import synth_catalog


@pytest.fixture(scope="module")
def library(tmp_path_factory, music_dir):
    """The six test tracks, plus: an MP3-like re-encoding of one (OGG, quieter), and a new 'medley'
    that holds 8 s of another inside music found nowhere else."""
    root = tmp_path_factory.mktemp("dups")
    files = sorted(music_dir.rglob("*.flac"))
    first, third = (sf.read(files[i], dtype="float32")[0] for i in (0, 2))
    sf.write(root / "first-remaster.ogg", first * 0.7, SR)
    other = synth_catalog(2, duration=20.0, sr=SR, seed=555)
    medley = np.concatenate([other[0].audio[: 12 * SR], third[5 * SR : 13 * SR], other[1].audio[: 12 * SR]])
    sf.write(root / "medley.flac", medley, SR)
    with Library.open(root / "lib") as lib:
        lib.add([music_dir, root / "first-remaster.ogg", root / "medley.flac"], workers=1)
        yield lib, files


def test_duplicates_finds_a_reencoding_and_a_track_inside_another_and_nothing_else(library):
    lib, files = library
    by_path = {t.path: t for t in lib.tracks()}
    found = lib.duplicates()
    pairs = {frozenset((d.track.path, d.other.path)): d for d in found}
    remaster = pairs[frozenset((str(files[0]), next(p for p in by_path if p.endswith("first-remaster.ogg"))))]
    assert remaster.kind == "same recording"
    assert remaster.start == pytest.approx(0.0, abs=1.0) and remaster.end == pytest.approx(20.0, abs=1.0)
    inside = pairs[frozenset((str(files[2]), next(p for p in by_path if p.endswith("medley.flac"))))]
    assert inside.kind == "shared" or inside.kind == "contained"
    third, medley = (inside.track, inside.other) if inside.track.path == str(files[2]) else (inside.other, inside.track)
    span_third = (inside.start, inside.end) if inside.track == third else (inside.other_start, inside.other_end)
    span_medley = (inside.other_start, inside.other_end) if inside.track == third else (inside.start, inside.end)
    assert span_third[0] == pytest.approx(5.0, abs=1.0) and span_third[1] == pytest.approx(13.0, abs=1.0)
    assert span_medley[0] == pytest.approx(12.0, abs=1.0) and span_medley[1] == pytest.approx(20.0, abs=1.0)
    assert len(found) == 2  # no other pair of the library shares audio


def test_duplicates_command_prints_each_pair_once(library):
    lib, _ = library
    env = dict(
        os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"), TUNESEEK_LIBRARY=str(lib.root)
    )
    cmd = [sys.executable, "-m", "tuneseek.cli", "duplicates"]
    rows = [
        json.loads(x)
        for x in subprocess.run(
            [*cmd, "--json"], capture_output=True, text=True, env=env, check=True
        ).stdout.splitlines()
    ]
    assert len(rows) == 2 and {"same recording"} <= {r["kind"] for r in rows}
    human = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    assert "same recording" in human and "first-remaster.ogg" in human
