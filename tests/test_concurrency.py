"""The threading model: one Library serves many reader threads while another process writes."""

import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf

from conftest import SR
from tuneseek import Library
from tuneseek.synth import synth_catalog

pytestmark = pytest.mark.slow

READERS = 6


def clip(path, start=4.0, seconds=6.0):
    audio, sr = sf.read(path, dtype="float32")
    return audio[int(start * sr) : int((start + seconds) * sr)], sr


def test_reader_threads_answer_rightly_while_another_process_adds_tracks(tmp_path, music_dir):
    files = sorted(music_dir.rglob("*.flac"))
    first, later = files[:3], files[3:]
    for t in synth_catalog(16, duration=6.0, sr=SR, seed=77):  # more commits: one per file, below
        sf.write(tmp_path / f"{t.name}.flac", t.audio, SR)
        later.append(tmp_path / f"{t.name}.flac")
    root = tmp_path / "lib"
    with Library.open(root) as lib:
        lib.add(first, workers=1, analyse=False)
        known = {str(p): clip(p) for p in first}
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from tuneseek import Library; "
                "Library.open(sys.argv[1]).add(sys.argv[2:], workers=1, analyse=False, commit_every=0)",
                str(root),
                *map(str, later),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        wrong, errors, answered = [], [], [0]

        def read():
            try:
                while writer.poll() is None or answered[0] < 3 * READERS:
                    for path, (samples, sr) in known.items():
                        m = lib.identify(samples, sr=sr)
                        if m is None or m.track.path != path or abs(m.offset - 4.0) > 0.1:
                            wrong.append((path, m))
                        answered[0] += 1
                        lib.stats()
            except Exception as e:  # noqa: BLE001 - any failure of a reader thread is what this test looks for
                errors.append(repr(e))

        threads = [threading.Thread(target=read) for _ in range(READERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert writer.wait(timeout=60) == 0, writer.stderr.read()
        assert not errors and not wrong
        # the readers now see what the other process committed, without reopening the library
        results = []

        def find(path):
            samples, sr = clip(path)
            results.append((str(path), lib.identify(samples, sr=sr)))

        threads = [threading.Thread(target=find, args=(p,)) for p in later]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(path for path, m in results if m is not None and m.track.path == path) == sorted(map(str, later))
        assert len(lib.tracks()) == len(first) + len(later)


def test_threads_searching_vectors_share_one_library(tmp_path, music_dir, with_models):
    with Library.open(tmp_path / "lib") as lib:
        lib.add([music_dir], workers=1)
        tracks = lib.tracks()
        expected = {t.id: [s.track.id for s in lib.similar(t, k=3)] for t in tracks}
        got, errors = {}, []

        def ask(track):
            try:
                for _ in range(5):
                    got.setdefault(track.id, set()).add(tuple(s.track.id for s in lib.similar(track, k=3)))
            except Exception as e:  # noqa: BLE001 - any failure of a reader thread is what this test looks for
                errors.append(repr(e))

        threads = [threading.Thread(target=ask, args=(t,)) for t in tracks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors
        assert got == {tid: {tuple(ids)} for tid, ids in expected.items()}
        assert np.all([len(ids) == 3 for ids in expected.values()])
