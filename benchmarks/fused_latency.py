#!/usr/bin/env python3
"""Query time of one engine on the identification benchmark's noisy clips (issue 15).

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/fused_latency.py                 # fused, 10/5/3 s at 0 dB
    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/fused_latency.py --engine landmarks

Each clip of the 0 dB pink-noise sets that ``benchmarks/identify.py`` cut (``WORK/queries/pt3-seed0``) is
asked of the library that ``benchmarks/learned_fingerprint.py`` built (``WORK/learned/fp-v2/library``) with
``Library.candidates(clip, k=1, engine=E)``, decoding included, one at a time after one warm-up query; the
median and mean milliseconds per clip length are printed. Clips at 0 dB are those the landmarks are least
sure of, so the fused engine asks the learned fingerprint and counts landmarks at its placements for most.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from tuneseek import Library


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="bench-work", type=Path)
    ap.add_argument("--engine", default="fused", choices=("landmarks", "learned", "fused"))
    a = ap.parse_args()
    clips = sorted((a.work / "queries" / "pt3-seed0").glob("*noise-0db*/test/sample/*/*.wav"))
    if not clips:
        raise SystemExit(f"no clips under {a.work}/queries/pt3-seed0: run benchmarks/identify.py first")
    with Library.open(a.work / "learned" / "fp-v2" / "library", create=False) as lib:
        lib.candidates(clips[0], k=1, engine=a.engine)  # the network and the views loaded
        for length in ("L10", "L5", "L3"):
            took = []
            for clip in (c for c in clips if c.parts[-5].startswith(f"{length}-")):
                start = time.perf_counter()
                lib.candidates(clip, k=1, engine=a.engine)
                took.append(1000 * (time.perf_counter() - start))
            print(
                f"{length[1:]:>2} s  {a.engine}: median {statistics.median(took):.1f} ms, "
                f"mean {statistics.mean(took):.1f} ms over {len(took)} clips",
                flush=True,
            )


if __name__ == "__main__":
    main()
