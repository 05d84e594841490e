"""Indexing on this machine's process pool and on a local Ray instance: throughput, and the same library?

Indexes the same folders into fresh libraries, alternating local and Ray for ``--rounds`` rounds
(so that a machine busy with something else weighs on both), landmarks only by default (``--analyse``
adds musicnn tags and embeddings), and reports the wall time, the audio per second of wall time,
and whether each Ray library equals the local one (catalogue rows, and after ``compact`` the index
files, byte for byte)::

    python benchmarks/executors.py bench-work/music/library bench-work/synth --rounds 2
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from tuneseek import Library


def digest(root: Path) -> str:
    """A digest of the catalogue (times, segment names and the count of commits left out) and of the
    compacted index files."""
    h = hashlib.sha256()
    db = sqlite3.connect(root / "catalog.sqlite")
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
        cols = [c[1] for c in db.execute(f"PRAGMA table_info({table})") if c[1] not in ("created_at", "added_at")]
        if table == "segments":
            cols.remove("name")
        for row in sorted(db.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall(), key=repr):
            if table != "meta" or row[0] != "generation":  # the count of commits, not what they hold
                h.update(repr(row).encode())
    db.close()
    for seg in sorted((root / "landmarks").iterdir()):
        for f in sorted(seg.iterdir()):
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def run(folders: list[str], where: str, work: Path, analyse: bool, workers: int) -> tuple[float, float, str]:
    root = work / f"lib-{where}"
    shutil.rmtree(root, ignore_errors=True)
    with Library.open(root) as lib:
        t = time.perf_counter()
        report = lib.add(folders, workers=workers, executor=where, analyse=analyse)
        elapsed = time.perf_counter() - t
        lib.compact()
    return elapsed, report.audio_seconds, digest(root)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="processes of the local pool and CPUs of the Ray instance")
    ap.add_argument("--analyse", action="store_true", help="also musicnn tags and embeddings (slow)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tuneseek-executors-"))
    print(
        f"command: `python benchmarks/executors.py {' '.join(a.folders)} --rounds {a.rounds} --workers {a.workers}"
        + (" --analyse" if a.analyse else "")
        + "`\n"
    )
    print("| round | executor | wall s | audio h | x real time | library digest |")
    print("| --- | --- | --- | --- | --- | --- |")
    try:
        for r in range(1, a.rounds + 1):
            for where in ("local", "ray"):
                elapsed, audio, dig = run(a.folders, where, work, a.analyse, a.workers)
                print(f"| {r} | {where} | {elapsed:.1f} | {audio / 3600:.2f} | {audio / elapsed:.0f} | `{dig}` |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
