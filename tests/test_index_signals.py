"""Indexing workers end with their parent, and an interrupt stops indexing promptly, keeping what finished.

Each test runs indexing in a subprocess (the real command, or a short script over the Python
API that prints every file as it finishes), signals it, and looks in /proc for every process it
had started: none may outlive it by more than a few seconds, whether it was killed with
``kill -9`` or stopped by SIGINT / SIGTERM.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Executor, Future
from pathlib import Path

import pytest
import soundfile as sf

from conftest import SR
from tuneseek import Library, indexing
from tuneseek.synth import synth_catalog

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="looks for processes in /proc")

SRC = str(Path(__file__).parents[1] / "src")


def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, parent pid, start time)`` of a process, or None when there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def descendants(root: int) -> dict[int, int]:
    """Every live process below ``root``: ``{pid: start time}`` (the start time tells a reused pid apart)."""
    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(int(p))) is not None}
    found, todo = {}, [root]
    while todo:
        parent = todo.pop()
        for pid, (state, ppid, start) in stats.items():
            if ppid == parent and pid not in found and state != "Z":
                found[pid] = start
                todo.append(pid)
    return found


def still_running(processes: dict[int, int]) -> list[int]:
    out = []
    for pid, start in processes.items():
        s = _stat(pid)
        if s is not None and s[0] != "Z" and s[2] == start:
            out.append(pid)
    return out


def wait_until(condition, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    """Twelve distinct 10 s songs."""
    root = tmp_path_factory.mktemp("signal-music")
    for t in synth_catalog(12, duration=10.0, sr=SR, seed=31):
        sf.write(root / f"{t.name}.wav", t.audio, SR)
    return root


@pytest.fixture
def env(standin_models):
    """The subprocess's environment: the package from this checkout, the stand-in musicnn models."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
        "TUNESEEK_MODELS": str(standin_models),
        "TUNESEEK_OFFLINE": "1",
    }


def start(argv: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def workers_started(proc: subprocess.Popen, n: int, timeout: float = 120.0) -> dict[int, int]:
    """Wait until ``proc`` has ``n`` or more processes below it besides the resource tracker."""

    def busy() -> int:
        return sum(b"resource_tracker" not in _cmdline(pid) for pid in descendants(proc.pid))

    def enough() -> bool:
        return busy() >= n or proc.poll() is not None

    assert wait_until(enough, timeout), "the workers did not start"
    assert proc.poll() is None, proc.communicate()
    return descendants(proc.pid)


@pytest.mark.slow
def test_kill_9_of_index_leaves_no_worker_or_fork_server(music, env, tmp_path):
    proc = start(["-m", "tuneseek.cli", "-L", str(tmp_path / "lib"), "index", "--workers", "2", str(music)], env)
    family = workers_started(proc, 3)  # the fork server and two workers (the resource tracker too)
    time.sleep(0.5)
    family.update(descendants(proc.pid))
    proc.kill()
    proc.communicate()
    assert wait_until(lambda: not still_running(family), 5.0), (
        f"still running 5 s after kill -9 of their parent: {still_running(family)}"
    )


SLOW_JOB = """
import time

def slow(job):
    time.sleep(120)
"""
SLOW_POOL = """
import slowjob
from tuneseek import indexing

indexing._work = slowjob.slow  # the workers import it by name: from slowjob, on the PYTHONPATH
for outcome in indexing.run_jobs(["a", "b", "c"], workers=2):
    pass
"""


def test_kill_9_ends_workers_in_the_middle_of_a_job(env, tmp_path):
    (tmp_path / "slowjob.py").write_text(SLOW_JOB)
    proc = start(["-c", SLOW_POOL], {**env, "PYTHONPATH": os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])})
    family = workers_started(proc, 2)
    proc.kill()
    proc.communicate()
    assert wait_until(lambda: not still_running(family), 5.0), f"still running: {still_running(family)}"


