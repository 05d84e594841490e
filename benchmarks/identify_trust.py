#!/usr/bin/env python3
"""Identification you can trust (issue 10): lead-ins, sub-frame shifts, wide speed/tempo/pitch
changes, false positives on music from other sources, stated confidence vs observed precision,
and query time, on real music (Debian packages).

    python benchmarks/identify_trust.py            # full run (~10 min on the shared 2-core machine)
    python benchmarks/identify_trust.py --quick    # about a quarter of the clips

Library (indexed fresh into WORK/trust/lib, landmarks only): the 41 Wesnoth tracks (``silence.ogg``
is refused as silent) + the 4 muldjord ``song.ogg``, as in benchmarks/identify.py.

Parts (``--parts``, default all):

``leadin``     10 s of a library song after 2 s or 40 s of other audio (music from sectoid /
               singularity at the song's loudness, pink noise at the song's loudness, digital
               silence); half the songs from the track's very start, half from its middle.
               Top-1, and the error of ``clip_start`` / ``offset`` / ``clip_end`` against the truth.
``shifts``     clean clips (10, 5, 3 s) cut 0, 8, 16, 24 ms later: score spread across the four
               cuts (min/max per clip) and top-1 at each cut.
``grid``       10 / 5 / 3 s clips with speed 0.96 / 1.05, tempo 0.92 / 1.10 (pitch kept), pitch
               +1 semitone (tempo kept; pedalboard.PitchShift, degrade.py has no pitch step) and
               pink noise at 0 dB SNR (the other specs from tuneseek.degrade).  As in make_queries,
               ``L`` seconds of the source are cut and then degraded (a speed/tempo clip is L/F long).
``unrelated``  10 / 5 / 3 s clips of music from sources not in the library: sectoid songs and
               guitar stems (the set the thresholds were calibrated on), singularity, warzone2100,
               asc, hyperrogue.
``timing``     one process pinned to one core: ``Library.candidates(samples at 8 kHz, k=1)``
               (= ``identify``) on 10 s clips, decoding and resampling excluded.

Clips per cell (full / ``--quick``): lead-in 64 / 16 per condition (6 conditions); shifts 60 / 16 clips per
length (x 4 cuts); grid 64 / 16 per cell; unrelated 100 / 24 (10 s) and 60 / 12 (5 s, 3 s) per source,
spread evenly over its files; timing 60 / 20 clips per set.

Every query is answered with ``Library.candidates(clip, sr=8000, k=3)``; the clip is made at the
source's rate (degradations there) and resampled to 8 kHz with the library's own resampler
settings beforehand.  Each query's features go to WORK/trust/<part>.jsonl (quick run:
WORK/trust/quick/<part>.jsonl), one JSON object a line:

- ``id``, ``part``, ``set`` (degradation or lead-in condition), ``length`` (seconds of the source
  song cut), ``clip_seconds``, ``source`` (wesnoth, muldjord, sectoid_song, ...), ``in_library``,
  ``file``, ``start`` (seconds in ``file``), ``recipe`` (everything needed to make the clip again:
  ``make_clip(recipe)`` in this file);
- ``truth``: ``{path, offset, clip_start, clip_end}`` for library music, else null;
- ``candidates``: the returned matches, best first (k=3): ``track``, ``path``, ``score``,
  ``confidence``, ``coverage``, ``offset``, ``track_start``, ``clip_start``, ``clip_end``, ``speed``,
  ``tempo``, ``correct`` (same file as the truth); ``top_correct`` (null when nothing was returned);
- ``raw``: what verification saw whatever the no-match decision (``LandmarkIndex.evidence``: every
  stage run to the end): for the plain hypothesis (``plain``) and the widened stage (``wide``), the
  best-scoring judged pile with its features (``score``, ``track``, ``hypothesis`` [time scale,
  freq scale], ``features`` [the verification model's inputs], ``confidence``, ``offset``,
  ``clip_start``, ``clip_end``, ``coverage``, ``speed``, ``tempo``, ``correct``) and
  ``second_score`` (best pile of another track in that stage);
- ``latency_ms`` (candidates() alone, in a busy worker: indicative only, see ``timing``), ``error``.

Everything generated stays under ``--work`` (default ``bench-work/``, git-ignored).  By default the
run measures a snapshot of ``src/tuneseek`` taken at its start (``WORK/snapshot/<hash>``, with
``git diff HEAD -- src`` beside it), so that edits to src/ during the run do not mix code versions.
"""

from __future__ import annotations

import os

from machine_load import ONE_CORE_ENV

os.environ.update(ONE_CORE_ENV)

import argparse
import datetime as _dt
import hashlib
import json
import math
import platform
import shutil
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import code_snapshot as snapshot
from machine_load import cpu_busy_seconds, wait_quiet

REPO = Path(__file__).resolve().parent.parent
#: where a snapshot run finds the record of the code it measures
CODE_ENV = "TUNESEEK_TRUST_CODE"
WESNOTH = Path("/usr/share/games/wesnoth/1.16/data/core/music")
FOF = Path("/usr/share/games/fretsonfire/data/songs")
SINGULARITY = Path("/usr/share/games/singularity/music")
WARZONE = Path("/usr/share/games/warzone2100")
ASC = Path("/usr/share/games/asc/music")
HYPERROGUE = Path("/usr/share/hyperrogue/music")
APT_HINT = (
    "apt-get install wesnoth-1.16-music fretsonfire-songs-muldjord fretsonfire-songs-sectoid "
    "singularity-music warzone2100-music asc-music hyperrogue-music"
)
QSR = 8000  # the rate clips are handed to the library at (its fingerprint rate)
LENGTHS = (10, 5, 3)
LEAD_SECONDS = (2.0, 40.0)
LEAD_KINDS = ("music", "pink noise", "silence")
LEAD_TARGET = 0.97
SHIFTS_MS = (0, 8, 16, 24)
# (spec, title, targets for 10 / 5 / 3 s)
GRID = (
    ("speed:0.96", "speed −4 % (pitch and tempo)", (0.95, 0.90, 0.80)),
    ("speed:1.05", "speed +5 % (pitch and tempo)", (0.95, 0.90, 0.80)),
    ("tempo:0.92", "tempo −8 % (pitch kept)", (0.95, 0.90, 0.80)),
    ("tempo:1.1", "tempo +10 % (pitch kept)", (0.95, 0.90, 0.80)),
    ("pitch:+1", "pitch +1 semitone (tempo kept)", (0.90, 0.80, 0.65)),
    ("noise:0db", "pink noise, 0 dB SNR", (0.92, 0.80, 0.65)),
)
FP_TARGET_10S = 0.005


def in_sample_sources() -> tuple[tuple[str, ...], str]:
    """The unrelated sources the measured code's no-match decision was fitted on, and why."""
    try:
        from tuneseek.fingerprint import query as Q

        if hasattr(Q, "MIN_CONFIDENCE"):
            return ("warzone2100",), (
                "warzone2100 is **in-sample**: the confidence model was fitted against it "
                "(`benchmarks/calibrate_identify.py`, default `--fit-source warzone`); the "
                "others are out of sample for the fit"
            )
    except Exception:  # noqa: BLE001
        pass
    return ("sectoid_song", "sectoid_guitar"), (
        "sectoid is **in-sample** (the score thresholds were calibrated on it); the others are out of sample"
    )


