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
               neither in the library nor among the scored negatives (the soundtracks of drascula,
               Warzone 2100 and Colobot, 5 clips a track); the fitted calibration, moved so that at most
               0.5 % of those unknown clips of each length still match, is written into the model folder
               (``calibration.json``), which the library reads; then, on the same clips, the
               fused engine's corroboration (the learned confidence, and the landmark hits lined up at its
               offset less the most at another offset nearby; moved so that at most 0.5 % of the unknown clips of
               each length, and of the library's clips, have a wrong track passing), written beside it under
               "fusion".
``index``      a fresh library of that music with both fingerprints (timed on one worker: landmarks, then the
               learned vectors; learned bytes per audio hour).
``grid``       score every set with every engine (``--engines``): top-1, false positives, query time; false
               positives on a second unknown source too (Nexuiz's soundtrack, electronic and rock, from
               ``nexuiz-music``: a check on music no design decision or fit has seen).

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
#: Music for calibrating "no match": not in the library, not among the scored negatives, not in training:
#: drascula's soundtrack (orchestral, adventure game), Warzone 2100's (electronic and rock with drum kits,
#: the styles whose chance landmark alignments with the library's rock the fused engine must not take for a
#: match) and Colobot's (electronic and orchestral).
CALIBRATION_NEGATIVES = {
    "drascula": (Path("/usr/share/scummvm/drascula/audio"), "*.ogg", "drascula-music"),
    "warzone2100": (Path("/usr/share/games/warzone2100/music"), "**/*.opus", "warzone2100-music"),
    "colobot": (Path("/usr/share/games/colobot/music"), "*.ogg", "colobot-common-sounds"),
}
#: Clips of each calibration-negative track per length: about 400 unknown clips per length, so that a share of
#: 0.5 % (the bound) is two clips, not a fraction of one.
NEGATIVES_PER_TRACK = 5
CALIBRATION_SEED = 1
#: A second source of music not in the library, for false positives only: the Nexuiz soundtrack (GPL-2+).
FRESH_NEGATIVES = Path("/usr/share/games/nexuiz/data/music.pk3")
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

    root = work / "queries" / f"calibration-seed{CALIBRATION_SEED}"
    plan = {
        ("pos", L, spec): (sources, root / f"L{L}-{slug(spec)}", 1)
        for L in (10, 3)
        for spec in ("", "noise:0db", "phone", "pitch:+1")
    }
    for name, (folder, pattern, package) in CALIBRATION_NEGATIVES.items():
        negatives = sorted(folder.glob(pattern))
        if not negatives:
            sys.exit(f"calibration music not found in {folder}: apt-get install {package}")
        tag = f"neg-{name}"
        plan.update(
            {
                (tag, L, ""): (negatives, root / f"{tag}-L{L}-pt{NEGATIVES_PER_TRACK}", NEGATIVES_PER_TRACK)
                for L in (10, 5, 3)
            }
        )
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
    return {(tag.split("-")[0], L, spec, tag): d for (tag, L, spec), (_, d, _) in plan.items()}


def fresh_sets(work: Path, *, jobs: int) -> dict:
    """Clips of the Nexuiz soundtrack (7 a track, 10, 5 and 3 s, seed 0), its Ogg files taken out of the
    game's ``music.pk3`` (a zip) into ``WORK/nexuiz`` once."""
    import zipfile

    from tuneseek.data.querysets import make_queries

    if not FRESH_NEGATIVES.exists():
        sys.exit(f"{FRESH_NEGATIVES} not found: apt-get install nexuiz-music")
    music = work / "nexuiz"
    if not any(music.rglob("*.ogg")):
        with zipfile.ZipFile(FRESH_NEGATIVES) as pk3:
            pk3.extractall(music, [n for n in pk3.namelist() if n.endswith(".ogg")])
    tracks = sorted(str(f) for f in music.rglob("*.ogg"))
    sets = {L: work / "queries" / "fresh-nexuiz-pt7-seed0" / f"L{L}" for L in LENGTHS}
    with ProcessPoolExecutor(jobs) as pool:
        for f in [pool.submit(make_queries, tracks, d, length=L, per_track=7, seed=0) for L, d in sets.items()]:
            f.result()
    return sets


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


