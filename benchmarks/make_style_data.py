#!/usr/bin/env python3
"""Build a synthetic style-family and lead-instrument set (issue 14): labels known by construction.

    nice -n 10 python benchmarks/make_style_data.py                  # ~2 min, bench-work/styles/
    python benchmarks/small_data.py --data folder:bench-work/styles/family --only mfcc,probe,probe-no-rhythm \\
        --cache bench-work/styles/cache

The issue's independent set has 11 style families and 9 lead-instrument classes in a few hundred
30 s clips, and is scored also with *whole grooves held out*. That set is not available here, so
this script renders one of the same shape, where what tells the families apart is what tells
styles apart in rhythm: metre (4/4, 3/4, 12/8), tempo range, swing, the drum groove, and the
rhythm of the bass, the chords and the melody. Everything else is drawn per song whatever the
family: the scale (major, minor, dorian, mixolydian), the chord progression, the chords' instrument
(pluck, organ, pad, strings or a distorted "power" guitar), the bass instrument (pluck, organ,
square) and the drum kit's tuning; the lead instrument is drawn independently of the family. (A
first version with each family's own scale, progressions and chord instrument was too easy: MFCC
statistics alone reached 77 % with whole grooves held out, the probe 100 %, with or without rhythm.)

Families (tempo in beats per minute; grid = steps a beat):

=========  =====  ========  ==========================================================================
rock       4/4    100-145   kick 1 and 3, snare 2 and 4, eighth hats; driving eighth bass; held chords
funk       4/4    90-115    sixteenth hats, syncopated kick, ghost snares; sixteenth bass; short stabs
disco      4/4    112-128   four on the floor, open hats on the off-beats; octave bass; off-beat stabs
reggae     4/4    66-84     one drop (kick and rim on 3); sparse bass; skank chords on the off-beats
waltz      3/4    130-180   light kick on 1; root on 1; chords on 2 and 3 (oom-pah-pah)
swing      4/4    130-200   triplet grid, ride "ding ding-a", pedal hat on 2 and 4; walking bass
bossa      4/4    120-145   bossa kick, rim clave; root-fifth bass; syncopated chords
hiphop     4/4    82-96     boom-bap kick and heavy snare, swung sixteenths; sparse bass; held chords
house      4/4    120-130   four on the floor, clap 2 and 4, off-beat open hats; off-beat bass; stabs
shuffle    12/8   60-90     triplet hats, kick 1 and 3, snare 2 and 4; boogie bass
dnb        4/4    160-178   two-step breakbeat; long bass notes; held chords
=========  =====  ========  ==========================================================================

Each family has ``--grooves`` (6) grooves: drum patterns drawn once per (family, groove) from the
family's rules: extra kicks from the family's syncopations, the hat figure, open hats, one extra
percussion layer (shaker, rim, clap, cowbell, toms or none) and ghost-note density. Every song of
a groove plays that groove; each song draws its own tempo, key, progression, instruments, kit,
melody, mix, timing jitter and fills. Lead instruments (9, additive synthesis):
organ, square, saw, bell, pluck, flute, clarinet, brass, strings; within a family each lead plays
the same number of songs, in random order.

Writes, under ``--out`` (``bench-work/styles``), one FLAC per song (16 kHz mono, 30 s) in
``audio/`` and three ``folder:`` datasets of links to them (tuneseek's probe cache is keyed by the
file's real path: the three share it):

- ``family/<family>/<song>.flac``: each song its own group, so the split is by song (the
  issue's "test split");
- ``family-grooves/<family>/<family>-groove<k>/<song>.flac``: a groove's songs are one group, so
  valid and test hold out whole grooves;
- ``lead/<lead>/<song>.flac``;

the same as one table, ``labels.csv`` (``path,family,lead,group``, a groove's songs one group: ``--data
csv:bench-work/styles/labels.csv --data-option label=lead``), and ``manifest.json`` (each song's family, groove, lead, tempo, key). Deterministic for ``--seed``.
Synthetic audio: read its figures as a check that the features carry metre, groove and timbre, not
as accuracy on recorded music.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

REPO = Path(__file__).resolve().parents[1]
SR = 16000
DURATION = 30.0
PEAK = 0.9
LEADS = ("organ", "square", "saw", "bell", "pluck", "flute", "clarinet", "brass", "strings")
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_DORIAN = (0, 2, 3, 5, 7, 9, 10)
_MIXOLYDIAN = (0, 2, 4, 5, 7, 9, 10)


@dataclass(frozen=True)
class Family:
    """The rules of one style family; steps are positions on the bar's grid (``beats * sub`` steps)."""

    beats: int
    sub: int  # grid steps a beat: 4 straight sixteenths, 3 triplets, 2 eighths
    tempo: tuple[int, int]
    swing: float  # delay of every second sixteenth, as a share of a step (straight grids only)
    kick: tuple[int, ...]
    snare: tuple[int, ...]
    kick_extra: tuple[int, ...]  # syncopations a groove may add
    hats: tuple[str, ...]  # hat figures a groove may take
    bass: str
    comp: str
    melody_steps: tuple[int, ...]  # note lengths in steps


