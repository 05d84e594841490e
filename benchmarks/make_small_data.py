#!/usr/bin/env python3
"""Build the two small labelled datasets of issue 14 ("learning from small labelled data").

    nice -n 10 python benchmarks/make_small_data.py                       # both datasets
    nice -n 10 python benchmarks/make_small_data.py --datasets soundtracks --force

Both are ``folder:`` datasets of 30 s excerpts (16 kHz mono 16-bit FLAC) cut from music that Debian
packages install, never used by the tests, in the layout ``<label>/<track>/<track>-NN.flac``: in
tuneseek's ``folder:`` reader all excerpts of a track share the group ``<label>/<track>``, so the
80/10/10 split (by group, stratified by label, seed 0) never puts one track on both sides.

Excerpts: a track of ``D`` s gives ``n <= min(--per-track, floor(D / 30))`` excerpts, evenly spaced
and not overlapping (equal gaps before, between and after them: one excerpt is centred); excerpt
``NN`` is the ``NN``-th in time. Decoded with ``tuneseek.audio.load`` (seeking, soxr HQ to 16 kHz),
or with ffmpeg where tuneseek has no decoder (tracker modules ``.mod``/``.it``: libopenmpt). An
excerpt whose peak is below 1e-3 (silent) is dropped. Every excerpt and its origin (file, start
second, peak) is listed in ``<out>/<dataset>.manifest.json``.

(a) ``soundtracks``: *which Debian game soundtrack is this excerpt from*. Label = the source, one
    per package (both fretsonfire song packages are one source):

    ==============  ==============================================================================
    wesnoth         ``/usr/share/games/wesnoth/1.16/data/core/music/*.ogg`` (wesnoth-1.16-music)
    fretsonfire     ``/usr/share/games/fretsonfire/data/songs/{muldjord,sectoid}/*/``: ``song.ogg``
                    is the backing track without the guitar (correlation with ``guitar.ogg`` ~0),
                    so the excerpt is ``song + guitar`` (summed, as the game plays them; scaled
                    down only if the sum clips)
    hyperrogue      ``/usr/share/hyperrogue/music/*.ogg`` (not ``sounds/``: sound effects)
    warzone2100     ``/usr/share/games/warzone2100/music/menu.opus`` and ``albums/*/*.opus``,
                    without the two ``*_enhanced`` remasters (the same compositions as ``menu`` and
                    original ``track3``: they would be one song in two groups)
    singularity     ``/usr/share/games/singularity/music/**.ogg`` (incl. the win/lose pieces)
    asc             ``/usr/share/games/asc/music/*.mp3`` (3 tracks: one per split)
    drascula        ``/usr/share/scummvm/drascula/audio/*.ogg`` (the ``de/en/es/fr/it`` copies are
                    byte-identical)
    planetblupi     ``/usr/share/planetblupi/music/*.ogg`` (planetblupi-music-ogg)
    pushover        ``/usr/share/pushover/themes/*.ogg`` (pushover-data)
    tecnoballz      ``/usr/share/games/tecnoballz/musics/*.mod`` (not ``sounds/``)
    colobot         ``/usr/share/games/colobot/music/*.ogg`` (colobot-common-sounds, not ``sounds/``)
    ==============  ==============================================================================

    Left out: tomatoes-data (one track), openttd-openmsx (MIDI only; no synthesiser installed), and
    any source with fewer than 3 tracks of at least 30 s. At most ``--per-track`` (6) excerpts per
    track and ``--per-source`` (56) per source: the source's tracks (sorted by path) get one excerpt
    each in turn, round after round, until the source's cap or every track's maximum is reached.

(b) ``composers``: *which composer wrote this Wesnoth piece*. Labels from another source than the
    package: the ``COMPOSER`` (else ``ARTIST``) Vorbis comment that the Wesnoth project wrote in each
    ``/usr/share/games/wesnoth/1.16/data/core/music/*.ogg``. Only composers with at least 3 tracks of
    at least 30 s (one track per split at least): Mattias Westlund, Doug Kaufman, Aleksi
    Aubry-Carlson, Ryan Reilly, Tyler Johnson (25 tracks). One game, one orchestral style, few tracks
    per composer: a real and hard task (test: one to two tracks per composer; read its accuracy with
    that in mind). Up to ``--composer-per-track`` (10) excerpts per track, no cap per composer.

(c) ``synth-tempo``: *is this slow, medium or fast* — **synthetic** music, a rhythm task where the
    labels are known by construction. ``tuneseek.synth.synth_catalog(n, duration=95, sr=16000,
    seed=1414)`` renders songs (key, tempo 70-160 bpm, melody timbre, chords, bass and 4/4 drums all
    drawn per song, independently: only the tempo tells the labels apart); a song's tempo gives its
    label, ``slow`` 72-94, ``medium`` 102-124, ``fast`` 132-154 bpm (songs in the gaps or at the ends
    are not used, so that no label is a matter of a few bpm or of 70 against 140 at the extremes);
    the first ``--synth-songs`` (16) songs of each label are cut into 3 excerpts of 30 s (one group
    per song). 144 clips. Synthetic: a check of the rhythm features, not evidence about real music.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from tuneseek import audio

REPO = Path(__file__).resolve().parent.parent
SR = 16000
EXCERPT = 30.0
SILENT_PEAK = 1e-3
WESNOTH = "/usr/share/games/wesnoth/1.16/data/core/music"
FOF = "/usr/share/games/fretsonfire/data/songs"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip()).strip("_").lower()
    return s or "x"


def g(pattern: str) -> list[str]:
    return sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))


def soundtrack_sources() -> dict[str, list[tuple[str, list[str]]]]:
    """source -> [(track name, [files summed into the track])]."""
    fof = []
    for d in sorted(glob.glob(f"{FOF}/*/*/")):
        song = os.path.join(d, "song.ogg")
        if os.path.isfile(song):
            pack, name = Path(d).parent.name, Path(d).name
            files = [song] + [p for p in [os.path.join(d, "guitar.ogg")] if os.path.isfile(p)]
            fof.append((f"{pack}-{name}", files))
    wz = g("/usr/share/games/warzone2100/music/*.opus") + g("/usr/share/games/warzone2100/music/albums/*/*.opus")
    wz = [p for p in wz if "_enhanced" not in Path(p).stem]
    plain = {
        "wesnoth": g(f"{WESNOTH}/*.ogg"),
        "hyperrogue": g("/usr/share/hyperrogue/music/*.ogg"),
        "warzone2100": wz,
        "singularity": g("/usr/share/games/singularity/music/**/*.ogg"),
        "asc": g("/usr/share/games/asc/music/*.mp3"),
        "drascula": g("/usr/share/scummvm/drascula/audio/*.ogg"),
        "planetblupi": g("/usr/share/planetblupi/music/*.ogg"),
        "pushover": g("/usr/share/pushover/themes/*.ogg"),
        "tecnoballz": g("/usr/share/games/tecnoballz/musics/*.mod"),
        "colobot": g("/usr/share/games/colobot/music/*.ogg"),
        "tomatoes": g("/usr/share/tomatoes/music/*.it"),
    }
    out: dict[str, list[tuple[str, list[str]]]] = {"fretsonfire": fof}
    for src, files in plain.items():
        out[src] = [(Path(p).stem, [p]) for p in files]
    return out


TEMPO_BANDS = {"slow": (72, 94), "medium": (102, 124), "fast": (132, 154)}
SYNTH_SEED, SYNTH_DURATION, SYNTH_EXCERPTS, SYNTH_SONGS_RENDERED = 1414, 95.0, 3, 96


def build_synth_tempo(out: Path, songs_per_label: int, force: bool) -> dict:
    """Render, label by tempo band and cut the synthetic songs of dataset (c) (see the docstring)."""
    from tuneseek.synth import synth_catalog

    name = "synth-tempo"
    root = out / name
    manifest_path = out / f"{name}.manifest.json"
    if root.exists() and manifest_path.exists() and not force:
        log(f"{name}: kept ({root}; --force to rebuild)")
        return json.loads(manifest_path.read_text())
    if root.exists():
        shutil.rmtree(root)
    t0 = time.time()
    got: dict[str, int] = dict.fromkeys(TEMPO_BANDS, 0)
    clips = []
    n = SYNTH_SONGS_RENDERED * max(1, -(-songs_per_label // 16))  # ~60 % of songs fall in a band
    for t in synth_catalog(n, duration=SYNTH_DURATION, sr=SR, seed=SYNTH_SEED):
        label = next((b for b, (lo, hi) in TEMPO_BANDS.items() if lo <= t.tempo <= hi), None)
        if label is None or got[label] >= songs_per_label:
            continue
        got[label] += 1
        folder = root / label / t.name
        folder.mkdir(parents=True, exist_ok=True)
        for i, st in enumerate(starts(t.duration, SYNTH_EXCERPTS)):
            a = int(round(st * SR))
            dest = folder / f"{t.name}-{i:02d}.flac"
            sf.write(dest, t.audio[a : a + int(EXCERPT * SR)], SR, subtype="PCM_16")
            clips.append(
                {"label": label, "track": t.name, "file": str(dest.relative_to(root)), "seed": t.seed,
                 "tempo": t.tempo, "timbre": t.timbre, "key": t.key, "start_s": st}
            )  # fmt: skip
    if min(got.values()) < songs_per_label:
        log(f"{name}: only {got} songs per band among the {n} rendered")
    manifest = {"dataset": name, "root": str(root), "sr": SR, "excerpt_s": EXCERPT, "bands": TEMPO_BANDS,
                "catalog": {"seed": SYNTH_SEED, "duration": SYNTH_DURATION, "rendered": n},
                "build_s": round(time.time() - t0, 1), "clips": clips}  # fmt: skip
    manifest_path.write_text(json.dumps(manifest, indent=1))
    log(f"{name}: {len(clips)} excerpts of {sum(got.values())} songs ({n} rendered) in {manifest['build_s']} s")
    return manifest


def composer_of(path: str) -> str | None:
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format_tags:stream_tags", "-of", "json", path],
        capture_output=True,
        text=True,
    )
    try:
        j = json.loads(r.stdout or "{}")
    except json.JSONDecodeError:
        return None
    tags = {}
    for block in [j.get("format", {})] + j.get("streams", []):
        tags.update({k.lower(): v for k, v in (block.get("tags") or {}).items()})
    return tags.get("composer") or tags.get("artist")


def composer_sources(min_tracks: int) -> dict[str, list[tuple[str, list[str]]]]:
    by: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    for p in g(f"{WESNOTH}/*.ogg"):
        c = composer_of(p)
        if c and duration_of(p) >= EXCERPT:
            by[slug(c.split("(")[0])].append((Path(p).stem, [p]))
    return {c: t for c, t in sorted(by.items()) if len(t) >= min_tracks}


_DUR: dict[str, float] = {}


def duration_of(path: str) -> float:
    if path not in _DUR:
        d = None
        try:
            d = audio.probe(path).duration
        except Exception:
            d = None
        if not d:
            r = subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
                capture_output=True,
                text=True,
            )
            try:
                d = float(r.stdout.strip())
            except ValueError:
                d = 0.0
        _DUR[path] = float(d)
    return _DUR[path]


def decode(path: str, offset: float, duration: float) -> np.ndarray:
    """float32 mono 16 kHz: tuneseek's decoder where it has one, else ffmpeg."""
    if audio.is_audio_path(path):
        try:
            return audio.load(path, SR, offset=offset, duration=duration)
        except Exception as e:  # fall back to ffmpeg below
            log(f"  tuneseek.audio could not decode {path} ({e}); ffmpeg")
    # a second more than asked, cut below: ffmpeg's module (libopenmpt) seeks can give 0.1 s less
    cmd = ["ffmpeg", "-v", "error", "-ss", f"{offset:.3f}", "-t", f"{duration + 1:.3f}", "-i", path]
    cmd += ["-ac", "1", "-ar", str(SR), "-f", "f32le", "-"]
    r = subprocess.run(cmd, capture_output=True, check=True)
    return np.frombuffer(r.stdout, dtype=np.float32)[: int(round(duration * SR))].copy()