PARTS = ("leadin", "shifts", "grid", "unrelated", "timing")
CONF_BINS = (0.0, 0.5, 0.7, 0.9, 0.99, 0.999, 0.9999, 1.0000001)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- code version, snapshot


def code_version() -> dict:
    return snapshot.code_version(CODE_ENV)


def snapshot_and_reexec(work: Path, argv: list[str], rev: str | None) -> None:
    snapshot.snapshot_and_reexec(work, __file__, argv, rev, CODE_ENV, log)


def machine() -> dict:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


# ----------------------------------------------------------------------------- music


def music() -> dict[str, list[str]]:
    """{source: files}; the library sources first."""
    src = {
        "wesnoth": sorted(WESNOTH.glob("*.ogg")),
        "muldjord": sorted((FOF / "muldjord").glob("*/song.ogg")),
        "sectoid_song": sorted((FOF / "sectoid").glob("*/song.ogg")),
        "sectoid_guitar": sorted((FOF / "sectoid").glob("*/guitar.ogg")),
        "singularity": sorted(SINGULARITY.rglob("*.ogg")),
        "warzone2100": sorted([*WARZONE.rglob("*.opus"), *WARZONE.rglob("*.ogg")]),
        "asc": sorted(ASC.glob("*.mp3")),
        "hyperrogue": sorted(HYPERROGUE.glob("*.ogg")),
    }
    if len(src["wesnoth"]) < 40 or len(src["muldjord"]) != 4 or len(src["sectoid_song"]) != 4:
        sys.exit(
            f"music not found (wesnoth {len(src['wesnoth'])}, muldjord {len(src['muldjord'])}, "
            f"sectoid {len(src['sectoid_song'])}): {APT_HINT}"
        )
    return {k: [str(p) for p in v] for k, v in src.items() if v}


_PROBE: dict[str, tuple[int, float]] = {}


def probe(path: str) -> tuple[int, float]:
    """(native sample rate, duration s)."""
    if path not in _PROBE:
        from tuneseek import audio

        info = audio.probe(path)
        _PROBE[path] = (int(info.sample_rate), float(info.duration or 0.0))
    return _PROBE[path]


# ----------------------------------------------------------------------------- clips


def _load(path: str, sr: int, start: float, seconds: float) -> np.ndarray:
    from tuneseek import audio

    x = np.asarray(audio.load(path, sr, offset=max(0.0, start), duration=seconds), np.float32).reshape(-1)
    n = int(round(seconds * sr))
    if len(x) < 0.9 * n:
        raise ValueError(f"decoded only {len(x) / sr:.2f} s of {seconds:.2f} s at {start:.2f} s in {path}")
    return x[:n]


def _to_qsr(x: np.ndarray, sr: int) -> np.ndarray:
    import soxr

    from tuneseek.fingerprint.extract import RESAMPLE_QUALITY

    return soxr.resample(x, sr, QSR, quality=RESAMPLE_QUALITY).astype(np.float32)


def _degrade(x: np.ndarray, sr: int, spec: str, rng: np.random.Generator) -> np.ndarray:
    from tuneseek.degrade import degrade, parse_degradations

    if spec.startswith("pitch:"):
        import pedalboard

        y = pedalboard.PitchShift(semitones=float(spec.split(":", 1)[1]))(np.ascontiguousarray(x, np.float32), sr)
        y = np.asarray(y, np.float32).reshape(-1)
        peak = float(np.max(np.abs(y))) if len(y) else 0.0
        return y * np.float32(0.999 / peak) if peak > 1.0 else y
    return degrade(x, sr, parse_degradations(spec), rng=rng) if spec else x


def make_clip(r: dict) -> np.ndarray:
    """The query clip of recipe ``r``, mono float32 at 8 kHz."""
    from tuneseek.degrade import active_power, pink_noise

    rng = np.random.default_rng(r["rng"])
    sr, _ = probe(r["file"])
    if r["kind"] == "excerpt":
        x = _load(r["file"], sr, r["start"] + r.get("shift_ms", 0) / 1000.0, r["length"])
        return _to_qsr(_degrade(x, sr, r.get("spec", ""), rng), sr)
    if r["kind"] == "leadin":
        x = _load(r["file"], sr, r["start"], r["length"])
        n_lead = int(round(r["lead"] * sr))
        p = active_power(x, sr=sr)
        if r["lead_kind"] == "music":
            lead = _load(r["lead_file"], sr, r["lead_start"], r["lead"])[:n_lead]
            pl = active_power(lead, sr=sr)
            lead = lead * np.float32(math.sqrt(p / pl)) if pl > 0 else lead
        elif r["lead_kind"] == "pink noise":
            lead = pink_noise(n_lead, sr=sr, rng=rng) * np.float32(math.sqrt(p))
        else:
            lead = np.zeros(n_lead, np.float32)
        y = np.concatenate([lead.astype(np.float32), x])
        peak = float(np.max(np.abs(y)))
        if peak > 1.0:
            y *= np.float32(0.999 / peak)
        return _to_qsr(y, sr)
    raise ValueError(r["kind"])


# ----------------------------------------------------------------------------- recipes


def _start(rng: np.random.Generator, dur: float, need: float) -> float:
    return round(float(rng.uniform(0.0, max(0.0, dur - need - 0.5))), 3)