ADD_AND_REPORT = """
import sys
from tuneseek import Library
from tuneseek.indexing import Interrupted

def finished(outcome):
    if not outcome.error:
        print("finished", outcome.path, flush=True)

with Library.open(sys.argv[1]) as lib:
    try:
        lib.add([sys.argv[2]], workers=int(sys.argv[3]), progress=finished)
    except Interrupted as e:
        print("interrupted", e.committed, e.not_indexed, flush=True)
        print(e, file=sys.stderr)
        sys.exit(130)
print("completed", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "sig"), [(2, signal.SIGINT), (1, signal.SIGTERM)])
def test_an_interrupt_commits_what_finished_and_stops_within_seconds(music, env, tmp_path, workers, sig):
    lib = tmp_path / "lib"
    proc = start(["-c", ADD_AND_REPORT, str(lib), str(music), str(workers)], env)
    first = proc.stdout.readline()
    assert first.startswith("finished"), (first, proc.communicate())
    family = descendants(proc.pid)
    t0 = time.monotonic()
    proc.send_signal(sig)
    hung = threading.Timer(30, proc.kill)  # a run that does not stop fails below, it does not hang the tests
    hung.start()
    # the rest through the reader readline() used: it may hold lines read ahead, which communicate() would skip
    out = proc.stdout.read()
    _, err = proc.communicate()
    hung.cancel()
    took = time.monotonic() - t0
    lines = [first, *out.splitlines()]
    finished = {line.split(" ", 1)[1].strip() for line in lines if line.startswith("finished")}
    assert proc.returncode == 130, (out, err)
    assert took < 10.0, f"took {took:.1f} s to stop"  # the in-flight files alone would take far longer
    _, committed, not_indexed = next(line for line in lines if line.startswith("interrupted")).split()
    assert int(committed) == len(finished) and int(not_indexed) >= 1
    assert int(committed) + int(not_indexed) == 12
    assert f"interrupted: {committed} files committed, {not_indexed} not indexed" in err
    with Library.open(lib) as library:
        assert {t.path for t in library.tracks()} == finished
    assert wait_until(lambda: not still_running(family), 5.0), f"still running: {still_running(family)}"


@pytest.mark.slow
def test_the_index_command_stops_on_sigterm_and_the_library_opens(music, env, tmp_path):
    lib = tmp_path / "lib"
    proc = start(["-m", "tuneseek.cli", "-L", str(lib), "index", "--workers", "2", str(music)], env)
    family = workers_started(proc, 3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 5.0
    assert proc.returncode == 130 and "interrupted" in err, err
    with Library.open(lib) as library:
        assert len(library.tracks()) < 12
    assert wait_until(lambda: not still_running(family), 5.0), f"still running: {still_running(family)}"


@pytest.mark.slow
def test_a_script_without_a_main_guard_is_told_why_its_workers_died(music, env, tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from tuneseek import Library\n"
        f"Library.open({str(tmp_path / 'lib')!r}).add([{str(music)!r}], workers=2, analyse=False)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tuneseek.errors.WorkersLost:") and 'if __name__ == "__main__":' in last


class _HeldBackExecutor(Executor):
    """Runs every job at once except ``held``, whose future never finishes (a job still running on a
    cluster, or one its worker lost), then interrupts this process as a terminal's Ctrl-C would."""

    workers = 4

    def __init__(self, jobs: int, held: int):
        self.jobs, self.held, self.submitted = jobs, held, 0

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        if self.submitted != self.held:
            future.set_result(fn(*args, **kwargs))
        self.submitted += 1
        if self.submitted == self.jobs:
            signal.raise_signal(signal.SIGINT)
        return future


def test_an_interrupted_run_keeps_the_files_before_the_first_unfinished_one_and_none_after(music):
    files = sorted(str(p) for p in music.iterdir())[:4]
    kept = []
    with pytest.raises(indexing.Interrupted) as stopped:
        kept.extend(o.path for o in indexing.run_jobs(files, executor=_HeldBackExecutor(len(files), held=1)))
    assert kept == files[:1]  # files[2] and [3] finished, but would take files[1]'s place in the order
    assert stopped.value.not_indexed == 3
