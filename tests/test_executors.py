"""Where indexing runs: any executor, Ray included, commits the same catalogue in the files' order;
a job the executor fails is one file's failure; a missing Ray is one line."""

import sqlite3
import sys
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import pytest

from tuneseek import Library
from tuneseek.errors import UsageError

#: Columns that hold when, not what: they differ between any two runs.
WHEN = {"created_at", "added_at"}


def catalogue(root) -> dict[str, list[tuple]]:
    """Every table of a library's catalogue, rows in key order, times and segment names left out."""
    db = sqlite3.connect(root / "catalog.sqlite")
    out = {}
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
        cols = [c[1] for c in db.execute(f"PRAGMA table_info({table})") if c[1] not in WHEN]
        if table == "segments":
            cols = [c for c in cols if c != "name"]  # named at random when written
        rows = db.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()
        if table == "meta":  # the count of write transactions: how commits happened to batch the files
            rows = [r for r in rows if r[0] != "generation"]
        out[table] = sorted(rows, key=repr)
    db.close()
    return out


def index_bytes(root) -> list[bytes]:
    """The landmark index's files, in name order within each segment, segments in order of their content."""
    return sorted(b"".join(f.read_bytes() for f in sorted(seg.iterdir())) for seg in (root / "landmarks").iterdir())


class Reversed(Executor):
    """Runs each job on a thread, but finishes them last submitted first (the worst order for a writer)."""

    def __init__(self):
        self.held: list[tuple[Future, object, tuple]] = []
        self.pool = ThreadPoolExecutor(1)

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        self.held.append((future, fn, args))
        if len(self.held) >= 2:  # indexing keeps two jobs out per worker: both finish, the later first
            self.release()
        return future

    def release(self):
        while self.held:
            future, fn, args = self.held.pop()
            future.set_result(fn(*args))

    def shutdown(self, wait=True, *, cancel_futures=False):
        self.release()


class FailsOne(ThreadPoolExecutor):
    """An executor that loses the job of one file (as a cluster loses a task whose node dies twice)."""

    def __init__(self, doomed: str):
        super().__init__(2)
        self.doomed = doomed

    def submit(self, fn, /, *args, **kwargs):
        if getattr(args[0], "path", None) == self.doomed:
            future: Future = Future()
            future.set_exception(RuntimeError("node lost twice\nmore detail"))
            return future
        return super().submit(fn, *args, **kwargs)


def test_files_are_committed_in_their_order_whatever_order_they_finish(tmp_path, music_dir):
    files = sorted(str(p) for p in music_dir.rglob("*.flac"))
    with Library.open(tmp_path / "local") as lib:
        lib.add(files, workers=1, analyse=False)
    executor = Reversed()
    with Library.open(tmp_path / "reversed") as lib:
        lib.add(files, executor=executor, workers=1, analyse=False)
        assert [t.path for t in lib.tracks()] == files
    assert catalogue(tmp_path / "reversed") == catalogue(tmp_path / "local")


def test_a_job_the_executor_fails_is_reported_like_a_bad_file(tmp_path, music_dir):
    files = sorted(str(p) for p in music_dir.rglob("*.flac"))
    with Library.open(tmp_path / "lib") as lib, FailsOne(files[2]) as executor:
        report = lib.add(files, executor=executor, analyse=False)
        assert [path for path, _ in report.failed] == [files[2]]
        assert report.failed[0][1] == "its worker failed: RuntimeError: node lost twice"
        assert len(lib.tracks()) == len(files) - 1


def test_an_unknown_executor_or_a_missing_ray_is_one_line(tmp_path, music_dir, monkeypatch):
    with Library.open(tmp_path / "lib") as lib:
        with pytest.raises(UsageError, match="unknown executor 'dask'"):
            lib.add([music_dir], executor="dask", analyse=False)
        monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
        with pytest.raises(UsageError, match=r"needs Ray: pip install 'tuneseek\[scale\]'"):
            lib.add([music_dir], executor="ray", analyse=False)
        assert lib.tracks() == []