def same_audio(dest: Path, y: np.ndarray) -> bool:
    """True when ``dest`` holds ``y`` as 16-bit FLAC would store it."""
    if not dest.exists():
        return False
    try:
        old = sf.read(dest, dtype="int16")[0]
    except Exception:
        return False
    new = np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)  # libsndfile's float -> PCM_16
    return len(old) == len(new) and int(np.max(np.abs(old.astype(np.int32) - new))) <= 1


def starts(dur: float, n: int) -> list[float]:
    gap = (dur - EXCERPT * n) / (n + 1)
    return [round(gap * (i + 1) + EXCERPT * i, 3) for i in range(n)]


def plan(tracks: list[tuple[str, list[str]]], per_track: int, cap: int | None) -> list[tuple[str, list[str], int]]:
    """(track, files, excerpts) after the round-robin over tracks up to the source's cap."""
    room = {name: min(per_track, int(min(duration_of(f) for f in files) // EXCERPT)) for name, files in tracks}
    got = dict.fromkeys(room, 0)
    total = 0
    while True:
        moved = False
        for name, _ in tracks:
            if got[name] < room[name] and (cap is None or total < cap):
                got[name] += 1
                total += 1
                moved = True
        if not moved:
            break
    return [(name, files, got[name]) for name, files in tracks if got[name] > 0]


def build(name: str, sources: dict, out: Path, per_track: int, cap: int | None, min_tracks: int, force: bool) -> dict:
    root = out / name
    manifest_path = out / f"{name}.manifest.json"
    if root.exists() and manifest_path.exists() and not force:
        log(f"{name}: kept ({root}; --force to rebuild)")
        return json.loads(manifest_path.read_text())
    t0 = time.time()
    clips, dropped, written, kept = [], {}, [], 0
    for label, tracks in sources.items():
        chosen = plan(tracks, per_track, cap)
        if len(chosen) < min_tracks:
            dropped[label] = f"{len(chosen)} track(s) of at least {EXCERPT:.0f} s"
            log(f"{name}: {label} left out ({dropped[label]})")
            continue
        n_label = 0
        for track, files, n in chosen:
            dur = min(duration_of(f) for f in files)
            folder = root / label / slug(track)
            folder.mkdir(parents=True, exist_ok=True)
            for i, s in enumerate(starts(dur, n)):
                parts = [decode(f, s, EXCERPT) for f in files]
                m = min(len(p) for p in parts)
                y = np.sum([p[:m] for p in parts], axis=0).astype(np.float32)
                peak = float(np.max(np.abs(y))) if len(y) else 0.0
                if peak < SILENT_PEAK or m < EXCERPT * SR:
                    log(f"  {label}/{track} @ {s:.0f}s dropped (peak {peak:.2g}, {m / SR:.2f} s)")
                    continue
                if peak > 1.0:
                    y /= peak
                dest = folder / f"{slug(track)}-{i:02d}.flac"
                if same_audio(dest, y):  # a rebuild leaves an unchanged excerpt (and its mtime) alone
                    kept += 1
                else:
                    sf.write(dest, y, SR, subtype="PCM_16")
                    written.append(str(dest))
                clips.append(
                    {
                        "label": label,
                        "track": slug(track),
                        "file": str(dest.relative_to(root)),
                        "sources": files,
                        "start_s": s,
                        "peak": round(peak, 4),
                    }
                )
                n_label += 1
        log(f"{name}: {label}: {len(chosen)} tracks, {n_label} excerpts")
    made = {str(root / c["file"]) for c in clips}
    for f in sorted(root.rglob("*")):  # what an earlier build made and this one did not
        if f.is_file() and str(f) not in made:
            f.unlink()
    for d in sorted((d for d in root.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
        if not any(d.iterdir()):
            d.rmdir()
    manifest = {
        "dataset": name,
        "root": str(root),
        "sr": SR,
        "excerpt_s": EXCERPT,
        "per_track": per_track,
        "per_label_cap": cap,
        "left_out": dropped,
        "build_s": round(time.time() - t0, 1),
        "rewritten": written if kept else len(written),
        "clips": clips,
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    log(
        f"{name}: {len(clips)} excerpts in {manifest['build_s']} s -> {root} ({len(written)} written, {kept} unchanged)"
    )
    if kept and written:
        log(
            f"{name}: {len(written)} excerpt(s) changed: tuneseek's decoded-audio cache keys a file by its path alone, "
            "so remove that cache's entries (e.g. rm bench-work/smalldata/cache/*.npy) before training again"
        )
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "bench-work" / "smalldata", help="where the datasets go")
    ap.add_argument(
        "--datasets",
        default="soundtracks,composers,synth-tempo",
        help="comma-separated: soundtracks, composers, synth-tempo",
    )
    ap.add_argument("--per-track", type=int, default=6, help="soundtracks: excerpts per track at most (6)")
    ap.add_argument("--per-source", type=int, default=56, help="soundtracks: excerpts per source at most (56)")
    ap.add_argument("--composer-per-track", type=int, default=10, help="composers: excerpts per track at most (10)")
    ap.add_argument("--synth-songs", type=int, default=16, help="synth-tempo: songs per tempo band (16)")
    ap.add_argument("--min-tracks", type=int, default=3, help="labels with fewer tracks are left out (3)")
    ap.add_argument("--force", action="store_true", help="rebuild a dataset that exists")
    a = ap.parse_args()
    if not shutil.which("ffmpeg") or not shutil.which("ffprobe"):
        sys.exit("ffmpeg and ffprobe are needed (apt-get install ffmpeg)")
    a.out.mkdir(parents=True, exist_ok=True)
    for name in a.datasets.split(","):
        if name == "soundtracks":
            build(name, soundtrack_sources(), a.out, a.per_track, a.per_source, a.min_tracks, a.force)
        elif name == "composers":
            srcs = composer_sources(a.min_tracks)
            log("composers: " + ", ".join(f"{c} ({len(t)})" for c, t in srcs.items()))
            build(name, srcs, a.out, a.composer_per_track, None, a.min_tracks, a.force)
        elif name == "synth-tempo":
            build_synth_tempo(a.out, a.synth_songs, a.force)
        else:
            sys.exit(f"unknown dataset {name!r}")


if __name__ == "__main__":
    main()
