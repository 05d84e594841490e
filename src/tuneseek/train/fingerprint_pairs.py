"""Positive pairs for the learned fingerprint: a 1 s segment of a track, and the same music degraded.

The fingerprint (:class:`~tuneseek.models.fingerprint_net.FingerprintNet`) learns to put a clean
segment of an original track (the *anchor*) next to what a query of the same moment sounds like
(its *positive*), and away from every other segment of the batch (contrastive training,
:class:`~tuneseek.train.tasks.FingerprintTask`). A pair is made like this:

* the anchor is a random audible 1 s segment of a track's cached audio (segments quieter than
  :func:`~tuneseek.models.fingerprint_net.audible_segments` allows are never drawn);
* a longer excerpt around it (:data:`CONTEXT_SECONDS` each side) is degraded by a chain drawn
  for the pair (:class:`PairAugment`), so that reverberation, codecs and speed changes have the
  audio before and after the segment to work on, as they have in a real recording;
* the positive is cut from the degraded excerpt where the segment went, moved by a random time
  offset of up to half a hop (a query's segments never fall on the indexed ones: they are at
  most ``HOP_SECONDS / 2`` apart), and with a speed change the cut follows the music
  (a segment played 1.05x fast starts at ``position / 1.05``).

With the origin/sample layout (``queries:PATH``) the real samples of a track are positives
too: a pair then takes its anchor inside a sample's span in the origin (the span is in the
sample's file name) and its positive from the sample itself, at the same offset, with the same
random shift. :class:`RealSample` holds one; a share of the pairs of a track that has samples
(``sample_share``) is made this way.

Training draws new pairs every epoch (``pairs_per_item`` per track; index ``i`` is track
``i % len(items)``), in the data loader's worker processes. Validation pairs are fixed: every
other audible segment of each held-out track, i.e. segments that do not overlap, so that each
positive has exactly one right anchor; their degradations are drawn from a generator seeded by
``(seed, index)``, the same every epoch and every run of a seed.

Each pair comes with ``(track index, anchor start in samples)``, so that the loss does not count
two overlapping segments of one track as negatives of each other.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from scipy import signal

from tuneseek.data.datasets import Dataset, Item
from tuneseek.degrade import Degradation, active_power, degrade, pink_noise
from tuneseek.errors import UsageError
from tuneseek.models.fingerprint_net import HOP_SECONDS, SEGMENT_SECONDS, SILENT_RMS
from tuneseek.models.frontend import MelSpec, fit_window
from tuneseek.train import items as it

__all__ = [
    "CONTEXT_SECONDS",
    "VALID_PAIRS",
    "PairAugment",
    "RealSample",
    "FingerprintPairs",
    "audible_starts",
    "real_samples",
    "describe",
    "summary",
]

#: Seconds of audio each side of a segment that are degraded with it (room tails, codec frames, speed).
CONTEXT_SECONDS = 0.3
#: Validation pairs at most (evenly chosen among the held-out segments when there are more).
VALID_PAIRS = 1024
#: Cached arrays each process keeps open.
OPEN_ARRAYS = 64
#: The band and the syllable rate of the babble noise.
BABBLE_BAND = (300.0, 3400.0)
SYLLABLE_HZ = (3.0, 6.0)


@dataclass(frozen=True)
class RealSample:
    """A real query excerpt of an origin track (the origin/sample layout): the sample as an item of the
    audio cache, and the span ``start``..``end`` (s) of the origin that it holds."""

    item: Item
    start: float
    end: float


@dataclass(frozen=True)
class PairAugment:
    """The degradation chain of a positive, drawn per pair, each step with its own probability.

    In order: speed (pitch and tempo, like a record at the wrong speed), pitch (tempo kept),
    room reverberation, noise (pink, or babble: see :meth:`FingerprintPairs.babble`) at a random
    SNR, a phone in a room (:mod:`tuneseek.degrade`'s ``phone``: small room, AGC, 300-3400 Hz),
    and one codec at most (MP3 at a low bit rate, or GSM). The costly steps (pitch and MP3, about
    17 ms each on 1.6 s of 8 kHz audio; GSM 6 ms) are given to a few pairs, so that a pair costs a
    few milliseconds on average: measured, 4.9 ms of CPU a pair (0.13 ms with no degradation), i.e.
    0.31 s for a batch of 64 against 0.45 s for the default network's optimizer step on the same
    batch (one thread), so one loader process on the second core keeps up.

    Pitch uses pedalboard's ``PitchShift`` (Rubber Band in real-time mode, latency compensated):
    20 times faster than :mod:`tuneseek.degrade`'s offline ``pitch`` step on a segment this short.
    """

    noise_prob: float = 0.8
    babble_share: float = 0.4  # of the noisy pairs
    snr_db: tuple[float, float] = (-5.0, 20.0)
    reverb_prob: float = 0.3
    phone_prob: float = 0.15
    mp3_prob: float = 0.1
    mp3_kbps: tuple[int, ...] = (16, 24, 32, 48, 64)
    gsm_prob: float = 0.1
    speed_prob: float = 0.3
    max_speed: float = 0.05  # speed uniform in 1 +- this
    pitch_prob: float = 0.15
    max_pitch: float = 1.0  # semitones, uniform in +- this
    max_offset: float = HOP_SECONDS / 2  # seconds, uniform in +- this

    def __post_init__(self) -> None:
        """:class:`UsageError` for a chain that cannot be drawn, or would cut a positive past its excerpt."""
        probabilities = ("noise_prob", "babble_share", "reverb_prob", "phone_prob", "mp3_prob", "gsm_prob")
        for name in (*probabilities, "speed_prob", "pitch_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise UsageError(f"augment option {name} is a probability (0 to 1), got {getattr(self, name)}")
        if self.mp3_prob + self.gsm_prob > 1:
            raise UsageError("augment options mp3_prob and gsm_prob share the pairs: together 1 at most")
        if len(self.snr_db) != 2 or self.snr_db[0] > self.snr_db[1]:
            raise UsageError(f"augment option snr_db is [lowest, highest] in dB, got {list(self.snr_db)}")
        for kbps in self.mp3_kbps:
            Degradation("mp3", kbps)  # an MP3 bit rate, or one line naming it
        if not 0 <= self.max_pitch <= 12:
            raise UsageError(f"augment option max_pitch is 0 to 12 semitones, got {self.max_pitch}")
        if (
            self.max_speed < 0
            or self.max_offset < 0
            or self.max_offset + self.max_speed * SEGMENT_SECONDS > CONTEXT_SECONDS + 1e-9
        ):
            raise UsageError(
                "augment options max_offset (s) and max_speed must be 0 or more, and a positive moved by both must "
                f"stay within the {CONTEXT_SECONDS:g} s of context degraded with it: max_offset + max_speed <= "
                f"{CONTEXT_SECONDS:g}, got {self.max_offset:g} + {self.max_speed:g}"
            )

    @classmethod
    def offsets_only(cls) -> PairAugment:
        """No degradation: the positive is the same music shifted in time (``--no-augment``)."""
        return cls(noise_prob=0, reverb_prob=0, phone_prob=0, mp3_prob=0, gsm_prob=0, speed_prob=0, pitch_prob=0)

    @classmethod
    def of(cls, options: dict, *, augment: bool = True) -> PairAugment:
        """The chain of a run: the default one (or :meth:`offsets_only`, without ``augment``) with ``options``
        (``{field: value}``, lists for the pairs of numbers) changed; one :class:`UsageError` line for an
        unknown field or a value out of range."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise UsageError(f"unknown augment option {unknown[0]!r}; known: {', '.join(known)}")
        base = cls() if augment else cls.offsets_only()
        return replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})

    def to_dict(self) -> dict:
        return asdict(self)

    def __call__(
        self, x: np.ndarray, sr: int, rng: np.random.Generator, babble: Callable[[int], np.ndarray]
    ) -> tuple[np.ndarray, float]:
        """``(degraded x, its speed factor)``; ``babble(n)`` gives ``n`` samples of babble noise."""
        y, factor = np.asarray(x, np.float32), 1.0
        if rng.random() < self.speed_prob:
            factor = float(rng.uniform(1 - self.max_speed, 1 + self.max_speed))
            y = degrade(y, sr, [Degradation("speed", factor)], rng=rng)
        if rng.random() < self.pitch_prob:
            y = _pitch(y, sr, float(rng.uniform(-self.max_pitch, self.max_pitch)))
        if rng.random() < self.reverb_prob:
            y = _room(y, sr, rng)
        if rng.random() < self.noise_prob:
            noise = babble(len(y)) if rng.random() < self.babble_share else pink_noise(len(y), sr=sr, rng=rng)
            y = _mix(y, noise, float(rng.uniform(*self.snr_db)), sr)
        if rng.random() < self.phone_prob:
            y = degrade(y, sr, [Degradation("phone")], rng=rng)
        codec = rng.random()
        if codec < self.mp3_prob:
            y = degrade(y, sr, [Degradation("mp3", float(rng.choice(self.mp3_kbps)))], rng=rng)
        elif codec < self.mp3_prob + self.gsm_prob:
            y = degrade(y, sr, [Degradation("gsm")], rng=rng)
        return np.asarray(y, np.float32), factor