def recipes(part: str, src: dict, seed: int, quick: bool) -> list[dict]:
    lib_all = [(s, f) for s in ("wesnoth", "muldjord") for f in src[s] if not f.endswith("/silence.ogg")]

    def lib_q_of(
        need: float,
    ) -> list[tuple[str, str]]:  # tracks long enough (like make_queries, which skips the others)
        return [(s, f) for s, f in lib_all if probe(f)[1] >= need]

    lib_q = lib_q_of(10.5)
    out: list[dict] = []
    if part == "leadin":
        lead_music = src.get("sectoid_song", []) + src.get("singularity", [])
        chosen = []  # (track index, from the start?)
        for i in range(len(lib_q)):
            chosen += [(i, True), (i, False)]
        r0 = np.random.default_rng([seed, 1])
        chosen = [
            chosen[j] for j in sorted(r0.choice(len(chosen), min(len(chosen), 16 if quick else 64), replace=False))
        ]
        for lead in LEAD_SECONDS:
            for kind in LEAD_KINDS:
                for i, at_start in chosen:
                    s, f = lib_q[i]
                    rng = np.random.default_rng([seed, 11, i, int(at_start), int(lead), LEAD_KINDS.index(kind)])
                    _, dur = probe(f)
                    lo = min(30.0, dur / 3)  # the middle: not the first 30 s (or third) of the track
                    start = 0.0 if at_start else round(float(rng.uniform(lo, max(lo, dur - 10.5))), 3)
                    lf = lead_music[int(rng.integers(len(lead_music)))]
                    r = {
                        "kind": "leadin",
                        "file": f,
                        "start": start,
                        "length": 10.0,
                        "lead": lead,
                        "lead_kind": kind,
                        "rng": [seed, 12, i, int(at_start), int(lead), LEAD_KINDS.index(kind)],
                    }
                    if kind == "music":
                        r["lead_file"] = lf
                        r["lead_start"] = _start(rng, probe(lf)[1], lead)
                    out.append(
                        {
                            "id": f"leadin/{kind.replace(' ', '_')}/{lead:g}s/{Path(f).stem if s == 'wesnoth' else Path(f).parent.name}/"
                            f"{'start' if at_start else 'mid'}",
                            "part": "leadin",
                            "set": f"{kind}, {lead:g} s",
                            "length": 10.0,
                            "source": s,
                            "in_library": True,
                            "file": f,
                            "start": start,
                            "recipe": r,
                            "at_track_start": at_start,
                            "truth": {
                                "path": f,
                                "offset": round(start - lead, 3),
                                "clip_start": lead,
                                "clip_end": lead + 10.0,
                            },
                        }
                    )
    elif part == "shifts":
        n = 16 if quick else 60
        for L in LENGTHS:
            lib_q = lib_q_of(L + 0.1)
            for j in range(n):
                i = j % len(lib_q)
                s, f = lib_q[i]
                rng = np.random.default_rng([seed, 21, L, j])
                start = _start(rng, probe(f)[1], L + 0.05)
                for sh in SHIFTS_MS:
                    r = {
                        "kind": "excerpt",
                        "file": f,
                        "start": start,
                        "length": float(L),
                        "shift_ms": sh,
                        "rng": [seed, 22, L, j],
                    }
                    out.append(
                        {
                            "id": f"shifts/L{L}/{j}/{sh}ms",
                            "part": "shifts",
                            "set": f"shift {sh} ms",
                            "clip_key": f"L{L}/{j}",
                            "shift_ms": sh,
                            "length": float(L),
                            "source": s,
                            "in_library": True,
                            "file": f,
                            "start": start + sh / 1000.0,
                            "recipe": r,
                            "truth": {
                                "path": f,
                                "offset": round(start + sh / 1000.0, 3),
                                "clip_start": 0.0,
                                "clip_end": float(L),
                            },
                        }
                    )
    elif part == "grid":
        for L in LENGTHS:
            lib_q = lib_q_of(L + 0.1)
            per = [(i, k) for i in range(len(lib_q)) for k in range(2)]
            r0 = np.random.default_rng([seed, 3, L])
            per = [per[j] for j in sorted(r0.choice(len(per), min(len(per), 16 if quick else 64), replace=False))]
            for i, k in per:
                s, f = lib_q[i]
                rng = np.random.default_rng([seed, 31, L, i, k])
                start = _start(rng, probe(f)[1], L)
                for gi, (spec, _, _) in enumerate(GRID):
                    factor = float(spec.split(":")[1]) if spec.split(":")[0] in ("speed", "tempo") else 1.0
                    r = {
                        "kind": "excerpt",
                        "file": f,
                        "start": start,
                        "length": float(L),
                        "spec": spec,
                        "rng": [seed, 32, L, i, k, gi],
                    }
                    out.append(
                        {
                            "id": f"grid/L{L}/{spec}/{i}-{k}",
                            "part": "grid",
                            "set": spec,
                            "length": float(L),
                            "source": s,
                            "in_library": True,
                            "file": f,
                            "start": start,
                            "recipe": r,
                            "truth": {"path": f, "offset": start, "clip_start": 0.0, "clip_end": round(L / factor, 3)},
                        }
                    )
    elif part == "unrelated":
        targets = {10: 24, 5: 12, 3: 12} if quick else {10: 100, 5: 60, 3: 60}  # clips per source
        for s in ("sectoid_song", "sectoid_guitar", "singularity", "warzone2100", "asc", "hyperrogue"):
            files = [f for f in src.get(s, []) if probe(f)[1] >= 10.5]
            if not files:
                continue
            for L in LENGTHS:
                per_file = max(1, math.ceil(targets[L] / len(files)))
                for fi, f in enumerate(files):
                    _, dur = probe(f)
                    for k in range(per_file):
                        rng = np.random.default_rng([seed, 41, L, hash_str(f), k])
                        start = _start(rng, dur, L)
                        r = {
                            "kind": "excerpt",
                            "file": f,
                            "start": start,
                            "length": float(L),
                            "rng": [seed, 42, L, fi, k],
                        }
                        out.append(
                            {
                                "id": f"unrelated/{s}/L{L}/{fi}-{k}",
                                "part": "unrelated",
                                "set": s,
                                "length": float(L),
                                "source": s,
                                "in_library": False,
                                "file": f,
                                "start": start,
                                "recipe": r,
                                "truth": None,
                            }
                        )
    return out


def hash_str(s: str) -> int:
    return int(hashlib.sha1(s.encode()).hexdigest()[:8], 16)


# ----------------------------------------------------------------------------- workers: query + record


_LIB = None


def _worker_init(lib_path: str) -> None:
    global _LIB
    os.environ.update(ONE_CORE_ENV)
    from tuneseek import Library

    _LIB = Library.open(lib_path, create=False)


def _raw_features(x: np.ndarray, truth_path: str | None) -> dict:
    """Best pile (and the best score of another track) of each stage, whatever the no-match decision.

    From ``LandmarkIndex.evidence``: every pile verification judges, of every stage, with no
    early exit.
    """
    from tuneseek.fingerprint import query as Q

    index = _LIB.identifier
    fps = index.params.frames_per_second
    seconds = len(x) / QSR
    piles = index.evidence(x)
    out: dict = {}
    for stage, name in ((0, "plain"), (1, "wide")):
        here = [(tid, p) for tid, p in piles if p.stage == stage]
        if not here:
            out[name] = None
            continue
        tid, p = max(here, key=lambda tp: tp[1].score)
        second = max((q.score for t, q in here if t != tid), default=0)
        track = _LIB.track(tid)
        c = p.located(tid, fps, seconds, track.n_frames)
        feat = {
            "score": int(p.score),
            "hypothesis": [p.time_scale, p.freq_scale],
            "second_score": int(second),
            "features": [round(float(z), 4) for z in Q.features(p, fps, seconds)],
            "track": track.name,
            "path": track.path,
            "offset": c.offset,
            "clip_start": c.clip_start,
            "clip_end": c.clip_end,
            "coverage": c.coverage,
            "speed": c.speed,
            "tempo": c.tempo,
            "confidence": round(float(c.confidence), 6),
        }
        if truth_path is not None:
            feat["correct"] = os.path.realpath(track.path) == os.path.realpath(truth_path)
        out[name] = feat
    return out


def _match_dict(m, truth_path: str | None) -> dict:
    d = {
        "track": m.track.name,
        "track_id": m.track.id,
        "path": m.track.path,
        "score": int(m.score),
        "confidence": round(float(m.confidence), 6),
        "coverage": round(float(m.coverage), 3),
        "offset": round(float(m.offset), 3),
        "track_start": round(float(m.track_start), 3),
        "clip_start": round(float(m.clip_start), 3),
        "clip_end": round(float(m.clip_end), 3),
        "speed": float(m.speed),
        "tempo": float(m.tempo),
    }
    d["correct"] = (os.path.realpath(m.track.path) == os.path.realpath(truth_path)) if truth_path else False
    return d