def calibration_clips(lib, calibration: dict):
    """Every clip of the calibration sets: ``(kind, length, path, samples at 8 kHz, its track's id or None)``."""
    from tuneseek import audio
    from tuneseek.data.querysets import read_queryset
    from tuneseek.fingerprint.extract import RESAMPLE_QUALITY

    track_of = {os.path.realpath(t.path): t.id for t in lib.tracks()}
    for (kind, length, _, _), d in sorted(calibration.items(), key=str):
        qs = read_queryset(d, split="test")
        origin = {o.label: track_of.get(os.path.realpath(o.path)) for o in qs.origins}
        for sample in qs.samples:
            right = origin.get(sample.label) if kind == "pos" else None
            # loaded as Library.candidates loads a clip file, so the fit sees what a query gives the engines
            yield kind, length, sample.path, audio.load(str(sample.path), 8000, quality=RESAMPLE_QUALITY), right


def step_calibrate(a, calibration: dict) -> dict:
    """Fit the learned engine's calibration on clips the grid never scores, and write it into the model folder.

    Every hypothesis the learned engine judges for a clip is a row: true when its track is the clip's
    (clips of the library music cut with another seed), false otherwise (including every hypothesis of
    a clip of music outside the library). The logistic fit is then moved, if needed, so that at most
    ``FP_BUDGET`` of the negative clips of each length would still get a match (the issue's bound on
    false positives holds per clip length: short clips match by chance far more often than long ones).
    """
    import numpy as np

    from tuneseek.fingerprint.learned import Calibration, calibrate, margins
    from tuneseek.library import Library

    scores, ns, gaps, truth, neg_best, negatives_per_length = [], [], [], [], [], {}
    with Library.open(a.library, create=False) as lib:
        learned = lib.learned
        for kind, length, path, clip, right in calibration_clips(lib, calibration):
            try:
                found = learned.evidence(clip, name=str(path))
            except Exception as e:  # a clip with nothing audible: no evidence either way
                log(f"  left out {path.name}: {e}")
                continue
            gap = margins([h.score for h in found])
            for h, m in zip(found, gap):
                scores.append(h.score)
                ns.append(h.n)
                gaps.append(m)
                truth.append(h.track_id == right)
            if kind == "neg":
                clip_no = sum(negatives_per_length.values())
                negatives_per_length[length] = negatives_per_length.get(length, 0) + 1
                neg_best += [(h.score, h.n, m, length, clip_no) for h, m in zip(found, gap)]
    fitted = calibrate(np.array(scores), np.array(ns), np.array(truth), margin=np.array(gaps))
    neg = np.array(neg_best, float).reshape(-1, 5)

    def passing(c: Calibration) -> float:  # the largest share, over clip lengths, of unknown clips matching
        hit = c.confidence(neg[:, 0], neg[:, 1], margin=neg[:, 2]) >= 0.5
        return max(len(np.unique(neg[hit & (neg[:, 3] == L), 4])) / n for L, n in negatives_per_length.items())

    def moved(shift: float) -> Calibration:
        return Calibration(fitted.bias - shift, fitted.weight, fitted.per_root_n, fitted.per_margin)

    shift = bias_shift(lambda shift: passing(moved(shift)))
    final = moved(shift)
    fusion = fit_corroboration(a, calibration, final)
    record = {
        "calibration": final.to_dict(),
        "fusion": fusion.pop("fusion"),
        "fitted_on": {
            "rows": len(scores),
            "true_rows": int(np.sum(truth)),
            "negative_clips_per_length": negatives_per_length,
            "sets": sorted(str(d) for d in calibration.values()),
            "bias_shift_for_false_positives": shift,
            "negative_clips_passing": passing(final),
            "fusion": fusion,
        },
        "by": "benchmarks/learned_fingerprint.py --steps calibrate",
    }
    (Path(a.model) / "calibration.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"  calibration {final.to_dict()} from {len(scores)} hypotheses; shift {shift:.1f}")
    return record


def bias_shift(passing) -> float:
    """The least shift of a fit's bias, in steps of 0.1, at which ``passing(shift)`` (the share of clips a
    calibration moved that far still lets through) is within :data:`FP_BUDGET`."""
    shift = 0.0
    while passing(shift) > FP_BUDGET:
        shift += 0.1
    return shift


def fit_corroboration(a, calibration: dict, learned_calibration) -> dict:
    """Fit the fused engine's :class:`~tuneseek.fingerprint.fusion.Corroboration` on the calibration clips.

    Every hypothesis the learned engine lists for a clip (``floor`` 0, under ``learned_calibration``) is
    a row: its confidence and the landmarks lined up at its offset and elsewhere nearby, true when its
    track is the clip's (the rows are kept in ``corroboration-rows.json`` beside the grid). Rows whose
    placement stands above its background (the gate, ``min_excess``) are fitted by logistic regression;
    its bias is then moved so that at most ``FP_BUDGET`` of the clips of unknown music of each length,
    and at most ``FP_BUDGET`` of the clips of library music, have a wrong track passing. The wrong tracks
    of library clips are judged with the clip's own track in the library, which lowers their learned
    confidence (its margin below the true track's): the unknown clips, three soundtracks of which one is in
    the library's rock style, are the check that matters.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from tuneseek.fingerprint.fusion import Corroboration

    rows = corroboration_rows(a, calibration, learned_calibration)
    p, here, elsewhere = (np.array([r[k] for r in rows]) for k in ("p", "here", "elsewhere"))
    y, clip_of = np.array([r["true"] for r in rows], bool), np.array([r["clip"] for r in rows])
    group = np.array([f"{r['kind']} {r['length']} s" if r["kind"] == "neg" else "library clips" for r in rows])
    clips_in = {g: len(np.unique(clip_of[group == g])) for g in np.unique(group)}
    gate = Corroboration(0.0, 0.0, 0.0).min_excess
    x, kept = Corroboration.features(p, here, elsewhere), here - elsewhere >= gate
    fit = LogisticRegression(C=1e3).fit(x[kept], y[kept])
    per_logit, per_excess = (float(w) for w in fit.coef_[0])
    z = np.where(kept, x @ fit.coef_[0] + fit.intercept_[0], -np.inf)

    def passing(shift: float, g: str) -> float:  # share of group g's clips with a wrong track passing
        return len(np.unique(clip_of[(z - shift >= 0) & ~y & (group == g)])) / clips_in[g]

    def worst(shift: float) -> float:
        return max(passing(shift, g) for g in clips_in)

    shift = bias_shift(worst)
    fusion = Corroboration(float(fit.intercept_[0]) - shift, per_logit, per_excess, gate)
    log(f"  corroboration {fusion.to_dict()} from {int(kept.sum())} of {len(y)} hypotheses; shift {shift:.1f}")
    return {
        "fusion": fusion.to_dict(),
        "rows": len(y),
        "rows_past_the_gate": int(kept.sum()),
        "true_rows": int(y.sum()),
        "true_rows_past_the_gate": int((y & kept).sum()),
        "clips": clips_in,
        "bias_shift_for_false_positives": shift,
        "clips_with_a_wrong_track_passing": {g: passing(shift, g) for g in clips_in},
    }


def corroboration_rows(a, calibration: dict, learned_calibration) -> list[dict]:
    """The rows :func:`fit_corroboration` fits (each names its clip, a number); computed once per
    learned calibration and kept beside the grid."""
    from tuneseek.fingerprint.fusion import AGREE, PROPOSALS
    from tuneseek.fingerprint.query import ELSEWHERE_SECONDS
    from tuneseek.library import Library

    cache = a.library.parent / "corroboration-rows.json"
    key = {
        **learned_calibration.to_dict(),
        "agree": AGREE,
        "proposals": PROPOSALS,
        "elsewhere": ELSEWHERE_SECONDS,
        "sets": sorted(str(d) for d in calibration.values()),
    }
    kept = json.loads(cache.read_text()) if cache.exists() else {}
    if kept.get("calibration") == key:
        return kept["rows"]
    rows, clips = [], 0
    with Library.open(a.library, create=False) as lib:
        learned, landmarks = lib.learned, lib.identifier
        learned.calibration = learned_calibration
        for kind, length, path, clip, right in calibration_clips(lib, calibration):
            try:
                found = learned.candidates(clip, PROPOSALS, name=str(path), floor=0.0)
                counts = landmarks.lined_up(clip, [(c.track_id, c.offset) for c in found], AGREE, name=str(path))
            except Exception as e:  # nothing audible, too little to fingerprint: no evidence either way
                log(f"  left out {path.name}: {e}")
                continue
            rows += [
                {
                    "clip": clips,
                    "kind": kind,
                    "length": length,
                    "p": c.confidence,
                    "here": n[0],
                    "elsewhere": n[1],
                    "true": c.track_id == right,
                }
                for c, n in zip(found, counts)
            ]
            clips += 1
    cache.write_text(json.dumps({"calibration": key, "rows": rows}))
    return rows


def step_grid(a, sets: dict, pitch: dict, fresh: dict) -> dict:
    jobs = []
    for engine in a.engines:
        jobs += [((engine, L, "FRESH"), str(a.library), engine, str(d), True) for L, d in fresh.items()]
        jobs += [((engine, L, spec), str(a.library), engine, str(d), False) for (L, spec), d in sets["pos"].items()]
        jobs += [((engine, L, spec), str(a.library), engine, str(d), False) for (L, spec), d in pitch.items()]
        jobs += [((engine, L, "NEG"), str(a.library), engine, str(d), True) for L, d in sets["neg"].items()]
    log(f"scoring {len(jobs)} (engine, set) pairs with {a.jobs} processes")
    results = {}
    with ProcessPoolExecutor(a.jobs) as pool:
        for (engine, L, spec), res in pool.map(_eval_job, jobs):
            m = res["metrics"]
            what = f"FP {m['false_positive_rate']:.3f}" if spec in ("NEG", "FRESH") else f"top1 {m['top1']:.3f}"
            log(f"  {engine:<9} {L:>2} s {TITLES.get(spec, f'not in library ({spec})'):<34} {what}")
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
    for spec, title in (("NEG", "false positives (sectoid)"), ("FRESH", "false positives (nexuiz)")):
        for L in LENGTHS:
            cells = []
            for engine in ENGINES:
                r = res["results"].get(f"{engine}|{L}|{spec}")
                m = r["metrics"] if r else None
                cells.append(f"{100 * m['false_positive_rate']:.1f} % (n={m['queries']})" if m else "–")
            lines.append(f"| {title} | {L} s | " + " | ".join(cells) + " |")
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
    fresh = fresh_sets(work, jobs=a.jobs)
    results_file = out / "grid.json"
    res = json.loads(results_file.read_text()) if results_file.exists() else {}
    if "index" in steps:
        res["index"] = step_index(a, files)
    if "calibrate" in steps:
        res["calibration"] = step_calibrate(a, calibration)
    if "grid" in steps:
        res.setdefault("results", {}).update(step_grid(a, sets, pitch, fresh)["results"])
    results_file.write_text(json.dumps(res, indent=2) + "\n")
    if res.get("results"):
        text = report(res)
        (out / "report.md").write_text(text + "\n")
        print(text)


if __name__ == "__main__":
    main()