def _pitch(x: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    import pedalboard

    return pedalboard.PitchShift(semitones=semitones)(np.ascontiguousarray(x[None, :], np.float32), sr)[0]


def _room(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A room of random size and damping (pedalboard's Freeverb), more or less of it in the mix."""
    import pedalboard

    room = pedalboard.Reverb(
        room_size=float(rng.uniform(0.2, 0.9)),
        damping=float(rng.uniform(0.2, 0.8)),
        wet_level=float(rng.uniform(0.1, 0.4)),
        dry_level=float(rng.uniform(0.6, 0.9)),
        width=0.0,
    )
    return room(np.ascontiguousarray(x, np.float32), sr)


def _mix(x: np.ndarray, noise: np.ndarray, snr_db: float, sr: int) -> np.ndarray:
    """``x`` plus ``noise`` scaled to ``snr_db`` below ``x``'s active power (unchanged when either is silent)."""
    p_signal, p_noise = active_power(x, sr=sr), float(np.mean(np.square(noise, dtype=np.float64)))
    if p_signal <= 0 or p_noise <= 0:
        return x
    return x + noise * np.float32(np.sqrt(p_signal / p_noise / 10 ** (snr_db / 10)))


def _cut(x: np.ndarray, start: int, n: int) -> np.ndarray:
    """``n`` samples of ``x`` from ``start`` (which may be negative), zeros outside ``x``."""
    out = np.zeros(n, np.float32)
    lo, hi = max(0, start), min(len(x), start + n)
    if hi > lo:
        out[lo - start : hi - start] = _as_float(x[lo:hi])
    return out


def _as_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 32767 if x.dtype == np.int16 else x.astype(np.float32)


def _segment_rms(x: np.ndarray, n: int, starts: np.ndarray) -> np.ndarray:
    """The RMS of ``x[s:s+n]`` for each start (by a running sum, not by copying the segments)."""
    power = np.concatenate([[0.0], np.cumsum(np.square(_as_float(x), dtype=np.float64))])
    ends = np.minimum(starts + n, len(x))
    return np.sqrt(np.maximum(power[ends] - power[starts], 0) / n)


def audible_starts(x: np.ndarray, *, n: int, hop: int) -> np.ndarray:
    """The starts, ``hop`` samples apart, of the ``n``-sample segments of ``x`` loud enough to fingerprint
    (as :func:`~tuneseek.models.fingerprint_net.audible_segments` judges them); one start, 0, for audio
    shorter than a segment (repeated to fill it, as at inference)."""
    if len(x) < n:
        x = fit_window(x, n, 0)
    starts = np.arange(0, len(x) - n + 1, hop)
    return starts[_segment_rms(x, n, starts) >= SILENT_RMS].astype(np.int64)


class FingerprintPairs(torch.utils.data.Dataset):
    """``(pair, where)``: ``pair`` is ``(2, samples)``, the anchor and its positive; ``where`` is ``(track index,
    anchor start in samples)``. See the module docstring for how pairs are drawn.

    ``items`` are tracks in the audio cache at ``spec.sample_rate``; those without one audible segment
    (:func:`audible_starts`) are left out, and listed in :attr:`silent` for the caller to name.
    ``samples`` maps a track's key to its :class:`RealSample` s, also in the cache.
    """

    def __init__(
        self,
        items: Sequence[Item],
        *,
        spec: MelSpec,
        cache: Path,
        train: bool = False,
        augment: PairAugment | None = None,
        pairs_per_item: int = 1,
        samples: dict[str, list[RealSample]] | None = None,
        sample_share: float = 0.5,
        seed: int = 0,
        max_pairs: int = VALID_PAIRS,
    ):
        if pairs_per_item < 1 or (pairs_per_item > 1 and not train):
            raise ValueError(f"pairs_per_item must be 1, or more when training; got {pairs_per_item}")
        self.spec, self.cache, self.train, self.seed = spec, cache, train, seed
        self.sr = spec.sample_rate
        self.n = spec.samples(SEGMENT_SECONDS)
        self.hop = spec.samples(HOP_SECONDS)
        self.context = int(round(CONTEXT_SECONDS * self.sr))
        self._open: OrderedDict[Path, np.ndarray] = OrderedDict()
        starts = [audible_starts(self._load(item), n=self.n, hop=self.hop) for item in items]
        #: The items left out: not one audible segment.
        self.silent = [item for item, s in zip(items, starts) if len(s) == 0]
        self.items = [item for item, s in zip(items, starts) if len(s)]
        self.starts = [s for s in starts if len(s)]
        self.augment = PairAugment() if augment is None else augment
        self.pairs_per_item = pairs_per_item
        samples = samples or {}
        self.samples = {i: samples[item.key] for i, item in enumerate(self.items) if samples.get(item.key)}
        self.sample_share = sample_share
        self.fixed: list[tuple[int, int]] = []
        self._made: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # validation pairs made by this process
        if not train:  # every other audible segment: segments that do not overlap, so each has one right anchor
            fixed = [(i, s) for i, starts in enumerate(self.starts) for s in _apart(starts, self.n)]
            if len(fixed) > max_pairs:
                fixed = [fixed[k] for k in np.linspace(0, len(fixed) - 1, max_pairs).round().astype(int)]
            self.fixed = fixed

    def __len__(self) -> int:
        return len(self.items) * self.pairs_per_item if self.train else len(self.fixed)

    def source(self, i: int) -> np.ndarray:
        """Track ``i``'s cached audio (16-bit, memory-mapped)."""
        return self._load(self.items[i])

    def _load(self, item: Item) -> np.ndarray:
        """``item``'s cached audio, memory-mapped; the last :data:`OPEN_ARRAYS` opened are kept open (opening
        one costs about a millisecond, as much as the rest of an undegraded pair)."""
        path = it.cache_path(self.cache, item, sample_rate=self.sr)
        x = self._open.pop(path, None)
        if x is None:
            x = np.load(path, mmap_mode="r")
            if len(self._open) >= OPEN_ARRAYS:
                self._open.popitem(last=False)
        self._open[path] = x
        return x

    def __getstate__(self) -> dict:
        # to a loader's worker process without the open arrays (each process opens its own)
        return {**self.__dict__, "_open": OrderedDict(), "_made": {}}

    def _rng(self) -> np.random.Generator:
        # torch's generator is seeded per worker (and per epoch) by the loader: reproducible with a seed
        return np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()))

    def __getitem__(self, index: int):
        if not self.train:  # the same every epoch: made once per process (a loader's persistent worker)
            if index not in self._made:
                self._made[index] = self._pair(index)
            return self._made[index]
        return self._pair(index)

    def _pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.train:
            rng, i = self._rng(), index % len(self.items)
            start, sample = self._draw(i, rng)
        else:
            rng = np.random.default_rng([self.seed, index])
            i, start = self.fixed[index]
            sample = self._covering(i, start, rng)
        anchor = _as_float(fit_window(self.source(i), self.n, start))
        positive = self.real_positive(sample, start, rng) if sample else self.positive(i, start, rng)
        pair = np.stack([anchor, positive]).astype(np.float32)
        return torch.from_numpy(pair), torch.tensor([i, start])

    def _draw(self, i: int, rng: np.random.Generator) -> tuple[int, RealSample | None]:
        """A training anchor's start in track ``i``, and the real sample that gives its positive (or None)."""
        x = self.source(i)
        samples = self.samples.get(i)
        if samples and rng.random() < self.sample_share:
            sample = samples[int(rng.integers(len(samples)))]
            lo, hi = int(sample.start * self.sr), int(sample.end * self.sr) - self.n
            start = int(rng.integers(lo, max(lo, hi) + 1))
            segment = _cut(x, start, self.n)
            if start + self.n <= len(x) and np.sqrt(np.mean(np.square(segment, dtype=np.float64))) >= SILENT_RMS:
                return start, sample
        starts = self.starts[i]
        start = int(starts[rng.integers(len(starts))]) + int(rng.integers(0, self.hop))
        return min(start, max(0, len(x) - self.n)), None

    def _covering(self, i: int, start: int, rng: np.random.Generator) -> RealSample | None:
        """For a validation anchor: one real sample holding the segment and its shifts (or None), chosen
        ``sample_share`` of the time."""
        margin = self.augment.max_offset
        t0, t1 = start / self.sr - margin, (start + self.n) / self.sr + margin
        covering = [s for s in self.samples.get(i, []) if s.start <= t0 and s.end >= t1]
        if covering and rng.random() < self.sample_share:
            return covering[int(rng.integers(len(covering)))]
        return None

    def _shift(self, rng: np.random.Generator) -> int:
        return int(round(rng.uniform(-self.augment.max_offset, self.augment.max_offset) * self.sr))

    def positive(self, i: int, start: int, rng: np.random.Generator) -> np.ndarray:
        """The segment of track ``i`` at ``start``, shifted and degraded (with its context; see the module)."""
        x = self.source(i)
        if len(x) < self.n:
            x = fit_window(x, self.n, 0)
        excerpt = _cut(x, start - self.context, self.n + 2 * self.context)
        shift = self._shift(rng)
        degraded, factor = self.augment(excerpt, self.sr, rng, lambda n: self.babble(n, rng, besides=i))
        return _cut(degraded, int(round((self.context + shift) / factor)), self.n)

    def real_positive(self, sample: RealSample, start: int, rng: np.random.Generator) -> np.ndarray:
        """The part of a real sample that holds the origin's segment at ``start``, shifted. A sample whose length
        differs from its span (a speed change) is read at the matching rate: ``factor = span / length``."""
        y = self._load(sample.item)
        factor = (sample.end - sample.start) * self.sr / max(1, len(y))
        at = (start - sample.start * self.sr + self._shift(rng)) / max(factor, 1e-3)
        return _cut(y, int(np.clip(round(at), 0, max(0, len(y) - self.n))), self.n)

    def babble(self, n: int, rng: np.random.Generator, *, besides: int) -> np.ndarray:
        """``n`` samples of babble: 3 to 6 segments of other tracks of the set (of the same one when it is alone),
        each amplitude-modulated at a syllable rate (3-6 Hz), summed and band-limited to 300-3400 Hz (the band
        of speech on a phone). There is no speech corpus here: this is music made to sound like a crowd's
        chatter to the network (a speech-band masker fluctuating at a syllable rate), not speech."""
        others = [j for j in range(len(self.items)) if j != besides] or [besides]
        t = np.arange(n) / self.sr
        out = np.zeros(n, np.float32)
        for _ in range(int(rng.integers(3, 7))):
            x = self.source(int(rng.choice(others)))
            voice = _cut(x, int(rng.integers(0, max(1, len(x) - n))), n)
            rms = float(np.sqrt(np.mean(np.square(voice, dtype=np.float64))))
            if rms > 0:
                rate, phase = rng.uniform(*SYLLABLE_HZ), rng.uniform(0, 2 * np.pi)
                out += voice * ((0.5 * (1 + np.sin(2 * np.pi * rate * t + phase))) ** 2 / rms).astype(np.float32)
        return signal.sosfilt(_speech_band(self.sr), out).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _speech_band(sr: int) -> np.ndarray:
    """Second-order sections of a 4th-order Butterworth band-pass over :data:`BABBLE_BAND` (a high-pass from
    its low edge where the top edge is near or above Nyquist)."""
    lo, hi = BABBLE_BAND
    if hi < 0.95 * sr / 2:
        return signal.butter(4, [lo, hi], btype="bandpass", fs=sr, output="sos")
    return signal.butter(4, lo, btype="highpass", fs=sr, output="sos")


def _apart(starts: np.ndarray, n: int) -> list[int]:
    """The starts, in order, each at least ``n`` after the last one kept."""
    kept: list[int] = []
    for s in starts.tolist():
        if not kept or s - kept[-1] >= n:
            kept.append(s)
    return kept


def real_samples(
    ds: Dataset,
    split: str,
    items: Sequence[Item],
    *,
    sample_rate: int,
    cache: Path,
    workers: int = 1,
    executor: Executor | None = None,
) -> tuple[dict[str, list[RealSample]], list[tuple[str, str]]]:
    """The origin/sample layout's positive samples of ``split`` as :class:`RealSample` s of ``items`` (its origin
    tracks, by key), decoded at ``sample_rate`` into the audio cache (:func:`tuneseek.train.items.usable`); and ``(path, reason)``
    for each sample that could not be read. A dataset without samples gives none. Samples shorter than a
    segment are not used, nor those of a label with several origins in the split (which version a sample was
    cut from, its file name does not say)."""
    queryset = (ds.queries or {}).get(split)
    if queryset is None:
        return {}, []
    origins = {item.group: item for item in items}
    wanted = [
        (origins[sample.label], sample)
        for sample in queryset.positives
        if sample.label in origins
        and len(queryset.origins_of(sample.label)) == 1
        and sample.duration >= SEGMENT_SECONDS
    ]
    decoded = [Item(key=_key(ds, s.path), path=s.path, labels=(), group=s.label) for _, s in wanted]
    usable, _, failed = it.usable(
        decoded, None, sample_rate=sample_rate, cache=cache, workers=workers, executor=executor
    )
    kept = {id(item) for item in usable}
    out: dict[str, list[RealSample]] = {}
    for (origin, sample), item in zip(wanted, decoded):
        if id(item) in kept:
            out.setdefault(origin.key, []).append(RealSample(item, sample.start, sample.end))
    return out, [(str(item.path), reason) for item, reason in failed]


def _key(ds: Dataset, path: Path) -> str:
    try:
        return path.relative_to(ds.root).as_posix()
    except ValueError:
        return str(path)


def summary(train: FingerprintPairs, valid: FingerprintPairs) -> dict:
    """What the pairs of a run were: tracks, real samples, validation pairs, and the degradations drawn."""
    return {
        "train_tracks": len(train.items),
        "train_real_samples": sum(len(s) for s in train.samples.values()),
        "valid_tracks": len(valid.items),
        "valid_pairs": len(valid),
        "valid_real_samples": sum(len(s) for s in valid.samples.values()),
        "sample_share": train.sample_share,
        "augment": train.augment.to_dict(),
    }


def describe(train: FingerprintPairs, valid: FingerprintPairs) -> str:
    """One line on the pairs a run trains and validates with."""
    real = summary(train, valid)
    samples = (
        f"; real samples as positives: {real['train_real_samples']} (train), {real['valid_real_samples']} (valid)"
        if real["train_real_samples"] or real["valid_real_samples"]
        else ""
    )
    return (
        f"fingerprint pairs: {train.pairs_per_item} per track per epoch from {len(train.items)} track(s); "
        f"{len(valid)} fixed validation pairs from {len(valid.items)} held-out track(s){samples}"
    )