# fmt: off
FAMILIES: dict[str, Family] = {
    "rock": Family(4, 4, (100, 145), 0.0, (0, 8), (4, 12), (6, 10, 14, 2), ("eighths", "quarters"),
                  "eighths", "sustain", (2, 4, 4, 8)),
    "funk": Family(4, 4, (90, 115), 0.0, (0, 10), (4, 12), (3, 6, 7, 14, 15), ("sixteenths", "eighths"),
                  "sync16", "stabs16", (1, 2, 2, 3, 4)),
    "disco": Family(4, 4, (112, 128), 0.0, (0, 4, 8, 12), (4, 12), (14, 6), ("sixteenths", "eighths"),
                   "octaves", "offbeat", (2, 2, 4, 6)),
    "reggae": Family(4, 4, (66, 84), 0.06, (8,), (8,), (0, 14, 10), ("eighths", "offbeat"),
                    "sparse", "skank", (2, 4, 4, 6)),
    "waltz": Family(3, 2, (130, 180), 0.0, (0,), (), (4,), ("beats23", "none"),
                   "oompah", "oompah", (2, 2, 4, 6)),
    "swing": Family(4, 3, (130, 200), 0.0, (0,), (), (5, 8, 11), ("ride", "ride-sparse"),
                   "walking", "comping", (2, 3, 3, 5, 6)),
    "bossa": Family(4, 4, (120, 145), 0.0, (0, 3, 4, 7, 8, 11, 12, 15), (), (), ("eighths", "sixteenths"),
                   "rootfifth", "bossa", (2, 3, 4, 6)),
    "hiphop": Family(4, 4, (82, 96), 0.33, (0, 7, 10), (4, 12), (3, 9, 14, 15), ("eighths", "sixteenths"),
                    "sparse", "sustain", (1, 2, 3, 4, 6)),
    "house": Family(4, 4, (120, 130), 0.0, (0, 4, 8, 12), (4, 12), (14, 15), ("offbeat", "sixteenths"),
                   "offbeat", "offbeat", (2, 2, 4, 8)),
    "shuffle": Family(4, 3, (60, 90), 0.0, (0, 6), (3, 9), (5, 11, 2), ("triplets", "shuffle"),
                     "boogie", "shuffle", (1, 2, 3, 5)),
    "dnb": Family(4, 4, (160, 178), 0.0, (0, 10), (4, 12), (6, 11, 3), ("eighths", "sixteenths"),
                 "long", "sustain", (2, 4, 6, 8)),
}
# fmt: on
# Drawn per song whatever the family: a family is told by how it is played, not by what plays or in which key.
SCALES = (_MAJOR, _MINOR, _DORIAN, _MIXOLYDIAN)
#: chord progressions, scale degrees bar by bar
PROGRESSIONS = (
    (0, 5, 3, 4),
    (0, 3, 5, 4),
    (0, 6, 5, 6),
    (0, 0, 3, 3),
    (0, 3, 0, 4),
    (0, 3, 6, 4),
    (0, 3),
    (0, 4, 3, 4),
    (0, 0, 4, 4, 0, 0, 3, 4),
    (0, 3, 4, 0),
    (1, 4, 0, 0),
    (1, 4, 0, 5),
    (0, 5, 1, 4),
    (0, 1, 4, 0),
    (0, 3, 1, 4),
    (0, 0, 5, 5),
    (0, 3, 0, 3),
    (0, 5, 6, 4),
    (0, 0, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4),
    (0, 5, 3, 6),
    (0, 0, 5, 6),
)
BASS_TIMBRES = ("pluck", "organ", "square")
COMP_TIMBRES = ("pluck", "organ", "pad", "strings", "power")
PERCUSSION = ("none", "shaker", "rim", "clap", "cowbell", "toms")


