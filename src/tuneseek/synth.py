"""Deterministic synthetic music: distinct, music-like tracks without any recordings.

Used by the tests, by ``tuneseek demo`` and by anyone who wants a catalogue to play with.
Each seed gives one track with its own key (root + major/minor), tempo (70–160 bpm),
melody timbre (organ, square, saw, bell or pluck), chord pads following a random
progression, a bass line and drums (kick = decaying low sine sweep, snare = tone body +
band-passed noise burst, hi-hat = short high-passed noise).

Nothing inside a track repeats exactly, which is what makes the tracks usable for
fingerprinting tests: melody notes are drawn fresh (a random walk on the scale, with random
durations and rests), the chord progression is drawn bar by bar, drum patterns vary per bar
(ghost notes, extra kicks, fills, velocity and timing jitter), every noise burst is fresh
noise and every note is slightly detuned.  So any few-second excerpt occurs once in its
track, and two tracks of different seeds do not share excerpts.

Rendering is vectorised: each note is one NumPy array added into the output (a Python loop
over notes, never over samples); drums are impulse trains convolved with their hit shapes.
A 30 s track at 22050 Hz renders in well under a third of a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from tuneseek.errors import UsageError

__all__ = ["SynthTrack", "synth_track", "synth_catalog", "TIMBRES"]

PEAK = 0.9
TIMBRES = ("organ", "square", "saw", "bell", "pluck")

_ROOT_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_ROOT_SLUGS = ("c", "csharp", "d", "eflat", "e", "f", "fsharp", "g", "aflat", "a", "bflat", "b")
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)  # natural minor
# chord degrees (0-based scale steps) and how often a progression moves to them
_CHORD_DEGREES = np.array([0, 1, 2, 3, 4, 5, 6])
_CHORD_WEIGHTS = np.array([0.24, 0.10, 0.06, 0.20, 0.20, 0.16, 0.04])


@dataclass(frozen=True)
class SynthTrack:
    """One synthetic track: ``synth_track(seed, duration=duration, sr=sr)`` gives the same ``audio``."""

    name: str
    seed: int
    audio: np.ndarray = field(repr=False)
    sr: int
    key: str  # e.g. "D minor"
    tempo: float  # beats per minute
    timbre: str  # melody timbre, one of TIMBRES

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sr


@dataclass(frozen=True)
class _Params:
    root: int  # pitch class 0..11
    minor: bool
    tempo: float
    timbre: str

    @property
    def key(self) -> str:
        return f"{_ROOT_NAMES[self.root]} {'minor' if self.minor else 'major'}"

    @property
    def key_slug(self) -> str:
        return f"{_ROOT_SLUGS[self.root]}{'minor' if self.minor else 'major'}"


def synth_track(seed: int, *, duration: float = 30.0, sr: int = 22050) -> np.ndarray:
    """Render the track of ``seed``: float32 mono, ``round(duration*sr)`` samples, peak ≈ 0.9."""
    audio, _ = _render(seed, duration, sr)
    return audio


def synth_catalog(n: int, *, duration: float = 30.0, sr: int = 22050, seed: int = 0) -> list[SynthTrack]:
    """``n`` distinct tracks named like ``"synth-03-dminor-112bpm"``.

    Track ``i`` uses a per-track seed derived from ``(seed, i)``; it is stored in
    :attr:`SynthTrack.seed`, so ``synth_track(t.seed, duration=duration, sr=sr)`` re-renders ``t.audio``.
    """
    if n < 0:
        raise UsageError(f"synth_catalog: n must be >= 0, got {n}")
    width = max(2, len(str(max(n - 1, 0))))
    seeds = _catalog_seeds(n, seed)
    tracks = []
    for i, s in enumerate(seeds):
        audio, p = _render(s, duration, sr)
        name = f"synth-{i:0{width}d}-{p.key_slug}-{int(round(p.tempo))}bpm"
        tracks.append(SynthTrack(name=name, seed=s, audio=audio, sr=sr, key=p.key, tempo=p.tempo, timbre=p.timbre))
    return tracks


def _catalog_seeds(n: int, seed: int) -> list[int]:
    """Distinct per-track seeds (31-bit ints), a pure function of ``(seed, n)``."""
    ss = np.random.SeedSequence([0x7475_6E65, int(seed) & 0xFFFFFFFF])
    out: list[int] = []
    seen: set[int] = set()
    state = ss.generate_state(max(n, 1) * 2 + 8, dtype=np.uint32)
    for v in state:
        s = int(v) & 0x7FFFFFFF
        if s not in seen:
            seen.add(s)
            out.append(s)
        if len(out) == n:
            break
    return out


# --------------------------------------------------------------------------- rendering


def _params(rng: np.random.Generator) -> _Params:
    root = int(rng.integers(12))
    minor = bool(rng.random() < 0.5)
    tempo = float(rng.integers(70, 161))
    timbre = str(TIMBRES[int(rng.integers(len(TIMBRES)))])
    return _Params(root, minor, tempo, timbre)


def _render(seed: int, duration: float, sr: int) -> tuple[np.ndarray, _Params]:
    if not (duration > 0) or not np.isfinite(duration):
        raise UsageError(f"synth: duration must be a positive number of seconds, got {duration}")
    if int(sr) != sr or sr < 4000:
        raise UsageError(f"synth: sample rate must be an integer >= 4000 Hz, got {sr}")
    sr = int(sr)
    rng = np.random.default_rng(np.random.SeedSequence([0x5EED, int(seed) & 0xFFFFFFFFFFFFFFFF]))
    p = _params(rng)
    n = int(round(duration * sr))
    beat = 60.0 / p.tempo
    n_beats = int(np.ceil(duration / beat)) + 1
    n_bars = int(np.ceil(n_beats / 4)) + 1
    scale = np.array(_MINOR if p.minor else _MAJOR)
    tuning = float(rng.uniform(-15, 15))  # cents, the whole track's tuning

    # chord per half bar: a fresh random progression, drawn bar by bar
    chords = _progression(rng, n_bars * 2)

    out = np.zeros(n, dtype=np.float32)
    pad = _render_pads(rng, chords, scale, p.root, tuning, beat, n, sr)
    bass = _render_bass(rng, chords, scale, p.root, tuning, beat, n_bars, n, sr)
    mel = _render_melody(rng, p.timbre, chords, scale, p.root, tuning, beat, n_beats, n, sr)
    drums = _render_drums(rng, beat, n_bars, n, sr)
    out += 0.16 * pad
    out += 0.30 * bass
    out += 0.30 * mel
    out += drums
    peak = float(np.max(np.abs(out))) if n else 0.0
    if peak > 0:
        out *= PEAK / peak
    return out.astype(np.float32, copy=False), p


def _progression(rng: np.random.Generator, n_halves: int) -> np.ndarray:
    """Scale degree of the chord for each half bar; changes mostly on bar lines."""
    degrees = np.empty(n_halves, dtype=np.int64)
    cur = 0
    for i in range(n_halves):
        if i == 0:
            cur = 0
        elif i % 2 == 0 or rng.random() < 0.25:
            w = _CHORD_WEIGHTS.copy()
            w[cur] *= 0.25  # prefer moving on
            cur = int(rng.choice(_CHORD_DEGREES, p=w / w.sum()))
        degrees[i] = cur
    return degrees


def _midi_of(scale: np.ndarray, root: int, degree: int, base: int) -> int:
    """MIDI note of scale ``degree`` (may be negative / above 7) above ``base + root``."""
    octave, step = divmod(int(degree), 7)
    return base + root + 12 * octave + int(scale[step])


def _hz(midi: float, cents: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12.0 + cents / 1200.0)


def _harmonics(f0: float, t: np.ndarray, amps: np.ndarray, sr: int) -> np.ndarray:
    """Sum of amps[k-1]*sin(k θ), θ = 2π f0 t, by the Chebyshev recursion (2 trig calls)."""
    kmax = min(len(amps), int(0.45 * sr / f0))
    theta = (2 * np.pi * f0) * t
    s1 = np.sin(theta).astype(np.float32)
    if kmax <= 1:
        return np.float32(amps[0]) * s1
    c2 = (2.0 * np.cos(theta)).astype(np.float32)
    out = np.float32(amps[0]) * s1
    s_prev, s_cur = np.zeros_like(s1), s1
    for k in range(2, kmax + 1):
        s_next = c2 * s_cur - s_prev
        out += np.float32(amps[k - 1]) * s_next
        s_prev, s_cur = s_cur, s_next
    return out


def _add(out: np.ndarray, start: int, note: np.ndarray) -> None:
    if start >= len(out) or start + len(note) <= 0:
        return
    a = max(start, 0)
    b = min(start + len(note), len(out))
    out[a:b] += note[a - start : b - start]


def _ar_env(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n, dtype=np.float32)
    na = min(n, max(1, int(attack * sr)))
    nr = min(n - na, max(1, int(release * sr)))
    env[:na] = np.linspace(0, 1, na, endpoint=False, dtype=np.float32)
    if nr > 0:
        env[n - nr :] *= np.linspace(1, 0, nr, dtype=np.float32)
    return env


# ------------------------------------------------------------------------ instruments


def _render_pads(rng, chords, scale, root, tuning, beat, n, sr) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    half = 2 * beat
    amps = np.array([1.0, rng.uniform(0.3, 0.6), rng.uniform(0.15, 0.35), rng.uniform(0.05, 0.2)])
    i = 0
    while i < len(chords) and i * half * sr < n:
        j = i
        while j + 1 < len(chords) and chords[j + 1] == chords[i]:
            j += 1  # hold a repeated chord as one long pad
        deg = int(chords[i])
        inv = int(rng.integers(3))
        start = int(round(i * half * sr))
        length = int(round((j - i + 1) * half * sr + 0.15 * sr))
        t = np.arange(length, dtype=np.float64) / sr
        env = _ar_env(length, sr, rng.uniform(0.05, 0.3), 0.25)
        for v, d in enumerate((deg, deg + 2, deg + 4)):
            midi = _midi_of(scale, root, d, 48 + (12 if v < inv else 0))
            f = _hz(midi, tuning + rng.normal(0, 6))
            out_note = _harmonics(f, t, amps, sr)
            _add(out, start, env * out_note * np.float32(rng.uniform(0.7, 1.0)))
        i = j + 1
    return out


def _render_bass(rng, chords, scale, root, tuning, beat, n_bars, n, sr) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    amps = np.array([1.0, rng.uniform(0.3, 0.6), rng.uniform(0.05, 0.2)])
    decay = rng.uniform(0.25, 0.6)
    for b in range(n_bars * 4):
        t0 = b * beat
        if t0 * sr >= n:
            break
        chord = int(chords[min(b // 2, len(chords) - 1)])
        # subdivision for this beat: one note, two eighths or a rest
        r = rng.random()
        subs = [0.0] if r < 0.62 else ([0.0, 0.5] if r < 0.9 else [])
        if b % 4 == 0 and not subs:
            subs = [0.0]
        for s in subs:
            if b % 4 == 0 and s == 0.0:
                deg = chord  # root on the downbeat
            else:
                deg = chord + int(rng.choice([0, 0, 4, 7, 2, -1, 1]))
            midi = _midi_of(scale, root, deg, 36)
            f = _hz(midi, tuning + rng.normal(0, 5))
            dur = beat * (0.5 if len(subs) > 1 else rng.uniform(0.6, 1.0))
            length = int(dur * sr)
            if length <= 0:
                continue
            t = np.arange(length, dtype=np.float64) / sr
            env = np.exp(-t / decay).astype(np.float32) * _ar_env(length, sr, 0.005, 0.03)
            start = int(round((t0 + s * beat + rng.normal(0, 0.004)) * sr))
            _add(out, start, env * _harmonics(f, t, amps, sr) * np.float32(rng.uniform(0.75, 1.0)))
    return out


def _melody_voice(timbre: str, rng: np.random.Generator):
    """(kind, ratios, amps, decay) of the melody instrument, a little different per track."""
    k = np.arange(1, 13, dtype=np.float64)
    if timbre == "organ":
        amps = np.array([1.0, 0.6, 0.4, 0.25, 0.0, 0.15, 0.0, 0.1]) * rng.uniform(0.8, 1.2, 8)
        return "harm", None, amps, None
    if timbre == "square":
        amps = np.where(k % 2 == 1, 1.0 / k, 0.0) * rng.uniform(0.85, 1.15, len(k))
        return "harm", None, amps[:11], None
    if timbre == "saw":
        amps = (1.0 / k) * rng.uniform(0.85, 1.15, len(k))
        return "harm", None, amps[:10], None
    if timbre == "bell":
        ratios = np.array([1.0, 2.756, 5.404, 8.933, 13.34]) * rng.uniform(0.99, 1.01, 5)
        amps = np.array([1.0, 0.6, 0.35, 0.2, 0.1])
        return "bell", ratios, amps, rng.uniform(0.6, 1.2)
    # pluck: bright attack, higher harmonics die first
    amps = 1.0 / k**1.1
    return "pluck", k[:10], amps[:10], rng.uniform(0.25, 0.5)


def _render_melody(rng, timbre, chords, scale, root, tuning, beat, n_beats, n, sr) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    kind, ratios, amps, decay = _melody_voice(timbre, rng)
    durations = np.array([0.5, 0.5, 0.75, 1.0, 1.0, 1.5, 2.0])
    deg = int(rng.integers(0, 7))
    pos = 0.0  # in beats
    while pos < n_beats:
        dur = float(rng.choice(durations))
        if rng.random() < 0.15:  # rest
            pos += float(rng.choice([0.5, 1.0]))
            continue
        step = int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]))
        deg = int(np.clip(deg + step, -2, 11))
        if pos % 2 == 0 and rng.random() < 0.5:  # lean on chord tones at chord changes
            chord = int(chords[min(int(pos // 2), len(chords) - 1)])
            tones = np.array([chord, chord + 2, chord + 4, chord + 7, chord - 3])
            deg = int(tones[np.argmin(np.abs(tones - deg))])
            deg = int(np.clip(deg, -2, 11))
        midi = _midi_of(scale, root, deg, 60)
        f = _hz(midi, tuning + rng.normal(0, 8))
        length = int(dur * beat * sr * rng.uniform(0.8, 0.98))
        start = int(round((pos * beat + rng.normal(0, 0.006)) * sr))
        pos += dur
        if length <= 0 or start >= n:
            continue
        t = np.arange(length, dtype=np.float64) / sr
        vel = np.float32(rng.uniform(0.55, 1.0))
        if kind == "harm":
            note = _harmonics(f, t, amps, sr) * _ar_env(length, sr, 0.012, 0.06)
        elif kind == "bell":
            note = np.zeros(length, dtype=np.float32)
            for r, a in zip(ratios, amps):
                if r * f < 0.45 * sr:
                    e = np.exp(-t * (r**0.7) / decay).astype(np.float32)
                    note += np.float32(a) * e * np.sin((2 * np.pi * f * r) * t).astype(np.float32)
            note *= _ar_env(length, sr, 0.002, 0.03)
        else:  # pluck
            note = np.zeros(length, dtype=np.float32)
            tf = t.astype(np.float32)
            for r, a in zip(ratios, amps):
                if r * f < 0.45 * sr:
                    e = np.exp(-tf * np.float32(r**0.8 / decay))
                    note += np.float32(a) * e * np.sin((2 * np.pi * f * r) * t).astype(np.float32)
            note *= _ar_env(length, sr, 0.002, 0.03)
        _add(out, start, vel * note)
    return out


def _render_drums(rng, beat, n_bars, n, sr) -> np.ndarray:
    kicks: list[tuple[float, float]] = []
    snares: list[tuple[float, float]] = []
    hats: list[tuple[float, float]] = []
    open_hats: list[tuple[float, float]] = []
    six = beat / 4  # sixteenth
    hat_prob = rng.uniform(0.75, 0.95)
    sixteenth_hats = rng.random() < 0.35
    for bar in range(n_bars):
        b0 = bar * 4 * beat
        if b0 * sr >= n:
            break
        if bar > 0 and rng.random() < 0.05:  # a drum break now and then
            continue
        fill = bar > 0 and rng.random() < 0.18
        for s in range(16):
            t = b0 + s * six
            j = lambda t=t: t + rng.normal(0, 0.003)  # humanised timing
            beat_i, sub = divmod(s, 4)
            if sub == 0 and beat_i in (0, 2):
                kicks.append((j(), rng.uniform(0.85, 1.0)))
            elif sub in (2, 3) and rng.random() < 0.14:
                kicks.append((j(), rng.uniform(0.5, 0.8)))
            if fill and beat_i == 3:
                snares.append((j(), 0.4 + 0.15 * sub + rng.uniform(-0.08, 0.08)))
            elif sub == 0 and beat_i in (1, 3):
                snares.append((j(), rng.uniform(0.8, 1.0)))
            elif rng.random() < 0.07:
                snares.append((j(), rng.uniform(0.12, 0.3)))  # ghost note
            if sub % 2 == 0 or sixteenth_hats:
                if rng.random() < hat_prob:
                    v = rng.uniform(0.4, 1.0) * (1.0 if sub == 0 else 0.75)
                    (open_hats if rng.random() < 0.06 else hats).append((j(), v))

    # hit shapes
    tk = np.arange(int(0.35 * sr)) / sr
    f_kick = 48 + 110 * np.exp(-tk / 0.03)
    kick = (np.sin(2 * np.pi * np.cumsum(f_kick) / sr) * np.exp(-tk / 0.12)).astype(np.float32)
    ts = np.arange(int(0.25 * sr)) / sr
    snare_body = (np.sin(2 * np.pi * rng.uniform(170, 210) * ts) * np.exp(-ts / 0.05)).astype(np.float32)
    snare_env = np.exp(-ts / rng.uniform(0.07, 0.12)).astype(np.float32)
    th = np.arange(int(0.25 * sr)) / sr
    hat_env = np.exp(-th / rng.uniform(0.015, 0.03)).astype(np.float32)
    open_env = np.exp(-th / 0.12).astype(np.float32)

    # fresh noise for every hit: one long noise buffer, filtered once
    nyq = sr / 2
    noise = rng.standard_normal(n).astype(np.float32)
    lo, hi = min(1000.0, 0.4 * nyq), min(7000.0, 0.9 * nyq)
    snare_noise = signal.sosfilt(signal.butter(2, [lo, hi], "bandpass", fs=sr, output="sos"), noise)
    hat_noise = signal.sosfilt(signal.butter(4, min(6000.0, 0.6 * nyq), "highpass", fs=sr, output="sos"), noise[::-1])

    def conv(hits: list[tuple[float, float]], shape: np.ndarray) -> np.ndarray:
        """Sum of ``velocity * shape`` placed at each hit (hits are sparse: loop over them)."""
        acc = np.zeros(n, dtype=np.float32)
        for t, v in hits:
            _add(acc, int(round(t * sr)), np.float32(v) * shape)
        return acc

    out = 0.55 * conv(kicks, kick)
    out += 0.22 * conv(snares, snare_body)
    out += 0.22 * conv(snares, snare_env) * snare_noise.astype(np.float32)
    hat = conv(hats, hat_env) + 0.6 * conv(open_hats, open_env)
    out += 0.12 * hat * hat_noise.astype(np.float32)
    return out.astype(np.float32)