@pytest.mark.slow
def test_ray_writes_the_same_library_as_the_local_pool_byte_for_byte(ray, tmp_path, music_dir, models):
    with Library.open(tmp_path / "local") as lib:
        local = lib.add([music_dir], workers=2)
        lib.compact()  # one segment: how commits happened to batch the files no longer shows
    with Library.open(tmp_path / "ray") as lib:
        remote = lib.add([music_dir], executor="ray")
        assert (lib.stats().tagged, lib.stats().embedded) == (6, 6)  # the workers found the models
        lib.compact()
    assert len(local.added) == len(remote.added) == 6 and not remote.failed
    assert catalogue(tmp_path / "ray") == catalogue(tmp_path / "local")
    assert index_bytes(tmp_path / "ray") == index_bytes(tmp_path / "local")


@pytest.mark.slow
def test_a_file_a_ray_worker_cannot_read_is_one_clear_error(ray, tmp_path, music_dir):
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"fLaC" + bytes(range(256)) * 8)
    with Library.open(tmp_path / "lib") as lib:
        report = lib.add([music_dir, broken], executor="ray", analyse=False)
    [(path, reason)] = report.failed
    assert path == str(broken) and "\n" not in reason and len(report.added) == 6


@pytest.mark.slow
def test_a_ray_task_whose_worker_dies_is_retried_once_then_fails(ray, tmp_path):
    from tuneseek.executors import RayExecutor

    def dies_first_time(marker: str) -> str:  # defined here: Ray ships a nested function by value
        import os

        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker dies, as on a lost node
        return "done on the second try"

    def always_dies() -> None:
        import os

        os._exit(1)

    executor = RayExecutor()
    assert executor.submit(dies_first_time, str(tmp_path / "tried")).result(timeout=120) == "done on the second try"
    with pytest.raises(Exception, match="(?i)worker"):
        executor.submit(always_dies).result(timeout=120)
    executor.shutdown()
    assert ray.is_initialized()  # a Ray instance the executor did not start is left running


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill -9 the driver", "Ctrl-C in its terminal"])
def test_a_ray_run_stopped_keeps_what_it_committed_in_order_and_leaves_no_process(ray, tmp_path, how):
    import os
    import signal
    import subprocess
    import time

    import soundfile as sf

    from conftest import SR
    from tuneseek.synth import synth_catalog

    music = tmp_path / "music"
    music.mkdir()
    for t in synth_catalog(24, duration=20.0, sr=SR, seed=606):
        sf.write(music / f"{t.name}.flac", t.audio, SR)
    root = tmp_path / "lib"
    driver = subprocess.Popen(
        [sys.executable, "-m", "tuneseek.cli", "--library", str(root), "index", "--landmarks-only"]
        + ["--executor", "ray", "--commit-every", "0", str(music)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own session and process group, as a terminal gives a command
    )
    committed = 0
    for _ in range(1200):
        if (root / "tuneseek.json").exists():
            with Library.open(root, create=False) as lib:
                committed = len(lib.tracks())
        if committed >= 3 or driver.poll() is not None:
            break
        time.sleep(0.1)
    assert driver.poll() is None and committed >= 3, "the run ended before it could be stopped"
    if how == "kill -9 the driver":
        os.kill(driver.pid, signal.SIGKILL)
    else:  # a terminal's Ctrl-C reaches every process of the group: the driver and Ray's own
        os.killpg(driver.pid, signal.SIGINT)
    _, err = driver.communicate(timeout=120)
    if how != "kill -9 the driver":
        assert driver.returncode != 0 and "interrupted: " in err and "Traceback" not in err
    for _ in range(300):  # Ray's own processes for the run go with their driver
        left = subprocess.run(["pgrep", "-a", "-s", str(driver.pid)], capture_output=True, text=True).stdout
        if not left:
            break
        time.sleep(0.1)
    assert left == ""
    with Library.open(root) as lib:
        kept = [t.path for t in lib.tracks()]
        assert kept == sorted(str(p) for p in music.iterdir())[: len(kept)]  # committed in order, none half
        report = lib.add([music], workers=1, analyse=False)
        assert len(report.unchanged) == len(kept) and len(lib.tracks()) == 24
