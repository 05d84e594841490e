#!/usr/bin/env python3
"""The learned fingerprint beside the landmarks, on the identification grid (issue 15, part 4).

    python benchmarks/learned_fingerprint.py --model src/tuneseek/fingerprint/model          # the shipped model
    python benchmarks/learned_fingerprint.py --model runs/fp --steps sets                    # only make the query sets

The library and the queries are those of ``benchmarks/identify.py`` (Wesnoth + the 4 muldjord songs;
clips cut by ``make_queries(per_track=3, seed=0)`` at 10, 5 and 3 s, clean and degraded; the sectoid songs
and stems as music not in the library), plus pitch shifts of ±1 semitone with the tempo kept. Each clip
is identified by each engine of one library (``Library.candidates(..., engine=E)``): ``landmarks``,
``learned`` and ``fused``. Steps (``--steps``, default all):

``sets``       make the query sets (reused when they exist).
``calibrate``  fit the learned engine's no-match threshold and confidence on a *separate* calibration set:
               clips of the library music cut with another seed (``seed=1``), and clips of music that is
               neither in the library nor among the scored negatives (drascula's soundtrack); the fitted
               calibration, moved so that at most 0.5 % of those unknown clips still match, is written into
               the model folder (``calibration.json``), which the library reads.
``index``      a fresh library of that music with both fingerprints (timed on one worker: landmarks, then the
               learned vectors; learned bytes per audio hour).
``grid``       score every set with every engine (``--engines``): top-1, false positives, query time.

Results: ``WORK/learned/<model name>/grid.json`` and a markdown report printed and written beside it.
The model is never trained on this music (see its ``summary.json`` for what it was trained on).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from identify import (  # noqa: E402  (a sibling script: the same music, sets and scoring)
    DEGRADATIONS,
    LENGTHS,
    evaluate_set,
    log,
    music_farm,
    query_sets,
    slug,
    wilson,
)

ENGINES = ("landmarks", "learned", "fused")
PITCH = (("pitch:+1", "pitch +1 semitone (tempo kept)"), ("pitch:-1", "pitch −1 semitone (tempo kept)"))
#: Music for calibrating "no match": not in the library, not among the scored negatives, not in training.
CALIBRATION_NEGATIVES = Path("/usr/share/scummvm/drascula/audio")
CALIBRATION_SEED = 1
#: The share of calibration clips of unknown music the fitted calibration may still match (the issue's bound).
FP_BUDGET = 0.005
TITLES = {**{s: t for s, t, _ in DEGRADATIONS}, **dict(PITCH)}


def pitch_sets(work: Path, sources, *, per_track: int, seed: int, jobs: int) -> dict:
    from tuneseek.data.querysets import make_queries

    sets = {
        (L, spec): work / "queries" / f"pt{per_track}-seed{seed}" / f"L{L}-{slug(spec)}"
        for L in LENGTHS
        for spec, _ in PITCH
    }
    todo = [(L, spec, d) for (L, spec), d in sets.items()]
    with ProcessPoolExecutor(jobs) as pool:
        futures = [
            pool.submit(
                make_queries, [str(s) for s in sources], d, length=L, degradations=spec, per_track=per_track, seed=seed
            )
            for L, spec, d in todo
        ]
        for f in futures:
            f.result()
    return sets


def calibration_sets(work: Path, sources, *, jobs: int) -> dict:
    from tuneseek.data.querysets import make_queries

    negatives = sorted(CALIBRATION_NEGATIVES.glob("*.ogg"))
    if not negatives:
        sys.exit(f"calibration music not found in {CALIBRATION_NEGATIVES}: apt-get install drascula-music")
    root = work / "queries" / f"calibration-seed{CALIBRATION_SEED}"
    plan = {
        ("pos", L, spec): (sources, root / f"L{L}-{slug(spec)}", 1)
        for L in (10, 3)
        for spec in ("", "noise:0db", "phone", "pitch:+1")
    }
    plan.update({("neg", L, ""): (negatives, root / f"neg-L{L}", 2) for L in (10, 5, 3)})
    with ProcessPoolExecutor(jobs) as pool:
        futures = [
            pool.submit(
                make_queries,
                [str(s) for s in src],
                d,
                length=L,
                degradations=spec,
                per_track=n,
                seed=CALIBRATION_SEED,
            )
            for (_, L, spec), (src, d, n) in plan.items()
        ]
        for f in futures:
            f.result()
    return {key: d for key, (_, d, _) in plan.items()}


def _eval_job(args: tuple) -> tuple:
    from tuneseek.library import Library

    key, lib_path, engine, d, negative = args
    import torch

    torch.set_num_threads(1)
    with Library.open(lib_path, create=False) as lib:
        return key, evaluate_set(lib, Path(d), negative, engine)


def step_index(a, files) -> dict:
    """A fresh library of the benchmark music with both fingerprints, timed on one worker."""
    from tuneseek.library import Library

    shutil.rmtree(a.library, ignore_errors=True)
    log(f"indexing {len(files)} files with landmarks and the learned fingerprint into {a.library}")
    with Library.open(a.library, create=True) as lib:
        t0 = time.perf_counter()
        rep = lib.add([str(f) for f in files], workers=1, analyse=False)
        landmarks_only = time.perf_counter() - t0
        name = lib.use_model(a.model, role="fingerprint")
        t0 = time.perf_counter()
        rep2 = lib.add([str(f) for f in files], workers=1, analyse=False)  # the learned vectors, in place
        learned_seconds = time.perf_counter() - t0
        stats = lib.stats()
        count, nbytes = stats.fingerprints[name]
    log(
        f"  {rep.summary()} in {landmarks_only:.0f} s; learned vectors for {len(rep2.analysed)} tracks in {learned_seconds:.0f} s"
    )
    hours = rep.audio_seconds / 3600
    return {
        "audio_hours": hours,
        "landmarks_seconds_one_worker": landmarks_only,
        "learned_seconds_one_worker": learned_seconds,
        "learned_x_realtime": rep.audio_seconds / learned_seconds,
        "landmarks_x_realtime": rep.audio_seconds / landmarks_only,
        "learned_tracks": count,
        "learned_bytes": nbytes,
        "learned_mb_per_hour": nbytes / 1e6 / hours,
        "library_stats": stats.to_dict(),
    }


def step_calibrate(a, calibration: dict) -> dict:
    """Fit the learned engine's calibration on clips the grid never scores, and write it into the model folder.

    Every hypothesis the learned engine judges for a clip is a row: true when its track is the clip's
    (clips of the library music cut with another seed), false otherwise (including every hypothesis of
    a clip of music outside the library). The logistic fit is then moved, if needed, so that at most
    ``FP_BUDGET`` of the negative clips would still get a match (the issue's bound on false positives).
    """
    import numpy as np

    from tuneseek import audio
    from tuneseek.data.querysets import read_queryset
    from tuneseek.fingerprint.learned import Calibration, calibrate, margins
    from tuneseek.library import Library

    scores, ns, gaps, truth, neg_best, calibration_negatives = [], [], [], [], [], []
    with Library.open(a.library, create=False) as lib:
        learned = lib.learned
        track_of = {os.path.realpath(t.path): t.id for t in lib.tracks()}
        for (kind, _, _), d in sorted(calibration.items(), key=str):
            qs = read_queryset(d, "test")
            origin = {o.label: track_of.get(os.path.realpath(o.path)) for o in qs.origins}
            for sample in qs.samples:
                clip = audio.load(str(sample.path), 8000)
                try:
                    found = learned.evidence(clip, str(sample.path))
                except Exception as e:  # a clip with nothing audible: no evidence either way
                    log(f"  left out {sample.path.name}: {e}")
                    continue
                right = origin.get(sample.label) if kind == "pos" else None
                gap = margins([h.score for h in found])
                for h, m in zip(found, gap):
                    scores.append(h.score)
                    ns.append(h.n)
                    gaps.append(m)
                    truth.append(h.track_id == right)
                if kind == "neg":
                    calibration_negatives.append(sample.path)
                if kind == "neg" and found:
                    neg_best += [(h.score, h.n, m) for h, m in zip(found, gap)]
    fitted = calibrate(np.array(scores), np.array(ns), np.array(truth), margin=np.array(gaps))
    neg = np.array(neg_best, float).reshape(-1, 3)
    clips = len(calibration_negatives)

    def passing(c: Calibration) -> float:  # share of unknown clips with any hypothesis matching
        return float(np.sum(c.confidence(neg[:, 0], neg[:, 1], neg[:, 2]) >= 0.5)) / max(clips, 1)

    shift = 0.0
    while passing(Calibration(fitted.bias - shift, fitted.weight, fitted.per_root_n, fitted.per_margin)) > FP_BUDGET:
        shift += 0.1
    final = Calibration(fitted.bias - shift, fitted.weight, fitted.per_root_n, fitted.per_margin)
    record = {
        "calibration": final.to_dict(),
        "fitted_on": {
            "rows": len(scores),
            "true_rows": int(np.sum(truth)),
            "negative_clips": clips,
            "sets": sorted(str(d) for d in calibration.values()),
            "bias_shift_for_false_positives": shift,
            "negative_clips_passing": passing(final),
        },
        "by": "benchmarks/learned_fingerprint.py --steps calibrate",
    }
    (Path(a.model) / "calibration.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"  calibration {final.to_dict()} from {len(scores)} hypotheses; shift {shift:.1f}")
    return record


def step_grid(a, sets: dict, pitch: dict) -> dict:
    jobs = []
    for engine in a.engines:
        jobs += [((engine, L, spec), str(a.library), engine, str(d), False) for (L, spec), d in sets["pos"].items()]
        jobs += [((engine, L, spec), str(a.library), engine, str(d), False) for (L, spec), d in pitch.items()]
        jobs += [((engine, L, "NEG"), str(a.library), engine, str(d), True) for L, d in sets["neg"].items()]
    log(f"scoring {len(jobs)} (engine, set) pairs with {a.jobs} processes")
    results = {}
    with ProcessPoolExecutor(a.jobs) as pool:
        for (engine, L, spec), res in pool.map(_eval_job, jobs):
            m = res["metrics"]
            what = f"FP {m['false_positive_rate']:.3f}" if spec == "NEG" else f"top1 {m['top1']:.3f}"
            log(f"  {engine:<9} {L:>2} s {TITLES.get(spec, 'not in library'):<34} {what}")
            results[f"{engine}|{L}|{spec}"] = res
    return {"results": results}


def report(res: dict) -> str:
    lines = ["| degradation | length | " + " | ".join(ENGINES) + " |", "| --- | --- |" + " --- |" * len(ENGINES)]
    specs = [s for s, _, _ in DEGRADATIONS] + [s for s, _ in PITCH]
    for spec in specs:
        for L in LENGTHS:
            cells = []
            for engine in ENGINES:
                r = res["results"].get(f"{engine}|{L}|{spec}")
                if r is None:
                    cells.append("–")
                    continue
                m = r["metrics"]
                lo, hi = wilson(round(m["top1"] * m["queries"]), m["queries"])
                cells.append(f"{100 * m['top1']:.1f} % [{100 * lo:.0f}, {100 * hi:.0f}]")
            lines.append(f"| {TITLES[spec]} | {L} s | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| not in library | length | " + " | ".join(ENGINES) + " |",
        "| --- | --- |" + " --- |" * len(ENGINES),
    ]
    for L in LENGTHS:
        cells = []
        for engine in ENGINES:
            m = res["results"][f"{engine}|{L}|NEG"]["metrics"]
            cells.append(f"{100 * m['false_positive_rate']:.1f} % (n={m['queries']})")
        lines.append(f"| false positives | {L} s | " + " | ".join(cells) + " |")
    lines += ["", "| engine | median query ms (10 s clips, decoding included) | mean |", "| --- | --- | --- |"]
    for engine in ENGINES:
        lat = [
            x
            for (L, spec) in [(10, s) for s, _, _ in DEGRADATIONS]
            for x in res["results"][f"{engine}|{L}|{spec}"]["latencies_ms"]
        ]
        lines.append(f"| {engine} | {statistics.median(lat):.1f} | {statistics.mean(lat):.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a fingerprint run folder (tuneseek train fingerprint)")
    ap.add_argument("--work", default="bench-work", type=Path)
    ap.add_argument("--steps", default="sets,index,calibrate,grid")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    a.engines = a.engines.split(",")
    work = a.work.resolve()
    out = work / "learned" / Path(a.model).resolve().name
    out.mkdir(parents=True, exist_ok=True)
    a.library = out / "library"
    files, sources, negatives = music_farm(work)
    steps = a.steps.split(",")
    sets = query_sets(work, sources, negatives, 3, 15, 0, a.jobs)
    pitch = pitch_sets(work, sources, per_track=3, seed=0, jobs=a.jobs)
    calibration = calibration_sets(work, sources, jobs=a.jobs)
    results_file = out / "grid.json"
    res = json.loads(results_file.read_text()) if results_file.exists() else {}
    if "index" in steps:
        res["index"] = step_index(a, files)
    if "calibrate" in steps:
        res["calibration"] = step_calibrate(a, calibration)
    if "grid" in steps:
        res.setdefault("results", {}).update(step_grid(a, sets, pitch)["results"])
    results_file.write_text(json.dumps(res, indent=2) + "\n")
    if res.get("results"):
        text = report(res)
        (out / "report.md").write_text(text + "\n")
        print(text)


if __name__ == "__main__":
    main()
