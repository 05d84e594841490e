"""Is a change slower? Identification and indexing of two git revisions, measured turn about.

A refactor should leave speed as it was, and a shared machine makes two runs an hour apart hard
to compare. This measures both revisions in alternating rounds, each in a fresh process pinned to
one core: the CPU time per query (``time.process_time``, which time stolen by other processes does
not inflate) of clean clips and of clips of music not in the library, against a library built
once by the newer revision; the wall time of one ``tuneseek identify`` process; and indexing
throughput and peak memory (``Library.add(files, workers=1, analyse=False)`` into a fresh library).

Needs what ``benchmarks/identify.py`` leaves in WORK (its query sets and ``lib-10h``), e.g.::

    python benchmarks/identify.py --steps accuracy,scale
    python benchmarks/compare_revisions.py ffbfb52 HEAD --rounds 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from code_snapshot import REPO, make_snapshot
from machine_load import ONE_CORE_ENV


def child_query(work: Path, n_pos: int, n_neg: int) -> dict:
    """CPU ms per ``Library.candidates`` call (k=1) on decoded clips: clean 10 s clips, and clips not in the library."""
    from tuneseek import audio
    from tuneseek.library import Library

    pos = sorted((work / "queries/pt3-seed0/L10-clean/test/sample").rglob("*.wav"))[:n_pos]
    neg = sorted((work / "queries/neg-pt15-seed0/L10").rglob("*.wav"))[:n_neg]
    lib = Library.open(work / "lib-10h", create=False)
    clips = [audio.load(str(f), 8000, quality="LQ") for f in pos + neg]
    try:
        ask = lambda c: lib.candidates(c, sr=8000, k=1)  # keyword-only since issue 11
        ask(clips[0])
    except TypeError:
        ask = lambda c: lib.candidates(c, 8000, 1)
    ms = []
    for c in clips:
        t = time.process_time()
        ask(c)
        ms.append((time.process_time() - t) * 1000)
    return {"pos": ms[: len(pos)], "neg": ms[len(pos) :]}


def child_index(work: Path) -> dict:
    """Index the benchmark's library music and synthetic tracks into a fresh library: ×RT and peak RSS."""
    import resource
    import tempfile

    from tuneseek.library import Library

    files = sorted(str(p) for p in (work / "music/library").rglob("*") if p.is_file())
    files += sorted(str(p) for p in (work / "synth").glob("*.flac"))
    with tempfile.TemporaryDirectory() as tmp, Library.open(Path(tmp) / "lib") as lib:
        t = time.perf_counter()
        report = lib.add(files, workers=1, analyse=False)
        elapsed = time.perf_counter() - t
        return {
            "xrt": report.audio_seconds / elapsed,
            "hours": report.audio_seconds / 3600,
            "segments": lib.stats().segments,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def run(snap: Path, what: str, work: Path, args: list[str] = ()) -> dict:
    env = dict(os.environ, **ONE_CORE_ENV, PYTHONPATH=str(snap))
    out = subprocess.run(
        ["taskset", "-c", "1", sys.executable, __file__, "--child", what, "--work", str(work), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def identify_process_ms(snap: Path, work: Path) -> float:
    clip = sorted((work / "queries/pt3-seed0/L10-clean/test/sample").rglob("*.wav"))[0]
    env = dict(os.environ, **ONE_CORE_ENV, PYTHONPATH=str(snap))
    t = time.perf_counter()
    subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            sys.executable,
            "-m",
            "tuneseek.cli",
            "--library",
            str(work / "lib-10h"),
            "identify",
            str(clip),
        ],
        env=env,
        capture_output=True,
        check=True,
    )
    return (time.perf_counter() - t) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", nargs="?", help="the older git revision")
    ap.add_argument("head", nargs="?", default="HEAD", help="the newer git revision (default HEAD)")
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds (default 4)")
    ap.add_argument("--queries", type=int, default=126, help="clean clips per round (default 126)")
    ap.add_argument("--negatives", type=int, default=60, help="clips not in the library per round (default 60)")
    ap.add_argument("--no-index", action="store_true", help="skip the indexing rounds")
    ap.add_argument("--work", type=Path, default=REPO / "bench-work")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "query":
        print(json.dumps(child_query(a.work, a.queries, a.negatives)))
        return
    if a.child == "index":
        print(json.dumps(child_index(a.work)))
        return
    if a.base is None:
        ap.error("give the older revision")
    snaps = {}
    for rev in (a.base, a.head):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        snaps[rev] = (commit, make_snapshot(a.work, f"git-{commit}", commit))
    results = {rev: {"pos": [], "neg": [], "start": [], "index": []} for rev in snaps}
    for r in range(a.rounds):
        for rev, (commit, snap) in snaps.items():
            q = run(snap, "query", a.work, ["--queries", str(a.queries), "--negatives", str(a.negatives)])
            results[rev]["pos"].append(statistics.median(q["pos"]))
            results[rev]["neg"].append(statistics.median(q["neg"]))
            results[rev]["start"].append(identify_process_ms(snap, a.work))
            if not a.no_index:
                results[rev]["index"].append(run(snap, "index", a.work))
            print(
                f"round {r + 1}/{a.rounds} {commit}: query medians {results[rev]['pos'][-1]:.1f} / "
                f"{results[rev]['neg'][-1]:.1f} ms, identify process {results[rev]['start'][-1]:.0f} ms",
                file=sys.stderr,
            )
    print(
        f"command: `python benchmarks/compare_revisions.py {a.base} {a.head} --rounds {a.rounds}`; "
        f"{a.queries} clean 10 s clips and {a.negatives} not in the library per round, one core\n"
    )
    print(
        "| revision | query CPU ms, clean (median per round) | query CPU ms, not in library | "
        "`tuneseek identify` process ms | indexing ×RT, one core | indexing peak RSS MB (segments) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for rev, (commit, _) in snaps.items():
        res = results[rev]
        fmt = lambda xs: ", ".join(f"{x:.1f}" for x in xs) + f" (mean {statistics.fmean(xs):.1f})"
        idx = res["index"]
        index = ", ".join(f"{i['xrt']:.0f}" for i in idx) if idx else "—"
        peak = ", ".join(f"{i['peak_mb']:.0f} ({i['segments']})" for i in idx) if idx else "—"
        print(f"| {commit} | {fmt(res['pos'])} | {fmt(res['neg'])} | {fmt(res['start'])} | {index} | {peak} |")


if __name__ == "__main__":
    main()