# ----------------------------------------------------------------------------------------- sounds


def _phase(f0: float, n: int, vibrato_hz: float = 0.0, cents: float = 0.0, rng=None) -> np.ndarray:
    """Instantaneous phase of a note at ``f0`` Hz, with vibrato of ``cents`` depth."""
    t = np.arange(n) / SR
    f = np.full(n, f0)
    if cents:
        f = f0 * 2 ** (cents / 1200 * np.sin(2 * np.pi * vibrato_hz * t + rng.uniform(0, 2 * np.pi)))
    return 2 * np.pi * np.cumsum(f) / SR


def _partials(phase: np.ndarray, amps, f0: float) -> np.ndarray:
    """Harmonic partials ``sum a_k sin(k * phase)`` below 0.45 of the sample rate."""
    out = np.zeros(len(phase))
    for k, a in enumerate(amps, start=1):
        if a and k * f0 < 0.45 * SR:
            out += a * np.sin(k * phase)
    return out


def _env(n: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    na = min(n, max(1, int(attack * SR)))
    nr = min(n - na, max(1, int(release * SR)))
    env[:na] = np.linspace(0, 1, na, endpoint=False)
    if nr > 0:
        env[n - nr :] *= np.linspace(1, 0, nr)
    return env


def note(instrument: str, f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """One note of ``n`` samples at ``f0`` Hz, peak about 1."""
    t = np.arange(n) / SR
    k = np.arange(1, 13)
    if instrument == "organ":
        return _partials(_phase(f0, n), [1, 0.6, 0.4, 0.25, 0, 0.15, 0, 0.1], f0) * _env(n, 0.01, 0.05) / 2
    if instrument == "square":
        return _partials(_phase(f0, n), np.where(k % 2, 1 / k, 0), f0) * _env(n, 0.008, 0.05)
    if instrument == "saw":
        return sum(_partials(_phase(f0 * 2 ** (c / 1200), n), 1 / k, f0) for c in (-7, 7)) * _env(n, 0.008, 0.05) / 3
    if instrument == "bell":
        out = sum(
            a * np.exp(-t * r**0.7 / 0.9) * np.sin(2 * np.pi * f0 * r * t)
            for r, a in zip((1, 2.756, 5.404, 8.933), (1, 0.6, 0.35, 0.2))
            if r * f0 < 0.45 * SR
        )
        return out * _env(n, 0.002, 0.03)
    if instrument == "power":  # a distorted guitar: sustained, clipped
        out = np.tanh(4 * sum((1 / j) * np.sin(2 * np.pi * f0 * j * t) for j in range(1, 8) if j * f0 < 0.45 * SR))
        return out * _env(n, 0.003, 0.03)
    if instrument == "pluck":  # higher partials die first
        out = sum(
            (1 / j**1.1) * np.exp(-t * j**0.8 / 0.35) * np.sin(2 * np.pi * f0 * j * t)
            for j in range(1, 11)
            if j * f0 < 0.45 * SR
        )
        return out * _env(n, 0.003, 0.03)
    if instrument == "flute":
        body = _partials(_phase(f0, n, 5.0, 15, rng), [1, 0.25, 0.08, 0.03], f0)
        breath = signal.sosfilt(_BREATH, rng.standard_normal(n)) * 0.15
        return (body + breath) * _env(n, 0.08, 0.08)
    if instrument == "clarinet":
        return _partials(_phase(f0, n), [1, 0.05, 0.55, 0.04, 0.35, 0.03, 0.2, 0.02, 0.12], f0) * _env(n, 0.04, 0.06)
    if instrument == "brass":
        bright = np.minimum(1, t / 0.08)  # the tone opens up over the attack
        dull = _partials(_phase(f0, n), [1, 0.4, 0.1], f0)
        full = _partials(_phase(f0, n), 1 / k**0.6, f0)
        return ((1 - bright) * dull + bright * full) * _env(n, 0.05, 0.08) / 3
    if instrument == "strings":
        return (
            sum(_partials(_phase(f0 * 2 ** (c / 1200), n, 5.5, 12, rng), 1 / k**1.2, f0) for c in (-10, 0, 10))
            * _env(n, 0.15, 0.2)
            / 4
        )
    if instrument == "pad":
        return sum(_partials(_phase(f0 * 2 ** (c / 1200), n), 1 / k**2, f0) for c in (-6, 6)) * _env(n, 0.3, 0.3) / 2
    raise ValueError(instrument)


_BREATH = signal.butter(2, [1500, 5000], "bandpass", fs=SR, output="sos")
_SNARE = signal.butter(2, [1000, 7000], "bandpass", fs=SR, output="sos")
_HAT = signal.butter(4, 6000, "highpass", fs=SR, output="sos")
_RIM = signal.butter(2, [1500, 4000], "bandpass", fs=SR, output="sos")


def drum(kind: str, kit: dict, rng: np.random.Generator) -> np.ndarray:
    """One hit of ``kind`` with this song's ``kit`` tuning; noise is fresh for every hit."""
    t = np.arange(int(0.4 * SR)) / SR
    noise = rng.standard_normal(len(t))
    if kind == "kick":
        f = kit["kick_hz"] + 110 * np.exp(-t / 0.03)
        return np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t / kit["kick_decay"])
    if kind == "snare":
        body = np.sin(2 * np.pi * kit["snare_hz"] * t) * np.exp(-t / 0.05)
        return 0.5 * body + 0.6 * signal.sosfilt(_SNARE, noise) * np.exp(-t / kit["snare_decay"])
    if kind in ("hat", "open", "shaker"):
        decay = {"hat": kit["hat_decay"], "open": 0.15, "shaker": 0.02}[kind]
        return 0.5 * signal.sosfilt(_HAT, noise) * np.exp(-t / decay) * (0.5 if kind == "shaker" else 1)
    if kind == "ride":
        metal = sum(np.sin(2 * np.pi * f * t) for f in (3150, 4420, 5830, 7260))
        return (0.1 * metal + 0.4 * signal.sosfilt(_HAT, noise)) * np.exp(-t / 0.35)
    if kind == "rim":
        return (signal.sosfilt(_RIM, noise) + np.sin(2 * np.pi * 820 * t)) * np.exp(-t / 0.012)
    if kind == "clap":
        bursts = sum(np.exp(-np.maximum(t - d, 0) / 0.01) * (t >= d) for d in (0, 0.011, 0.023))
        return 0.6 * signal.sosfilt(_SNARE, noise) * bursts
    if kind == "cowbell":
        return 0.3 * np.sign(np.sin(2 * np.pi * 540 * t) + np.sin(2 * np.pi * 800 * t)) * np.exp(-t / 0.08)
    if kind == "tom":
        f = kit["tom_hz"] + 60 * np.exp(-t / 0.05)
        return np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t / 0.2)
    raise ValueError(kind)