def _query_chunk(items: list[dict]) -> list[dict]:
    rows = []
    for it in items:
        row = dict(it)
        truth_path = it["truth"]["path"] if it["truth"] else None
        try:
            t0 = time.perf_counter()
            x = make_clip(it["recipe"])
            t1 = time.perf_counter()
            cands = _LIB.candidates(x, sr=QSR, k=3)
            t2 = time.perf_counter()
            row["clip_seconds"] = round(len(x) / QSR, 3)
            row["candidates"] = [_match_dict(m, truth_path) for m in cands]
            row["top_correct"] = row["candidates"][0]["correct"] if cands else None
            row["latency_ms"] = round((t2 - t1) * 1000, 2)
            row["make_ms"] = round((t1 - t0) * 1000, 1)
            row["raw"] = _raw_features(x, truth_path)
            if hash_str(it["id"]) % 16 == 0:  # identify() must agree with candidates()[0]
                m = _LIB.identify(x, sr=QSR)
                row["identify_agrees"] = (m is None and not cands) or (
                    m is not None and bool(cands) and m.track.id == cands[0].track.id and m.score == cands[0].score
                )
            row["error"] = None
        except Exception as e:
            row.update(candidates=[], top_correct=None, error=f"{type(e).__name__}: {e}"[:300])
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- library


def build_library(lib_path: Path, files: list[str], jobs: int, code: dict) -> dict:
    from tuneseek import Library

    marker = lib_path / "trust-built-with.json"
    want = {"src_sha": code.get("src_sha"), "files": files}
    if marker.exists() and json.loads(marker.read_text()) == want:
        log(f"reusing the library in {lib_path} (same code, same files)")
        with Library.open(lib_path, create=False) as lib:
            return {"reused": True, "stats": lib.stats().to_dict()}
    shutil.rmtree(lib_path, ignore_errors=True)
    log(f"indexing {len(files)} files into {lib_path} (fresh)")
    t0 = time.perf_counter()
    with Library.open(lib_path, create=True) as lib:
        rep = lib.add(files, workers=jobs, analyse=False)
        stats = lib.stats().to_dict()
    log(f"  {rep.summary()}")
    marker.write_text(json.dumps(want))
    return {
        "reused": False,
        "summary": rep.summary(),
        "failed": rep.failed,
        "seconds": time.perf_counter() - t0,
        "stats": stats,
    }


# ----------------------------------------------------------------------------- timing


def step_timing(lib_path: Path, src: dict, seed: int, quick: bool) -> dict:
    """candidates(k=1) on 8 kHz samples in this process, pinned to one core, after a quiet-machine wait."""
    from tuneseek import Library

    n = 20 if quick else 60
    lib_q = [
        (s, f)
        for s in ("wesnoth", "muldjord")
        for f in src[s]
        if probe(f)[1] >= 10.5 and not f.endswith("/silence.ogg")
    ]
    outs = [
        (s, f)
        for s in ("sectoid_song", "singularity", "warzone2100", "asc", "hyperrogue")
        for f in src.get(s, [])
        if probe(f)[1] >= 10.5
    ]
    sets: dict[str, list[np.ndarray]] = {"matching, clean": [], "matching, tempo +10 %": [], "unrelated": []}
    for j in range(n):
        rng = np.random.default_rng([seed, 51, j])
        s, f = lib_q[int(rng.integers(len(lib_q)))]
        st = _start(rng, probe(f)[1], 10)
        sets["matching, clean"].append(
            make_clip({"kind": "excerpt", "file": f, "start": st, "length": 10.0, "rng": [seed, 52, j]})
        )
        sets["matching, tempo +10 %"].append(
            make_clip(
                {"kind": "excerpt", "file": f, "start": st, "length": 10.0, "spec": "tempo:1.1", "rng": [seed, 53, j]}
            )
        )
        s, f = outs[int(rng.integers(len(outs)))]
        sets["unrelated"].append(
            make_clip(
                {
                    "kind": "excerpt",
                    "file": f,
                    "start": _start(rng, probe(f)[1], 10),
                    "length": 10.0,
                    "rng": [seed, 54, j],
                }
            )
        )
    aff = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {sorted(aff)[0]})
    out = {"n_per_set": n, "sets": {}}
    try:
        with Library.open(lib_path, create=False) as lib:
            for x in (sets["matching, clean"][0], sets["unrelated"][0]):
                lib.candidates(x, sr=QSR, k=1)  # warm-up: imports, first page faults
            waited = wait_quiet(60.0)
            b0, c0, t0 = cpu_busy_seconds(), time.process_time(), time.perf_counter()
            for name, clips in sets.items():
                lat, found = [], 0
                for x in clips:
                    t = time.perf_counter()
                    m = lib.candidates(x, sr=QSR, k=1)
                    lat.append((time.perf_counter() - t) * 1000)
                    found += bool(m)
                out["sets"][name] = {"latencies_ms": [round(v, 2) for v in lat], "found": found}
            wall = time.perf_counter() - t0
            others = max(0.0, (cpu_busy_seconds() - b0) - (time.process_time() - c0)) / wall
    finally:
        os.sched_setaffinity(0, aff)
    out.update(
        waited_s=round(waited, 1),
        others_cores=round(others, 2),
        wall_s=round(wall, 1),
        loadavg=[round(v, 2) for v in os.getloadavg()],
    )
    return out


# ----------------------------------------------------------------------------- analysis


def pct(x: float | None, nd: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{nd}f} %"


def q(v: list[float], p: float) -> float:
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, max(0, int(math.ceil(p * len(v))) - 1))]


def ok(flag: bool) -> str:
    return "✅" if flag else "❌"


