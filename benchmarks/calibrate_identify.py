"""Calibrate identification's "no match" out of sample, and check it on music it never saw.

Every pile that verification would judge (all stages, every hypothesis, no early exit) is
collected with its features (see ``tuneseek.fingerprint.query.features``):

- true matches: clips of the benchmark library's tracks, degraded every way the grid
  degrades them (clean, pink noise 0 dB, MP3 32 kbit/s, phone, speed -4 % / +5 %,
  tempo -8 % / +10 %, pitch +1 semitone), at 10, 5 and 3 s;
- chance alignments: the piles of other tracks in those clips, and every pile of clips of
  unrelated music, per source (rock, electronic, game orchestral, ...).

Tracks are split in two halves by id. A logistic model is fitted on the even half's true
matches against ONE source of unrelated music, then scored on the odd half and on each
other source; every source takes its turn as the calibration source. The weights fitted
on ``--fit-source`` are printed for ``src/tuneseek/fingerprint/query.py``, with the
reliability table (stated confidence against observed precision) of the held-out data.

    python benchmarks/calibrate_identify.py                # collect (cached) + fit + report
    python benchmarks/calibrate_identify.py --quick        # fewer clips
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import numpy as np

from tuneseek import Library, audio
from tuneseek.degrade import degrade, parse_degradations
from tuneseek.fingerprint import query
from tuneseek.fingerprint.params import DEFAULT as FP

SR = FP.sr
LIBRARY = sorted(glob.glob("/usr/share/games/wesnoth/1.16/data/core/music/*.ogg")) + sorted(
    glob.glob("/usr/share/games/fretsonfire/data/songs/muldjord/*/song.ogg")
)
SOURCES = {
    "rock": sorted(glob.glob("/usr/share/games/fretsonfire/data/songs/sectoid/*/*.ogg")),
    "electronic": sorted(glob.glob("/usr/share/games/singularity/music/**/*.ogg", recursive=True)),
    "warzone": sorted(glob.glob("/usr/share/games/warzone2100/music/**/*.opus", recursive=True)),
    "asc+hyperrogue": sorted(
        glob.glob("/usr/share/games/asc/music/*.mp3") + glob.glob("/usr/share/hyperrogue/music/*.ogg")
    ),
}
DEGRADATIONS = (
    "clean",
    "noise:0db",
    "mp3:32k",
    "phone",
    "speed:0.96",
    "speed:1.05",
    "tempo:0.92",
    "tempo:1.10",
    "pitch:+1",
)
LENGTHS = (10.0, 5.0, 3.0)
FEATURES = ("log score", "log score per second", "coverage", "log clip seconds")
#: wide-stage penalties (log-odds) tried; the largest that costs the calibration half at most
#: RECALL_SLACK of its found share against none is kept
PENALTIES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, np.log(31))
RECALL_SLACK = 0.005


def degraded(x: np.ndarray, spec: str, rng: np.random.Generator) -> np.ndarray:
    if spec == "pitch:+1":  # not one of tuneseek.degrade's steps: pedalboard's pitch shifter, tempo kept
        from pedalboard import PitchShift

        return PitchShift(semitones=1.0)(x[None], SR)[0].astype(np.float32)
    return degrade(x, SR, parse_degradations(spec), rng=rng)


def query_of(lib: Library, clip: np.ndarray, truth: int | None, **meta) -> dict:
    """One clip: its metadata and every pile judged for it."""
    seconds = len(clip) / SR
    piles = [
        {
            "true": track_id == truth,
            "track": track_id,
            "score": pile.score,
            "stage": pile.stage,
            "features": query.features(pile, FP.frames_per_second, seconds).tolist(),
        }
        for track_id, pile in lib.identifier.evidence(clip)
    ]
    return {**meta, "clip_seconds": seconds, "piles": piles}


def collect(lib: Library, per_cell: int, per_source: int, out: Path, seed: int) -> list[dict]:
    if out.exists():
        return [json.loads(line) for line in out.read_text().splitlines()]
    rng = np.random.default_rng(seed)
    decoded: dict[str, np.ndarray] = {}

    def load(path: str) -> np.ndarray:
        if path not in decoded:
            decoded[path] = audio.load(path, SR, quality="LQ")
        return decoded[path]

    tracks = [t for t in lib.tracks() if t.duration > 20]
    rows: list[dict] = []
    started = time.time()
    for spec in DEGRADATIONS:
        for length in LENGTHS:
            for t in rng.choice(tracks, min(per_cell, len(tracks)), replace=False):
                x = load(t.path)
                margin = int(1.2 * length * SR)
                start = int(rng.integers(0, max(1, len(x) - margin)))
                clip = degraded(x[start : start + margin], spec, rng)[: int(length * SR)]
                rows.append(query_of(lib, clip, t.id, kind="library", half=t.id % 2, spec=spec, length=length))
        print(f"  {spec}: {len(rows)} clips, {time.time() - started:.0f} s", flush=True)
    for source, files in SOURCES.items():
        for length in LENGTHS:
            for i in range(per_source):
                x = load(files[i % len(files)])
                start = int(rng.integers(0, max(1, len(x) - int(length * SR))))
                rows.append(
                    query_of(
                        lib,
                        x[start : start + int(length * SR)],
                        None,
                        kind="unrelated",
                        source=source,
                        spec="clean",
                        length=length,
                    )
                )
        print(f"  {source}: {len(rows)} clips, {time.time() - started:.0f} s", flush=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def fit(queries: list[dict]) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    piles = [p for q in queries for p in q["piles"] if p["stage"] == 0]  # the plain hypothesis only
    X = np.array([p["features"] for p in piles])
    y = np.array([p["true"] for p in piles])
    model = LogisticRegression(C=1.0, max_iter=2000).fit(X, y)
    return model.coef_[0], float(model.intercept_[0])


def prob(piles: list[dict], w: np.ndarray, b: float, penalty: float) -> np.ndarray:
    X = np.array([p["features"] for p in piles]).reshape(-1, len(w))
    wide = np.array([p["stage"] > 0 for p in piles], float)
    return 1.0 / (1.0 + np.exp(-(X @ w + b - penalty * wide)))


def answer(q: dict, w: np.ndarray, b: float, penalty: float, floor: float) -> tuple[bool, float] | None:
    """What identification would answer for clip ``q`` with these weights: (right?, confidence), or None.

    As the search runs: the first stage holding a pile at or above ``floor`` answers, with its
    best-scoring such pile.
    """
    for stage in sorted({p["stage"] for p in q["piles"]}):
        piles = [p for p in q["piles"] if p["stage"] == stage]
        conf = prob(piles, w, b, penalty)
        ok = [(p["score"], c, p["true"]) for p, c in zip(piles, conf) if c >= floor]
        if ok:
            _, c, true = max(ok)
            return true, float(c)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="bench-work/calibrate")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--fit-source", default="warzone", help="the unrelated source whose weights are reported")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    lib = Library.open(work / "library")
    if not lib.tracks():
        print(lib.add(LIBRARY, analyse=False).summary())
    per_cell, per_source = (8, 10) if args.quick else (20, 60)
    data = work / f"piles-{'quick' if args.quick else 'full'}-{args.seed}.jsonl"
    rows = collect(lib, per_cell, per_source, data, args.seed)
    floor = query.MIN_CONFIDENCE
    report = [
        "| fitted on | wide-stage penalty | held-out true-match clips found | held-out false positives "
        "per source (10 / 5 / 3 s clips) |",
        "|---|---|---|---|",
    ]
    chosen = None
    for source in SOURCES:
        train = [q for q in rows if (q["kind"] == "library" and q["half"] == 0) or q.get("source") == source]
        w, b = fit(train)
        penalty = choose_penalty([q for q in train if q["kind"] == "library"], w, b, floor)
        if source == args.fit_source:
            chosen = (w, b, penalty)
        held = [answer(q, w, b, penalty, floor) for q in rows if q["kind"] == "library" and q["half"] == 1]
        found = np.mean([a is not None and a[0] for a in held])
        fps = []
        for other in SOURCES:
            if other != source:
                per_len = [
                    f"{sum(a is not None for a in answers_of(rows, w, b, penalty, floor, other, length))}"
                    f"/{len(answers_of(rows, w, b, penalty, floor, other, length))}"
                    for length in LENGTHS
                ]
                fps.append(f"{other} {' / '.join(per_len)}")
        report.append(f"| {source} | {penalty:.2f} | {100 * found:.1f} % | {'; '.join(fps)} |")
    # the weights fingerprint/query.py holds, on this collection (all of it held out from them when
    # they were fitted on another seed's clips)
    stored = (query.CONFIDENCE_WEIGHTS, query.CONFIDENCE_BIAS, query.WIDE_STAGE_PENALTY)
    found = np.mean([(a := answer(q, *stored, floor)) is not None and a[0] for q in rows if q["kind"] == "library"])
    fps = [
        f"{source} "
        + " / ".join(
            f"{sum(a is not None for a in answers_of(rows, *stored, floor, source, length))}"
            f"/{len(answers_of(rows, *stored, floor, source, length))}"
            for length in LENGTHS
        )
        for source in SOURCES
    ]
    report.append(
        f"| the weights in fingerprint/query.py | {stored[2]:.2f} | {100 * found:.1f} % (all tracks) | "
        f"{'; '.join(fps)} |"
    )
    w, b, penalty = chosen
    print("\n".join(report))
    print(f"\nfitted with {args.fit_source}: CONFIDENCE_WEIGHTS = np.array({np.round(w, 3).tolist()})")
    print(f"CONFIDENCE_BIAS = {b:.3f}\nWIDE_STAGE_PENALTY = {penalty:.2f}")
    print("\n" + ", ".join(f"{n} {v:+.3f}" for n, v in zip(FEATURES, w)) + f"; bias {b:+.3f}")
    # true matches found per cell, on the held-out half
    print("\n| degradation | 10 s | 5 s | 3 s |\n|---|---|---|---|")
    for spec in DEGRADATIONS:
        cells = []
        for length in LENGTHS:
            qs = [
                q
                for q in rows
                if q["kind"] == "library" and q["half"] == 1 and q["spec"] == spec and q["length"] == length
            ]
            ok = [(a := answer(q, w, b, penalty, floor)) is not None and a[0] for q in qs]
            cells.append(f"{100 * np.mean(ok):.0f} % ({len(ok)})")
        print(f"| {spec} | {' | '.join(cells)} |")
    # reliability on everything held out from that fit: odd-half library clips, other sources
    held_rows = [
        q
        for q in rows
        if (q["kind"] == "library" and q["half"] == 1)
        or (q["kind"] == "unrelated" and q.get("source") != args.fit_source)
    ]
    answers = [a for a in (answer(q, w, b, penalty, 0.0) for q in held_rows) if a is not None]
    print("\n| stated confidence | answers | observed precision |\n|---|---|---|")
    for lo, hi in ((0.0, 0.5), (0.5, 0.8), (0.8, 0.9), (0.9, 0.99), (0.99, 0.999), (0.999, 1.01)):
        sel = [ok for ok, conf in answers if lo <= conf < hi]
        if sel:
            print(f"| {lo:g}–{min(hi, 1):g} | {len(sel)} | {100 * np.mean(sel):.1f} % |")


def answers_of(rows, w, b, penalty, floor, source, length) -> list:
    return [answer(q, w, b, penalty, floor) for q in rows if q.get("source") == source and q["length"] == length]


def choose_penalty(library_queries: list[dict], w, b, floor: float) -> float:
    """The largest wide-stage penalty that loses at most RECALL_SLACK of the calibration clips found.

    More hypotheses give chance more tries, so a wide-stage pile should need more evidence;
    how much more cannot be read off the unrelated clips (too few of them line up at all), so
    the penalty is as large as the true matches of the calibration half allow.
    """

    def found(penalty: float) -> float:
        return float(np.mean([(a := answer(q, w, b, penalty, floor)) is not None and a[0] for q in library_queries]))

    base = found(0.0)
    return max(p for p in PENALTIES if found(p) >= base - RECALL_SLACK)


if __name__ == "__main__":
    main()