# ----------------------------------------------------------------------------------------- parts


def hat_steps(figure: str, fam: Family) -> list[tuple[int, float]]:
    """(step, velocity) of a hat figure on the family's grid."""
    n, sub = fam.beats * fam.sub, fam.sub
    accent = lambda s: 1.0 if s % sub == 0 else 0.7  # noqa: E731
    if figure == "sixteenths" or figure == "triplets":
        return [(s, accent(s)) for s in range(n)]
    if figure == "eighths":
        return [(s, accent(s)) for s in range(0, n, max(1, sub // 2))]
    if figure == "quarters":
        return [(s, 1.0) for s in range(0, n, sub)]
    if figure == "offbeat":
        return [(s + sub // 2, 0.9) for s in range(0, n, sub)]
    if figure == "shuffle":  # long-short: first and third triplet of each beat
        return [(s, accent(s)) for s in range(n) if s % 3 != 1]
    if figure == "beats23":
        return [(s, 0.6) for s in range(sub, n, sub)]
    if figure in ("ride", "ride-sparse"):  # ding, ding-a ding, ding-a: beats, and the last triplet of 2 and 4
        steps = [(s, 1.0) for s in range(0, n, sub)]
        if figure == "ride":
            steps += [(b * sub + 2, 0.7) for b in (1, 3)]
        return steps
    return []


def make_groove(name: str, fam: Family, groove: int, seed: int) -> dict:
    """The drum pattern of ``groove`` of a family: fixed for all its songs."""
    rng = np.random.default_rng([seed, sum(map(ord, name)), groove])
    n = fam.beats * fam.sub
    kicks = set(fam.kick) | {s for s in fam.kick_extra if rng.random() < 0.5}
    hats = hat_steps(str(rng.choice(fam.hats)), fam)
    offbeats = [s for s in range(n) if s % fam.sub]
    opens = {int(s) for s in rng.choice(offbeats, size=min(len(offbeats), int(rng.integers(0, 3))), replace=False)}
    if name in ("disco", "house"):
        opens |= {s + fam.sub // 2 for s in range(0, n, fam.sub)}
    perc = str(rng.choice(PERCUSSION))
    sound = {"shaker": "shaker", "rim": "rim", "clap": "clap", "cowbell": "cowbell", "toms": "tom"}.get(perc)
    steps = {
        "shaker": [(s, 0.6 if s % fam.sub else 1.0) for s in range(n)],
        "clap": [(s, 0.9) for s in fam.snare or (fam.sub, 3 * fam.sub)],
    }.get(perc) or [(int(s), 0.8) for s in rng.choice(n, size=int(rng.integers(2, 5)), replace=False)]
    extra = [(sound, s, v) for s, v in steps] if sound else []
    if name == "swing":
        extra += [("hat", fam.sub, 0.7), ("hat", 3 * fam.sub, 0.7)]  # the pedal hi-hat on 2 and 4
    if name == "bossa":
        extra += [("rim", s, 0.9) for s in (0, 3, 6, 10, 12)]  # the clave, one bar of it
    if name == "reggae":
        extra += [("rim", 8, 1.0)]  # the rim shot of the one drop
    return {
        "kick": sorted(kicks),
        "snare": list(fam.snare),
        "hats": hats,
        "opens": sorted(opens),
        "extra": extra,
        "ghosts": rng.uniform(0.0, 0.15) if name not in ("waltz", "swing") else 0.0,
    }


def bass_line(style: str, fam: Family, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(step, scale-degree offset from the chord root, length in steps) of one bar."""
    n, sub = fam.beats * fam.sub, fam.sub
    if style == "eighths":
        return [(s, 0, 2) for s in range(0, n, 2)]
    if style == "octaves":
        return [(s, 7 * ((s // 2) % 2), 2) for s in range(0, n, 2)]
    if style == "sync16":
        steps = sorted({0, *[int(s) for s in rng.choice(n, size=6, replace=False)]})
        return [(s, int(rng.choice([0, 0, 7, 4, 6])), 1) for s in steps]
    if style == "sparse":
        return [(0, 0, 6), (6, 0, 2), (10, int(rng.choice([2, 4])), 4)]
    if style == "offbeat":
        return [(s + sub // 2, 0, sub // 2) for s in range(0, n, sub)]
    if style == "walking":
        return [(b * sub, int(d), sub) for b, d in zip(range(fam.beats), [0, *rng.choice([1, 2, 4, -1, 5], size=3)])]
    if style == "oompah":
        return [(0, 0, sub)]
    if style == "rootfifth":
        return [(0, 0, 3), (3, 4, 1), (8, 4, 3), (11, 0, 1)]
    if style == "boogie":  # root, third, fifth, sixth, long-short
        return [(b * sub + off, d, 2 if off == 0 else 1) for b, d in zip(range(4), (0, 2, 4, 5)) for off in (0, 2)]
    if style == "long":
        return [(0, 0, n // 2 + 2), (n // 2 + 2, 0, n // 2 - 2)]
    raise ValueError(style)


def comp_steps(style: str, fam: Family, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(step, length in steps) of the chords of one bar."""
    n, sub = fam.beats * fam.sub, fam.sub
    if style == "sustain":
        return [(0, n)]
    if style == "stabs16":
        return [(int(s), 1) for s in sorted(rng.choice([s for s in range(n) if s % 2], size=4, replace=False))]
    if style in ("offbeat", "skank"):
        return [(s + sub // 2, 1) for s in range(0, n, sub)]
    if style == "oompah":
        return [(sub, sub // 2), (2 * sub, sub // 2)]
    if style == "comping":
        return [
            (int(s), 2)
            for s in sorted(rng.choice([b * sub + 2 for b in range(fam.beats)] + [0, 6], size=2, replace=False))
        ]
    if style == "bossa":
        return [(0, 2), (3, 2), (6, 2), (10, 2), (12, 3)]
    if style == "shuffle":
        return [(b * sub + off, 2 if off == 0 else 1) for b in range(fam.beats) for off in (0, 2)]
    raise ValueError(style)


# ----------------------------------------------------------------------------------------- a song


def render_song(name: str, fam: Family, groove: dict, lead: str, seed: int) -> tuple[np.ndarray, dict]:
    """30 s of one song of a family's groove with ``lead`` playing the melody."""
    rng = np.random.default_rng(seed)
    tempo = float(rng.uniform(*fam.tempo))
    step = 60.0 / tempo / fam.sub
    n = int(DURATION * SR)
    bar_steps = fam.beats * fam.sub
    n_bars = int(np.ceil(DURATION / (step * bar_steps))) + 1
    root = int(rng.integers(12))
    scale = np.array(SCALES[int(rng.integers(len(SCALES)))])
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    bass = str(rng.choice(BASS_TIMBRES))
    kit = {
        "kick_hz": rng.uniform(42, 62),
        "kick_decay": rng.uniform(0.08, 0.2),
        "snare_hz": rng.uniform(160, 240),
        "snare_decay": rng.uniform(0.06, 0.14),
        "hat_decay": rng.uniform(0.012, 0.04),
        "tom_hz": rng.uniform(90, 180),
    }
    jitter = rng.uniform(0.002, 0.008)
    comp = str(rng.choice(COMP_TIMBRES))

    def at(bar: int, s: float) -> int:
        """Sample of step ``s`` of ``bar``: swung, humanised."""
        swing = fam.swing * step if fam.sub == 4 and int(s) % 2 == 1 else 0.0
        return int(round(((bar * bar_steps + s) * step + swing + rng.normal(0, jitter)) * SR))

    def hz(degree: int, octave: int) -> float:
        o, d = divmod(int(degree), len(scale))
        return 440.0 * 2 ** ((12 * (octave + o) + root + scale[d] - 69) / 12)

    parts = {p: np.zeros(n + SR) for p in ("drums", "bass", "comp", "lead")}

    def put(part: str, start: int, sound: np.ndarray, gain: float) -> None:
        if 0 <= start < n:
            end = min(start + len(sound), len(parts[part]))
            parts[part][start:end] += gain * sound[: end - start]

    hits = {k: drum(k, kit, rng) for k in ("kick", "snare", "hat", "open", "ride")}
    for bar in range(n_bars):
        fill = bar > 0 and bar % 4 == 3 and rng.random() < 0.5
        for s in groove["kick"]:
            put("drums", at(bar, s), hits["kick"], 0.6 if fam.beats != 3 else 0.45)
        for s in groove["snare"]:
            put("drums", at(bar, s), drum("snare", kit, rng), 0.5)
        for s in range(bar_steps):
            if rng.random() < groove["ghosts"]:
                put("drums", at(bar, s), drum("snare", kit, rng), 0.1)
        hat = "ride" if fam.bass == "walking" else "hat"
        for s, v in groove["hats"]:
            kind = "open" if s in groove["opens"] else hat
            put("drums", at(bar, s), drum(kind, kit, rng) if kind != "ride" else hits["ride"], 0.22 * v)
        for kind, s, v in groove["extra"]:
            put("drums", at(bar, s), drum(kind, kit, rng), 0.25 * v)
        if fill:
            for s in range(bar_steps - fam.sub, bar_steps):
                put("drums", at(bar, s), drum("tom", kit, rng), 0.35)

        chord = progression[bar % len(progression)]
        for s, d, length in bass_line(fam.bass, fam, rng):
            samples = int(length * step * SR * 0.9)
            put("bass", at(bar, s), note(bass, hz(chord + d, 2), samples, rng), 1.0)
        for s, length in comp_steps(fam.comp, fam, rng):
            samples = int(length * step * SR * 0.85)
            tones = (chord, chord + 4) if comp == "power" else (chord, chord + 2, chord + 4)
            for d in tones:
                put("comp", at(bar, s), note(comp, hz(d, 4), samples, rng), 1 / len(tones))

    degree, pos = int(rng.integers(0, 7)), 0
    total = n_bars * bar_steps
    while pos < total:
        length = int(rng.choice(fam.melody_steps))
        if rng.random() < 0.15:
            pos += length
            continue
        degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]), -2, 11))
        samples = int(length * step * SR * rng.uniform(0.8, 0.97))
        put("lead", at(0, pos), note(lead, hz(degree, 5), samples, rng) * rng.uniform(0.6, 1.0), 1.0)
        pos += length

    gains = {"drums": 1.0, "bass": 0.35, "comp": 0.2, "lead": 0.3}
    mix = sum(
        gains[p] * 10 ** (rng.uniform(-3, 3) / 20) * parts[p][:n] / max(1e-9, np.abs(parts[p]).max()) for p in parts
    )
    audio = (PEAK * mix / np.abs(mix).max()).astype(np.float32)
    return audio, {"tempo": round(tempo, 1), "comp": comp, "bass": bass, "key": f"{root}{'m' if scale[2] == 3 else ''}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "bench-work" / "styles", help="where the datasets go")
    ap.add_argument("--grooves", type=int, default=6, help="grooves per family (6)")
    ap.add_argument("--songs", type=int, default=6, help="songs per groove (6)")
    ap.add_argument("--seed", type=int, default=2026, help="the whole set's seed (2026)")
    a = ap.parse_args()
    started = time.time()
    audio_dir = a.out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for fi, (family, fam) in enumerate(FAMILIES.items()):
        per_family = a.grooves * a.songs
        leads = np.random.default_rng([a.seed, fi]).permutation(np.resize(np.arange(len(LEADS)), per_family))
        for groove_id in range(a.grooves):
            groove = make_groove(family, fam, groove_id, a.seed)
            for song in range(a.songs):
                index = groove_id * a.songs + song
                lead = LEADS[leads[index]]
                name = f"{family}-g{groove_id}-s{song}"
                audio, facts = render_song(family, fam, groove, lead, a.seed * 1_000_003 + fi * 1000 + index)
                path = audio_dir / f"{name}.flac"
                sf.write(path, audio, SR, subtype="PCM_16")
                manifest.append({"song": name, "family": family, "groove": groove_id, "lead": lead, **facts})
        print(f"{family}: {per_family} songs ({time.time() - started:.0f} s)", flush=True)
    for entry in manifest:
        source = audio_dir / f"{entry['song']}.flac"
        for link in (
            a.out / "family" / entry["family"] / source.name,
            a.out / "family-grooves" / entry["family"] / f"{entry['family']}-groove{entry['groove']}" / source.name,
            a.out / "lead" / entry["lead"] / source.name,
        ):
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(os.path.relpath(source, link.parent))
    (a.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    with open(a.out / "labels.csv", "w", newline="") as f:  # the same labels as a `csv:` table, grooves as groups
        table = csv.writer(f)
        table.writerow(["path", "family", "lead", "group"])
        for e in manifest:
            table.writerow([f"audio/{e['song']}.flac", e["family"], e["lead"], f"{e['family']}-groove{e['groove']}"])
    print(f"{len(manifest)} songs in {a.out} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
