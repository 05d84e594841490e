"""The main job, end to end, on music anyone has: ``tuneseek demo``.

With no folder, it synthesises a small catalogue of music-like tracks (the
generator the tests use) plus a few tracks kept out of the library; with a
folder, it uses that music, holding a few tracks out. Either way it indexes the
catalogue into a temporary library, cuts clips under several degradations,
identifies them and scores the answers.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tuneseek import audio
from tuneseek.data.querysets import QuerySet, make_queries
from tuneseek.evaluate.identify import IdentifyReport, evaluate_identify
from tuneseek.library import AddReport, Library

#: (title shown, degradation spec) of the demo's query conditions
CONDITIONS = (
    ("clean", ""),
    ("pink noise 5 dB SNR", "noise:5db"),
    ("pink noise 0 dB SNR", "noise:0db"),
    ("MP3 32 kbit/s", "mp3:32k"),
    ("phone + room", "phone"),
    ("speed +2 %", "speed:1.02"),
    ("tempo +5 %, pitch kept", "tempo:1.05"),
)


@dataclass(frozen=True)
class DemoResult:
    source: str
    tracks: int
    held_out: int
    index: AddReport
    rows: list[tuple[str, IdentifyReport]]
    negatives: IdentifyReport | None


def synthesise(folder: Path, n: int, duration: float, seed: int) -> list[Path]:
    """Write ``n`` synthetic tracks as FLAC files into ``folder``."""
    from tuneseek.synth import synth_catalog

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for track in synth_catalog(n, duration=duration, seed=seed):
        path = folder / f"{track.name}.flac"
        audio.write(path, track.audio, track.sr)
        paths.append(path)
    return paths


def run_demo(
    music: str | Path | None = None,
    *,
    tracks: int = 12,
    held_out: int = 4,
    duration: float = 40.0,
    clip: float = 8.0,
    per_track: int = 2,
    seed: int = 0,
    workers: int | None = None,
    say: Callable[[str], None] = lambda s: None,
) -> DemoResult:
    """Run the demo in a temporary directory and return what it measured."""
    with tempfile.TemporaryDirectory(prefix="tuneseek-demo-") as tmp:
        work = Path(tmp)
        if music is None:
            say(
                f"synthesising {tracks} tracks for the library and {held_out} that stay out of it ({duration:g} s each)"
            )
            synthesise(work / "catalog", tracks, duration, seed)
            synthesise(work / "unknown", held_out, duration, seed + 10_000)
            catalog_src, unknown_src, held = work / "catalog", work / "unknown", 0
            source = "synthetic"
        else:
            catalog_src, unknown_src, held = Path(music), None, held_out
            source = str(music)
        sets: list[tuple[str, QuerySet]] = []
        for title, spec in CONDITIONS:
            say(f"cutting {clip:g} s clips: {title}")
            qs = make_queries(
                catalog_src,
                work / "queries" / (spec.replace(":", "-") or "clean"),
                length=clip,
                degradations=spec,
                per_track=per_track,
                seed=seed,
                holdout=held,
            )
            sets.append((title, qs))
        negatives_qs = None
        if unknown_src is not None:
            negatives_qs = make_queries(
                unknown_src, work / "queries" / "unknown", length=clip, per_track=per_track, seed=seed
            )
        for path, reason in sets[0][1].skipped:
            say(f"left out {path}: {reason}")
        origins = sorted({str(o.path) for o in sets[0][1].origins})
        say(f"indexing {len(origins)} tracks")
        with Library.open(work / "library") as lib:
            added = lib.add(origins, workers=workers, analyse=False)
            refused = {path for path, _ in added.failed}
            for path, reason in added.failed:
                say(f"the library refused {path}: {reason}; its clips are left out")
            rows = []
            for title, qs in sets:
                say(f"identifying: {title}")
                rows.append((title, evaluate_identify(lib, qs)))
            negatives = None
            if negatives_qs is not None:
                negatives = evaluate_identify(lib, _origins_from(negatives_qs, sets[0][1]))
        return DemoResult(source, len(origins) - len(refused), held_out, added, rows, negatives)


def _origins_from(negatives: QuerySet, positives: QuerySet) -> QuerySet:
    """The samples of ``negatives`` as music not in the library, judged against ``positives``' origins."""
    samples = [replace(s, in_library=False) for s in negatives.samples]
    return QuerySet(negatives.root, negatives.split, positives.origins, samples)


__all__ = ["CONDITIONS", "DemoResult", "run_demo", "synthesise"]