def f2(x, nd=2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def decision_text() -> str:
    """The no-match rule of the code measured, read from it."""
    try:
        from tuneseek.fingerprint import query as Q

        mins = "/".join(str(st.min_score) for st in Q.STAGES)
        if hasattr(Q, "MIN_CONFIDENCE"):
            return f"piles from score {mins} (plain/wide) judged, confidence ≥ {Q.MIN_CONFIDENCE:g} returned"
        return f"score ≥ {mins} (plain/wide) returned"
    except Exception as e:  # noqa: BLE001
        return f"unknown ({e!r})"


def analyse(rows: dict[str, list[dict]], timing: dict | None) -> dict:
    res: dict = {}
    # lead-in
    if rows.get("leadin"):
        cells = {}
        for lead in LEAD_SECONDS:
            for kind in LEAD_KINDS:
                rs = [r for r in rows["leadin"] if r["recipe"]["lead"] == lead and r["recipe"]["lead_kind"] == kind]
                good = [r for r in rs if r["top_correct"]]
                e_cs = [r["candidates"][0]["clip_start"] - r["truth"]["clip_start"] for r in good]
                e_off = [r["candidates"][0]["offset"] - r["truth"]["offset"] for r in good]
                e_end = [r["candidates"][0]["clip_end"] - r["truth"]["clip_end"] for r in good]
                cells[f"{kind}|{lead:g}"] = {
                    "n": len(rs),
                    "top1": len(good) / len(rs) if rs else None,
                    "top1_start": _rate([r for r in rs if r["at_track_start"]]),
                    "top1_mid": _rate([r for r in rs if not r["at_track_start"]]),
                    "no_match": sum(1 for r in rs if not r["candidates"]),
                    "errors": sum(1 for r in rs if r["error"]),
                    "wrong_track": sum(1 for r in rs if r["candidates"] and not r["top_correct"]),
                    "clip_start_err_median": statistics.median(e_cs) if e_cs else None,
                    "clip_start_abs_p90": q([abs(e) for e in e_cs], 0.9),
                    "clip_start_within_0_5": (sum(abs(e) <= 0.5 for e in e_cs) / len(e_cs)) if e_cs else None,
                    "clip_start_within_0_5_start": _within([r for r in good if r["at_track_start"]]),
                    "clip_start_within_0_5_mid": _within([r for r in good if not r["at_track_start"]]),
                    "offset_abs_median": statistics.median([abs(e) for e in e_off]) if e_off else None,
                    "offset_within_0_5": (sum(abs(e) <= 0.5 for e in e_off) / len(e_off)) if e_off else None,
                    "clip_end_err_median": statistics.median(e_end) if e_end else None,
                    "clip_start_hist": _hist_cs(e_cs),
                }
        res["leadin"] = cells
    # shifts
    if rows.get("shifts"):
        by = defaultdict(dict)
        for r in rows["shifts"]:
            by[(r["length"], r["clip_key"])][r["shift_ms"]] = r
        out = {}
        for L in LENGTHS:
            keys = [k for k in by if k[0] == L]
            ratios, changed, per_shift = [], 0, defaultdict(list)
            zero_some = 0
            for k in keys:
                d = by[k]
                sc = [(d[s]["candidates"][0]["score"] if d[s]["top_correct"] else 0) for s in SHIFTS_MS if s in d]
                for s in SHIFTS_MS:
                    if s in d:
                        per_shift[s].append(bool(d[s]["top_correct"]))
                if max(sc) > 0:
                    ratios.append(min(sc) / max(sc))
                ans = {(d[s]["candidates"][0]["track_id"] if d[s]["candidates"] else None) for s in SHIFTS_MS if s in d}
                changed += len(ans) > 1
                zero_some += min(sc) == 0 and max(sc) > 0
            out[str(L)] = {
                "clips": len(keys),
                "ratio_median": statistics.median(ratios) if ratios else None,
                "ratio_p10": q(ratios, 0.1),
                "ratio_min": min(ratios) if ratios else None,
                "top1_per_shift": {s: sum(v) / len(v) for s, v in per_shift.items()},
                "answer_changes": changed,
                "found_at_some_shift_only": zero_some,
            }
        res["shifts"] = out
    # grid
    if rows.get("grid"):
        g = {}
        for spec, _title, tg in GRID:
            for L, t in zip(LENGTHS, tg):
                rs = [r for r in rows["grid"] if r["set"] == spec and r["length"] == L]
                good = [r for r in rs if r["top_correct"]]
                e_off = [abs(r["candidates"][0]["offset"] - r["truth"]["offset"]) for r in good]
                fac = defaultdict(int)
                for r in good:
                    c = r["candidates"][0]
                    fac[f"{c['speed']:g}/{c['tempo']:g}"] += 1
                g[f"{spec}|{L}"] = {
                    "n": len(rs),
                    "top1": _rate(rs),
                    "target": t,
                    "no_match": sum(1 for r in rs if not r["candidates"]),
                    "wrong_track": sum(1 for r in rs if r["candidates"] and not r["top_correct"]),
                    "errors": sum(1 for r in rs if r["error"]),
                    "offset_within_0_5": (sum(e <= 0.5 for e in e_off) / len(e_off)) if e_off else None,
                    "speed_tempo_top": sorted(fac.items(), key=lambda kv: -kv[1])[:4],
                    "raw_best_of_misses": sorted([_raw_best(r) for r in rs if not r["top_correct"]], reverse=True)[:6],
                }
        res["grid"] = g
    # unrelated
    if rows.get("unrelated"):
        u = {}
        for s in dict.fromkeys(r["source"] for r in rows["unrelated"]):
            for L in LENGTHS:
                rs = [r for r in rows["unrelated"] if r["source"] == s and r["length"] == L and not r["error"]]
                fp = [r for r in rs if r["candidates"]]
                conf = [
                    r["raw"][st]["confidence"]
                    for r in rs
                    for st in ("plain", "wide")
                    if ((r.get("raw") or {}).get(st) or {}).get("confidence") is not None
                ]
                plain = [r["raw"]["plain"]["score"] for r in rs if (r.get("raw") or {}).get("plain")]
                wide = [r["raw"]["wide"]["score"] for r in rs if (r.get("raw") or {}).get("wide")]
                u[f"{s}|{L}"] = {
                    "n": len(rs),
                    "files": len({r["file"] for r in rs}),
                    "fp": len(fp),
                    "errors": sum(1 for r in rows["unrelated"] if r["source"] == s and r["length"] == L and r["error"]),
                    "fp_rate": len(fp) / len(rs) if rs else None,
                    "max_score": max((r["candidates"][0]["score"] for r in fp), default=None),
                    "max_conf": max((r["candidates"][0]["confidence"] for r in fp), default=None),
                    "raw_plain_max": max(plain, default=None),
                    "raw_plain_median": statistics.median(plain) if plain else None,
                    "raw_plain_p99": q(plain, 0.99),
                    "raw_wide_max": max(wide, default=None),
                    "raw_wide_median": statistics.median(wide) if wide else None,
                    "raw_wide_p99": q(wide, 0.99),
                    "raw_conf_max": max(conf, default=None),
                    "raw_conf_over_0_1": sum(c_ >= 0.1 for c_ in conf),
                }
        res["unrelated"] = u
        allfp = [r for r in rows["unrelated"] if r["candidates"]]
        allfp.sort(key=lambda r: -r["candidates"][0]["score"])
        res["fp_list"] = [
            {
                "id": r["id"],
                "file": r["file"],
                "start": r["start"],
                "clip_seconds": r.get("clip_seconds"),
                **{
                    k: r["candidates"][0][k]
                    for k in (
                        "track",
                        "score",
                        "confidence",
                        "coverage",
                        "clip_start",
                        "clip_end",
                        "speed",
                        "tempo",
                        "offset",
                    )
                },
                "n_candidates": len(r["candidates"]),
            }
            for r in allfp[:15]
        ]
        near = []
        for r in rows["unrelated"]:
            for stage in ("plain", "wide"):
                f = (r.get("raw") or {}).get(stage)
                if f:
                    near.append((f["score"], stage, r))
        near.sort(key=lambda t: -t[0])
        res["near_misses"] = [
            {
                "id": r["id"],
                "stage": st,
                "clip_seconds": r.get("clip_seconds"),
                **{
                    k: r["raw"][st].get(k)
                    for k in (
                        "score",
                        "second_score",
                        "hypothesis",
                        "track",
                        "confidence",
                        "coverage",
                        "clip_start",
                        "clip_end",
                        "speed",
                        "tempo",
                        "features",
                    )
                },
            }
            for sc, st, r in near[:12]
        ]
    # reliability
    allrows = [r for p in ("leadin", "shifts", "grid", "unrelated") for r in rows.get(p, []) if not r["error"]]
    if allrows:
        res["reliability_top1"] = _reliability(
            [
                (r["candidates"][0]["confidence"], bool(r["top_correct"]), r["in_library"])
                for r in allrows
                if r["candidates"]
            ]
        )
        res["reliability_all"] = _reliability(
            [(c["confidence"], c["correct"], r["in_library"]) for r in allrows for c in r["candidates"]]
        )
        raw_best = []
        for r in allrows:
            fs = [
                f
                for f in ((r.get("raw") or {}).get(st) for st in ("plain", "wide"))
                if f and f.get("confidence") is not None
            ]
            if fs:
                f = max(fs, key=lambda f: f["confidence"])
                raw_best.append((f["confidence"], bool(f.get("correct")), r["in_library"]))
        res["reliability_raw"] = _reliability(raw_best)
        res["answered"] = {
            "queries": len(allrows),
            "answered": sum(1 for r in allrows if r["candidates"]),
            "true_queries": sum(1 for r in allrows if r["in_library"]),
            "identify_checked": sum(1 for r in allrows if "identify_agrees" in r),
            "identify_disagrees": sum(1 for r in allrows if r.get("identify_agrees") is False),
        }
    if timing:
        res["timing"] = {
            name: {
                "n": len(v["latencies_ms"]),
                "median": statistics.median(v["latencies_ms"]),
                "p95": q(v["latencies_ms"], 0.95),
                "mean": statistics.fmean(v["latencies_ms"]),
                "max": max(v["latencies_ms"]),
                "found": v["found"],
            }
            for name, v in timing["sets"].items()
        }
    return res


def _rate(rs: list[dict]) -> float | None:
    return sum(1 for r in rs if r["top_correct"]) / len(rs) if rs else None


def _within(good: list[dict]) -> float | None:
    e = [abs(r["candidates"][0]["clip_start"] - r["truth"]["clip_start"]) for r in good]
    return sum(v <= 0.5 for v in e) / len(e) if e else None


def _hist_cs(errs: list[float]) -> dict:
    bins = {"< -3 s": 0, "-3..-0.5 s": 0, "±0.5 s": 0, "0.5..3 s": 0, "> 3 s": 0}
    for e in errs:
        k = (
            "< -3 s"
            if e < -3
            else "-3..-0.5 s"
            if e < -0.5
            else "±0.5 s"
            if e <= 0.5
            else "0.5..3 s"
            if e <= 3
            else "> 3 s"
        )
        bins[k] += 1
    return bins


def _raw_best(r: dict) -> int:
    raw = r.get("raw") or {}
    return max([raw[s]["score"] for s in ("plain", "wide") if raw.get(s)] or [0])


def _reliability(items: list[tuple[float, bool, bool]]) -> list[dict]:
    out = []
    for lo, hi in zip(CONF_BINS[:-1], CONF_BINS[1:]):
        b = [it for it in items if lo <= it[0] < hi]
        if not b:
            out.append({"bin": [lo, min(hi, 1.0)], "n": 0})
            continue
        right = sum(1 for c, ok_, _ in b if ok_)
        out.append(
            {
                "bin": [lo, min(hi, 1.0)],
                "n": len(b),
                "correct": right,
                "wrong_unrelated": sum(1 for c, ok_, inl in b if not ok_ and not inl),
                "wrong_other_track": sum(1 for c, ok_, inl in b if not ok_ and inl),
                "precision": right / len(b),
                "mean_confidence": statistics.fmean(c for c, _, _ in b),
            }
        )
    return out


# ----------------------------------------------------------------------------- report


def report(res: dict, meta: dict) -> str:
    L: list[str] = []
    w = L.append
    code = meta["code"]
    w(
        f"Command: `{meta['command']}` — {meta['mode']} run, started {meta['start']}, {meta['minutes']:.1f} min wall; "
        f"load average at start {meta['load_start']}, at end {meta['load_end']} (2 cores, shared with other agents). "
        f"Code: snapshot `{code.get('src_sha')}` of src/ (git `{code.get('head')}`"
        f"{' + uncommitted changes in ' + ', '.join(code.get('src_changed') or []) if code.get('src_dirty') else ''}). "
        f"Library: {meta['library']['stats'].get('tracks')} tracks, {meta['library']['stats'].get('audio_hours', 0):.2f} h "
        f"(41 Wesnoth incl. the refused silence.ogg + 4 muldjord). Queries: `Library.candidates(clip, sr=8000, k=3)` on "
        f"clips made at the source rate and resampled to 8 kHz; raw features per query in `{meta['jsonl']}`.\n"
    )
    summ: list[tuple[str, str, bool]] = []
    if "leadin" in res:
        c = res["leadin"]
        w("### Lead-in: 10 s of the song after other audio\n")
        w(
            "Half of the songs start at the track's first sample (truth: `offset` = −lead, `clip_start` = lead), "
            "half in its middle (`clip_start` = lead, `offset` = start − lead). Music lead-ins: sectoid songs and "
            "singularity tracks at the song's loudness; pink noise at the song's active power (0 dB); silence = zeros. "
            "Errors are over the correct answers.\n"
        )
        w(
            "| lead-in | n | top-1 (target ≥ 97 %) | from track start / middle | no match / wrong | clip_start − truth: median | "
            "\\|err\\| p90 | within 0.5 s (start / middle) | \\|offset err\\| median | clip_end − truth median |"
        )
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for lead in LEAD_SECONDS:
            for kind in LEAD_KINDS:
                x = c[f"{kind}|{lead:g}"]
                w(
                    f"| {kind}, {lead:g} s | {x['n']} | {pct(x['top1'])} {ok((x['top1'] or 0) >= LEAD_TARGET)} | "
                    f"{pct(x['top1_start'], 0)} / {pct(x['top1_mid'], 0)} | {x['no_match']} / {x['wrong_track']} | "
                    f"{f2(x['clip_start_err_median'])} s | {f2(x['clip_start_abs_p90'])} s | {pct(x['clip_start_within_0_5'], 0)} "
                    f"({pct(x['clip_start_within_0_5_start'], 0)} / {pct(x['clip_start_within_0_5_mid'], 0)}) | "
                    f"{f2(x['offset_abs_median'], 3)} s | {f2(x['clip_end_err_median'])} s |"
                )
                summ.append(
                    (f"lead-in {kind}, {lead:g} s: top-1 ≥ 97 %", pct(x["top1"]), (x["top1"] or 0) >= LEAD_TARGET)
                )
        w("")
        w(
            "clip_start − truth, histogram over correct answers: "
            + "; ".join(
                f"{k.replace('|', ' ')} s: " + ", ".join(f"{b} {n}" for b, n in v["clip_start_hist"].items() if n)
                for k, v in c.items()
            )
            + "\n"
        )
    if "shifts" in res:
        w("### Sub-frame shifts: the same clean clip cut 0 / 8 / 16 / 24 ms later\n")
        w("Score of the correct answer at each cut (0 when not found), min/max across the four cuts per clip.\n")
        w(
            "| clip | clips | min/max score: median | p10 | worst | top-1 at 0 / 8 / 16 / 24 ms | answer differs between cuts |"
        )
        w("| --- | --- | --- | --- | --- | --- | --- |")
        for Lc in LENGTHS:
            x = res["shifts"][str(Lc)]
            tps = " / ".join(pct(x["top1_per_shift"].get(s, x["top1_per_shift"].get(str(s))), 0) for s in SHIFTS_MS)
            w(
                f"| {Lc} s | {x['clips']} | {f2(x['ratio_median'])} | {f2(x['ratio_p10'])} | {f2(x['ratio_min'])} | {tps} | "
                f"{x['answer_changes']} |"
            )
        w("")
    if "grid" in res:
        w("### New grid cells (top-1)\n")
        w(
            "`L` s of the source cut, then degraded (a speed/tempo clip is L/F s long, as in `make_queries`). "
            "Speed and tempo from `tuneseek.degrade`; pitch with `pedalboard.PitchShift(semitones=1)`.\n"
        )
        w(
            "| degradation | 10 s | 5 s | 3 s | n per cell | no match / wrong track (10 / 5 / 3 s) | offset within 0.5 s (10 / 5 / 3 s) | speed/tempo reported (10 s, most common) |"
        )
        w("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for spec, title, tg in GRID:
            cells = [res["grid"][f"{spec}|{Lc}"] for Lc in LENGTHS]
            txt = " | ".join(
                f"{pct(x['top1'])} (≥ {t * 100:.0f}) {ok((x['top1'] or 0) >= t - 1e-9)}" for x, t in zip(cells, tg)
            )
            w(
                f"| {title} (`{spec}`) | {txt} | {cells[0]['n']} | "
                + " / ".join(f"{x['no_match']}+{x['wrong_track']}" for x in cells)
                + " | "
                + " / ".join(pct(x["offset_within_0_5"], 0) for x in cells)
                + " | "
                + ", ".join(f"{k} ×{n}" for k, n in cells[0]["speed_tempo_top"][:3])
                + " |"
            )
            for Lc, x, t in zip(LENGTHS, cells, tg):
                summ.append((f"{title} {Lc} s ≥ {t * 100:.0f} %", pct(x["top1"]), (x["top1"] or 0) >= t - 1e-9))
        w("")
    if "unrelated" in res:
        u = res["unrelated"]
        w("### False positives: music from sources not in the library\n")
        w(
            "A false positive is any match returned (k=3). *Raw*: the best pile of any track in each stage whatever "
            f"the no-match decision ({meta['decision']}); raw confidence = what verification gave that pile (max over "
            f"both stages). {in_sample_sources()[1]}.\n"
        )
        w(
            "| source | clip | files | n | false positives | rate | top FP score / confidence | raw plain score: median / p99 / max | raw wide score: median / p99 / max | raw confidence: max (piles ≥ 0.1) |"
        )
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        pooled = defaultdict(lambda: [0, 0])
        ins = in_sample_sources()[0]
        for key, x in u.items():
            s, Lc = key.split("|")
            oos = s not in ins
            pooled[(Lc, oos)][0] += x["fp"]
            pooled[(Lc, oos)][1] += x["n"]
            w(
                f"| {s}{'' if oos else ' (in-sample)'} | {Lc} s | {x['files']} | {x['n']} | {x['fp']} | {pct(x['fp_rate'])} | "
                f"{x['max_score'] if x['max_score'] is not None else '–'} / {f2(x['max_conf'], 4)} | "
                f"{f2(x['raw_plain_median'], 0)} / {f2(x['raw_plain_p99'], 0)} / {x['raw_plain_max']} | "
                f"{f2(x['raw_wide_median'], 0)} / {f2(x['raw_wide_p99'], 0)} / {x['raw_wide_max']} | "
                f"{f2(x.get('raw_conf_max'), 3)} ({x.get('raw_conf_over_0_1', '–')}) |"
            )
        w("")
        w("| pooled | 10 s | 5 s | 3 s |")
        w("| --- | --- | --- | --- |")
        srcs = list(dict.fromkeys(k.split("|")[0] for k in u))
        for oos, name in (
            (True, "out of sample (" + ", ".join(x for x in srcs if x not in ins) + ")"),
            (False, "in-sample (" + ", ".join(x for x in srcs if x in ins) + ")"),
        ):
            w(
                f"| {name} | "
                + " | ".join(
                    f"{pooled[(str(Lc), oos)][0]} of {pooled[(str(Lc), oos)][1]} "
                    f"({pct(pooled[(str(Lc), oos)][0] / max(1, pooled[(str(Lc), oos)][1]), 2)})"
                    for Lc in LENGTHS
                )
                + " |"
            )
        fp10, n10 = pooled[("10", True)]
        summ.append(
            (
                "false positives ≤ 0.5 % at 10 s, out of sample (pooled)",
                f"{fp10} of {n10} ({pct(fp10 / max(1, n10), 2)})",
                n10 > 0 and fp10 / n10 <= FP_TARGET_10S,
            )
        )
        for key, x in u.items():
            s, Lc = key.split("|")
            if Lc == "10":
                summ.append(
                    (
                        f"false positives ≤ 0.5 % at 10 s, {s}",
                        f"{x['fp']} of {x['n']}",
                        (x["fp_rate"] or 0) <= FP_TARGET_10S,
                    )
                )
        w("")
        if res.get("fp_list"):
            w("Highest-scoring false positives (top candidate):\n")
            w(
                "| query | clip s | matched track | score | confidence | coverage | clip_start–end | speed / tempo | candidates |"
            )
            w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            for x in res["fp_list"][:10]:
                w(
                    f"| `{x['id']}` ({Path(x['file']).name} @ {x['start']:.1f} s) | {x['clip_seconds']} | {x['track']} | {x['score']} | "
                    f"{x['confidence']:.4f} | {x['coverage']:.2f} | {x['clip_start']:.1f}–{x['clip_end']:.1f} | "
                    f"{x['speed']:g} / {x['tempo']:g} | {x['n_candidates']} |"
                )
            w("")
        if res.get("near_misses"):
            w("Highest raw piles of unrelated clips (returned or not):\n")
            w(
                "| query | stage | score | 2nd track | hypothesis (time, freq) | confidence | coverage | clip_start–end | features |"
            )
            w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            for x in res["near_misses"][:8]:
                hyp = x.get("hypothesis") or [None, None]
                w(
                    f"| `{x['id']}` | {x['stage']} | {x['score']} | {x['second_score']} | {hyp[0]:g}, {hyp[1]:.3f} | "
                    f"{f2(x.get('confidence'), 3)} | {f2(x.get('coverage'))} | {f2(x.get('clip_start'), 1)}–{f2(x.get('clip_end'), 1)} | "
                    f"{x.get('features') or '–'} |"
                )
            w("")
    if "reliability_top1" in res:
        a = res["answered"]
        w("### Reliability: stated confidence vs observed precision\n")
        w(
            f"Over all {a['queries']} queries of the parts above ({a['true_queries']} of library music, the rest unrelated); "
            f"{a['answered']} answered. Top answer, and (right) every returned candidate of k=3 (ranks 2–3 of a "
            f"library clip are other tracks, hence wrong). `identify()` checked against `candidates()[0]` on "
            f"{a['identify_checked']} queries: {a['identify_disagrees']} disagreements.\n"
        )
        w(
            "*Raw best pile* (last columns): per query, the pile of either stage with the highest confidence, "
            "returned or not (below the no-match floor too): how the confidence model is calibrated where the "
            "decision is taken.\n"
        )
        w(
            "| stated confidence | top-1: n | correct | wrong (unrelated / other track) | precision | mean stated | all k=3: n | precision | mean stated | raw best pile: n | precision | mean stated |"
        )
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for b1, b2, b3 in zip(res["reliability_top1"], res["reliability_all"], res["reliability_raw"]):
            lo, hi = b1["bin"]
            rng_s = f"[{lo:g}, {hi:g})" if hi < 1 else f"≥ {lo:g}"
            if b1["n"]:
                left = (
                    f"{b1['n']} | {b1['correct']} | {b1['wrong_unrelated']} / {b1['wrong_other_track']} | "
                    f"{pct(b1['precision'], 2)} | {b1['mean_confidence']:.5f}"
                )
            else:
                left = "0 | | | | "
            right = f"{b2['n']} | {pct(b2['precision'], 2)} | {b2['mean_confidence']:.5f}" if b2["n"] else "0 | | "
            raw = f"{b3['n']} | {pct(b3['precision'], 2)} | {b3['mean_confidence']:.5f}" if b3["n"] else "0 | | "
            w(f"| {rng_s} | {left} | {right} | {raw} |")
        w("")
    if "timing" in res:
        t = meta["timing"]
        w("### Query time (10 s clips, one process pinned to one core)\n")
        w(
            f"`Library.candidates(samples, sr=8000, k=1)` (= `identify`), clips already decoded and at 8 kHz: "
            f"fingerprinting (4 shifted analyses) + search. Other processes used {t['others_cores']:.2f} cores during the "
            f"timed loop (waited {t['waited_s']:.0f} s for a quiet machine; load average after {t['loadavg']}).\n"
        )
        w("| clips | n | found | median ms | p95 ms | mean ms | max ms |")
        w("| --- | --- | --- | --- | --- | --- | --- |")
        for name, x in res["timing"].items():
            w(
                f"| {name} | {x['n']} | {x['found']} | {x['median']:.1f} | {x['p95']:.1f} | {x['mean']:.1f} | {x['max']:.1f} |"
            )
        w("")
    head = ["### Targets\n", "| target | measured | |", "| --- | --- | --- |"]
    head += [f"| {t} | {m} | {ok(p)} |" for t, m, p in summ]
    missed = [t for t, m, p in summ if not p]
    head.append("")
    head.append(("**Missed**: " + "; ".join(missed) + ".") if missed else "All targets met.")
    head.append("")
    return "\n".join(head + L) + "\n"


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="about a quarter of the clips (16 per cell, 12-24 per source)")
    ap.add_argument(
        "--work", type=Path, default=REPO / "bench-work", help="where generated data goes (default bench-work/)"
    )
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="query processes (default 2)")
    ap.add_argument("--limit", type=int, help="at most this many queries per part (smoke test; report not meaningful)")
    ap.add_argument("--report", type=Path, help="Markdown report (default WORK/trust/report-<mode>.md)")
    ap.add_argument(
        "--no-snapshot", action="store_true", help="measure the installed package as it is, no snapshot of src/"
    )
    ap.add_argument("--git-rev", metavar="REV", help="measure src/ as committed at REV (a snapshot of it)")
    a = ap.parse_args(argv)
    parts = [p.strip() for p in a.parts.split(",") if p.strip()]
    if set(parts) - set(PARTS):
        ap.error(f"unknown part(s): {', '.join(sorted(set(parts) - set(PARTS)))}")
    work = a.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if not a.no_snapshot and CODE_ENV not in os.environ:
        snapshot_and_reexec(work, argv, a.git_rev)  # does not return
    mode = "quick" if a.quick else "full"
    out_dir = work / "trust" / ("quick" if a.quick else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    start = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    load_start = [round(v, 2) for v in os.getloadavg()]
    code = code_version()
    import tuneseek

    log(f"{mode} run; parts {','.join(parts)}; tuneseek from {tuneseek.__file__}; load {load_start}")
    src = music()
    lib_files = src["wesnoth"] + src["muldjord"]
    lib_path = work / "trust" / "lib"
    libinfo = build_library(lib_path, lib_files, a.jobs, code)
    rows: dict[str, list[dict]] = {}
    qparts = [p for p in parts if p != "timing"]
    todo = {p: recipes(p, src, a.seed, a.quick) for p in qparts}
    if a.limit:  # smoke test: a spread of each part's queries
        todo = {p: v[:: max(1, len(v) // a.limit)][: a.limit] for p, v in todo.items()}
    for p, items in todo.items():
        log(f"  {p}: {len(items)} queries")
    items = [it for p in qparts for it in todo[p]]
    # interleave expensive (unrelated, long lead-ins) and cheap queries over chunks of ~8
    order = np.random.default_rng(a.seed).permutation(len(items))
    chunks = [[items[j] for j in order[i : i + 8]] for i in range(0, len(items), 8)]
    t0 = time.perf_counter()
    done = 0
    got: list[dict] = []
    with ProcessPoolExecutor(a.jobs, initializer=_worker_init, initargs=(str(lib_path),)) as pool:
        for res in pool.map(_query_chunk, chunks):
            got += res
            done += len(res)
            if done % 400 < 8 or done == len(items):
                el = time.perf_counter() - t0
                log(
                    f"  {done}/{len(items)} queries, {el / 60:.1f} min, ETA {el / done * (len(items) - done) / 60:.1f} min, "
                    f"load {os.getloadavg()[0]:.2f}"
                )
    query_minutes = (time.perf_counter() - t0) / 60
    for p in qparts:
        rows[p] = sorted([r for r in got if r["part"] == p], key=lambda r: r["id"])
        with open(out_dir / f"{p}.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows[p])
        log(f"  wrote {out_dir / f'{p}.jsonl'} ({len(rows[p])} rows, {sum(1 for r in rows[p] if r['error'])} errors)")
    timing = None
    if "timing" in parts:
        log("timing 10 s queries in one process pinned to one core")
        timing = step_timing(lib_path, src, a.seed, a.quick)
    res = analyse(rows, timing)
    meta = {
        "command": "python benchmarks/identify_trust.py " + " ".join(argv),
        "mode": mode,
        "start": start,
        "load_start": load_start,
        "load_end": [round(v, 2) for v in os.getloadavg()],
        "minutes": (time.perf_counter() - t_all) / 60,
        "query_minutes": query_minutes,
        "code": code,
        "library": libinfo,
        "machine": machine(),
        "jsonl": str((out_dir / "<part>.jsonl").relative_to(REPO))
        if out_dir.is_relative_to(REPO)
        else str(out_dir / "<part>.jsonl"),
        "timing": timing,
        "counts": {p: len(v) for p, v in rows.items()},
    }
    meta["decision"] = decision_text()
    md = report(res, meta)
    (out_dir / f"results-{mode}.json").write_text(json.dumps({"meta": meta, "results": res}, indent=1, default=str))
    rep = a.report or (work / "trust" / f"report-{mode}.md")
    rep.write_text(md)
    print(md)
    log(f"report {rep}; results {out_dir / f'results-{mode}.json'}; {meta['minutes']:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
