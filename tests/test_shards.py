"""Sharded identification: the landmark index split by track over Ray actors answers exactly as the
unsharded library does, follows the catalogue as it changes, and survives a lost actor."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import SR, track_audio
from tuneseek import Library
from tuneseek.degrade import degrade
from tuneseek.errors import UsageError

pytestmark = pytest.mark.slow


def test_bad_shard_counts_an_unreachable_cluster_and_a_missing_ray_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="shards must be at least 1"):
        Library.open(tmp_path / "lib", shards=-1)
    ray = pytest.importorskip("ray", reason="this test needs Ray (pip install 'tuneseek[scale]')")
    # "auto" finds any Ray cluster running on this machine (another user's included), and a Ray this
    # process holds would be used instead: the unreachable case is checked only where there is none
    others = subprocess.run(["pgrep", "-f", "ray/gcs/gcs_server"], capture_output=True).stdout
    if not ray.is_initialized() and not others:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        with pytest.raises(UsageError, match="cannot start or reach Ray at auto: Could not find any running Ray"):
            Library.open(tmp_path / "lib", shards=2, ray_address="auto")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(UsageError, match=r"sharded identification needs Ray: pip install 'tuneseek\[scale\]'"):
        Library.open(tmp_path / "lib", shards=2)


def clips(music_dir, stranger) -> list[np.ndarray]:
    """Clips of every test track (plain, noisy, sped up, starting before the track) and of a stranger."""
    out = []
    for path in sorted(music_dir.rglob("*.flac")):
        audio = track_audio(music_dir, path.stem)
        out.append(audio[3 * SR : 9 * SR])
        out.append(degrade(audio[8 * SR : 16 * SR], SR, "noise:0db"))
        out.append(degrade(audio[5 * SR : 15 * SR], SR, "speed:1.04"))
        out.append(np.concatenate([stranger[: 3 * SR], audio[: 5 * SR]]))
    out.append(stranger[2 * SR : 10 * SR])
    return out


def answers(library: Library, samples: list[np.ndarray]) -> list:
    return [[m.to_dict() for m in library.candidates(s, sr=SR, k=5)] for s in samples]


@pytest.fixture
def library(tmp_path, music_dir):
    """Five of the test tracks, added in two commits (two segments), one more added and removed (dead
    postings that still count in the stop-list until a compact)."""
    files = sorted(music_dir.rglob("*.flac"))
    with Library.open(tmp_path / "lib") as lib:
        lib.add(files[:3], workers=1)
        lib.add(files[3:], workers=1)
        lib.remove(str(files[4]))
    return tmp_path / "lib"


def test_sharded_answers_equal_the_unsharded_library(ray, library, music_dir, stranger):
    samples = clips(music_dir, stranger)
    with Library.open(library, create=False) as lib:
        expected = answers(lib, samples)
    found = [a for a in expected if a]
    assert len(found) >= 15 and not expected[-1]  # the clips are found, the stranger is not
    for shards in (2, 3):
        with Library.open(library, create=False, shards=shards) as lib:
            info = lib.shard_info()
            assert [s["shard"] for s in info] == list(range(shards)) and lib.shards == shards
            assert sum(s["tracks"] for s in info) == 5 and all(s["postings"] > 0 for s in info)
            assert answers(lib, samples) == expected


def test_shards_follow_what_another_process_adds_removes_and_compacts(ray, library, music_dir, stranger):
    files = sorted(music_dir.rglob("*.flac"))
    removed = track_audio(music_dir, files[4].stem)[4 * SR : 10 * SR]
    with Library.open(library, create=False, shards=2) as sharded:
        assert sharded.identify(removed, sr=SR) is None
        with Library.open(library, create=False) as writer:  # another Library: as another process sees it
            writer.add([files[4]], workers=1)
            assert sharded.identify(removed, sr=SR).track.path == str(files[4])
            writer.remove(str(files[0]))
            writer.compact()  # every segment merged into one: the shards are given it, the old ones dropped
            samples = clips(music_dir, stranger)
            assert answers(sharded, samples) == answers(writer, samples)
        assert sum(s["segments"] for s in sharded.shard_info()) == 2  # one segment, in two parts


def test_a_lost_shard_is_started_again_with_its_part(ray, library, music_dir, stranger):
    samples = clips(music_dir, stranger)[:8]
    with Library.open(library, create=False) as lib:
        expected = answers(lib, samples)
    with Library.open(library, create=False, shards=2) as lib:
        [first, _] = lib.shard_info()
        os.kill(first["pid"], signal.SIGKILL)  # its actor's process dies, as when its node is lost
        assert answers(lib, samples) == expected
        assert lib.shard_info()[0]["pid"] != first["pid"]


def test_shards_on_a_library_that_grows_from_empty(ray, tmp_path, music_dir):
    files = sorted(music_dir.rglob("*.flac"))
    with Library.open(tmp_path / "lib", shards=2) as lib:
        assert lib.identify(np.random.default_rng(0).normal(0, 0.1, 6 * SR), sr=SR) is None
        lib.add(files[:2], workers=1)
        clip = track_audio(music_dir, files[1].stem)[2 * SR : 8 * SR]
        assert lib.identify(clip, sr=SR).track.path == str(files[1])


def test_closing_a_sharded_library_ends_its_actors(ray, library):
    with Library.open(library, create=False, shards=2) as lib:
        pids = [s["pid"] for s in lib.shard_info()]
    deadline = time.monotonic() + 20
    while any(_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_running(p) for p in pids)


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
