"""A library the user cannot write: ``index``, ``remove`` and ``compact`` say so in one line.

The real check makes the library's ``writer.lock`` unwritable at the OS level: with ``chmod``
for an ordinary user, and, since root ignores file modes, with a read-only bind mount in a
private mount namespace when the tests run as root (skipped only where neither is possible).
"""

import errno
import os
import shutil
import subprocess
import sys

import pytest

from tuneseek import Library
from tuneseek.cli import main
from tuneseek.store.lock import LOCK_NAME

# Runs "$@" with the file $0 bind-mounted read-only, in a mount namespace of its own.
_READ_ONLY_FILE = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && shift && exec "$@"'


@pytest.fixture
def library(tmp_path, music_dir):
    lib = tmp_path / "lib"
    with Library.open(lib, create=True) as opened:
        opened.add([str(p) for p in sorted(music_dir.rglob("*.flac"))[:2]], workers=1, analyse=False)
    return lib


def _read_only_lock_prefix(lib):
    """The command prefix that runs a process for which ``lib``'s writer lock is read-only."""
    lock = lib / LOCK_NAME
    if os.geteuid() != 0:
        lock.chmod(0o444)
        return []
    prefix = ["unshare", "-m", "sh", "-c", _READ_ONLY_FILE, str(lock), "x"]
    if (
        shutil.which("unshare") is None
        or subprocess.run([*prefix, "true"], check=False, capture_output=True).returncode != 0
    ):
        pytest.skip("running as root without the right to bind-mount a file read-only")
    return prefix


@pytest.mark.parametrize("command", [["index", "{music}"], ["remove", "1"], ["compact"]])
def test_writing_commands_on_a_read_only_library_fail_in_one_line(command, library, music_dir):
    prefix = _read_only_lock_prefix(library)
    args = [a.format(music=music_dir) for a in command]
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"))
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "tuneseek.cli", "-L", str(library), *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"tuneseek: error: library {library}: read-only: cannot write here (")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    with Library.open(library, create=False) as lib:
        assert len(lib.tracks()) == 2  # nothing changed


@pytest.mark.parametrize("error", [errno.EACCES, errno.EROFS])
def test_permission_and_read_only_errors_on_the_lock_are_library_errors(error, library, monkeypatch, capsys):
    real_open = os.open

    def refuse_lock(path, *args, **kw):
        if os.fspath(path).endswith(LOCK_NAME):
            raise OSError(error, os.strerror(error), os.fspath(path))
        return real_open(path, *args, **kw)

    monkeypatch.setattr(os, "open", refuse_lock)
    assert main(["-L", str(library), "remove", "1"]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"tuneseek: error: library {library}: read-only: cannot write here ({os.strerror(error)}: {LOCK_NAME})\n"
    )
