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
        out[table] = sorted(db.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall(), key=repr)
    db.close()
    return out


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
