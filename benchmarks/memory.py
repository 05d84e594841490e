"""Peak memory of the analysis and indexing commands on one long file.

Every case runs ``python -m tuneseek.cli ...`` in a fresh process; the process tree (the
command, the multiprocessing fork server and resource tracker, the indexing workers) is
sampled every 0.1 s from ``/proc``, and each process's peak resident set (``VmHWM``, kept by the
kernel, so no peak between two samples is missed while the process lives) is recorded, with the
command's own exact peak from ``wait4``. A ``fixed`` case loads torch and both musicnn models
and runs one window through each: what any command that runs a network pays whatever the
file's length.

The long file is made once under ``--work``: the Wesnoth soundtrack (Debian package
``wesnoth-1.16-music``) joined end to end with sox until it lasts ``--hours``, as Ogg Vorbis; a
second, different file of the same length (the same music from its middle on) lets
``index --workers 2`` run two long files at once. Without that music, synthetic songs from
:mod:`tuneseek.synth` are written instead (FLAC, block by block).

    python benchmarks/memory.py                          # 4 h, every case
    python benchmarks/memory.py --hours 1 --cases fixed,tag --src snapshot/src   # another code version

``--src DIR`` puts ``DIR`` first on ``PYTHONPATH`` (a copy of an older ``src/``, to measure
before and after); the models directory is ``$TUNESEEK_MODELS`` as usual. Results are printed
as a Markdown table and written as JSON to ``--work/memory-<hours>h.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MUSIC = Path("/usr/share/games/wesnoth/1.16/data/core/music")
CASES = ("fixed", "tag", "embed", "landmarks", "index1", "index2")
FIXED = """
import numpy as np
from tuneseek import analysis
from tuneseek.embed.musicnn_extractor import tag
for name in analysis.MODELS:
    tag(np.random.default_rng(0).standard_normal(48000).astype(np.float32) * 0.1, analysis.model(name))
"""


def make_long_file(work: Path, hours: float, part: int) -> Path:
    """A ``hours``-long music file (``part`` 1 or 2: two different files), made once."""
    suffix = "ogg" if MUSIC.is_dir() and shutil.which("sox") else "flac"
    out = work / f"long-{hours:g}h-{part}.{suffix}"
    if out.exists():
        return out
    tmp = out.with_name(f"tmp-{out.name}")
    if suffix == "ogg":
        tracks = sorted(str(p) for p in MUSIC.glob("*.ogg") if p.name != "silence.ogg")
        if part == 2:
            tracks = tracks[len(tracks) // 2 :] + tracks[: len(tracks) // 2]
        total = sum(float(x) for x in subprocess.check_output(["soxi", "-D", *tracks], text=True).split())
        repeats = int(hours * 3600 // total) + 1
        subprocess.run(["sox", *(tracks * repeats), "-C", "3", str(tmp), "trim", "0", str(hours * 3600)], check=True)
    else:
        import soundfile as sf

        from tuneseek.synth import synth_catalog

        sr, song = 22050, 180.0
        with sf.SoundFile(tmp, "w", sr, 1, format="FLAC") as f:
            for i in range(int(hours * 3600 // song)):
                f.write(synth_catalog(1, duration=song, sr=sr, seed=1000 * part + i)[0].audio)
    tmp.rename(out)
    return out


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _tree(root: int) -> list[int]:
    kids, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def _status(pid: int) -> dict[str, int]:
    """``VmHWM`` and ``VmRSS`` of ``pid`` in kB (empty once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if k in ("VmHWM", "VmRSS")}
    except (OSError, ValueError):
        return {}


def _role(pid: int, main: int) -> str:
    if pid == main:
        return "main"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "worker"
    if "resource_tracker" in cmd:
        return "tracker"
    if "forkserver import main" in cmd and _parent(pid) == main:
        return "forkserver"
    return "worker"


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return -1


def measure(argv: list[str], env: dict[str, str]) -> dict:
    """Run ``argv``; its wall time, exit status and peak memory (MB) per role and for the tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks: dict[int, tuple[str, int]] = {}
    tree_peak = 0
    status = None
    while status is None:
        rss = 0
        for pid in _tree(proc.pid):
            st = _status(pid)
            if st:
                role = peaks.get(pid, (_role(pid, proc.pid), 0))[0]
                peaks[pid] = (role, max(peaks.get(pid, (role, 0))[1], st.get("VmHWM", 0)))
                rss += st.get("VmRSS", 0)
        tree_peak = max(tree_peak, rss)
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == 0:
            status = None
            time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace").strip()
    by_role: dict[str, int] = {}
    for role, kb in peaks.values():
        by_role[role] = max(by_role.get(role, 0), kb)
    by_role["main"] = max(by_role.get("main", 0), usage.ru_maxrss)
    return {
        "argv": argv[2:],
        "exit": proc.returncode,
        "seconds": round(time.perf_counter() - t0, 1),
        "peak_mb": {role: round(kb / 1024) for role, kb in sorted(by_role.items())},
        "tree_peak_mb": round(tree_peak / 1024),
        "workers_seen": sum(r == "worker" for r, _ in peaks.values()),
        "stderr_tail": err[-300:],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=float, default=4.0)
    p.add_argument("--work", type=Path, default=Path("bench-work/memory"))
    p.add_argument("--src", type=Path, help="a src/ folder to run instead of the installed package")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    p.add_argument("--label", default="", help="name of this run in the JSON file (e.g. before, after)")
    args = p.parse_args()
    cases = args.cases.split(",")
    unknown = set(cases) - set(CASES)
    if unknown:
        p.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    args.work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join([str(args.src.resolve()), *filter(None, [env.get("PYTHONPATH")])])
    first = make_long_file(args.work, args.hours, 1)
    second = make_long_file(args.work, args.hours, 2) if "index2" in cases else None
    cli = [sys.executable, "-m", "tuneseek.cli"]
    lib = args.work / "libs"
    argvs = {
        "fixed": [sys.executable, "-c", FIXED],
        "tag": [*cli, "tag", str(first)],
        "embed": [*cli, "embed", str(first), "-o", str(args.work / "embed-out.npy")],
        "landmarks": [*cli, "-L", str(lib / "landmarks"), "index", "--landmarks-only", "--workers", "1", str(first)],
        "index1": [*cli, "-L", str(lib / "index1"), "index", "--workers", "1", str(first)],
        "index2": [*cli, "-L", str(lib / "index2"), "index", "--workers", "2", str(first), str(second or "")],
    }
    results = {}
    for case in cases:
        shutil.rmtree(lib / case, ignore_errors=True)
        print(f"· {case}: {' '.join(argvs[case][1:])}", file=sys.stderr, flush=True)
        results[case] = measure(argvs[case], env)
        print(f"  {json.dumps(results[case])}", file=sys.stderr, flush=True)
    shutil.rmtree(lib, ignore_errors=True)
    out = args.work / f"memory-{args.hours:g}h.json"
    saved = json.loads(out.read_text()) if out.exists() else {}
    saved.setdefault(args.label or "run", {}).update(results)
    out.write_text(json.dumps(saved, indent=1))
    print(f"| case ({args.hours:g} h file) | exit | wall s | main MB | worker MB | fork server MB | tree MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for case, r in results.items():
        m = r["peak_mb"]
        print(
            f"| {case} | {r['exit']} | {r['seconds']} | {m.get('main', '')} | {m.get('worker', '')} | "
            f"{m.get('forkserver', '')} | {r['tree_peak_mb']} |"
        )


if __name__ == "__main__":
    main()
