"""What a probe hears: frozen features of a whole clip, pooled over time into one vector.

A probe (:mod:`tuneseek.train.probe`) is a linear classifier trained on these vectors. They join
what the pretrained musicnn networks carry and what they do not carry well:

* ``musicnn`` — per 3 s window (musicnn's training patch, windows side by side) the MagnaTagATune
  network's penultimate layer (200), its pooled mid-level layers (``max_pool`` and ``mean_pool``,
  753 each) and its 50 tag probabilities, and the Million Song network's 50 tag probabilities:
  1 806 numbers a window. The narrower groups ``musicnn-penultimate`` (what the library stores
  for ``similar``), ``musicnn-pooled`` and ``musicnn-tags`` pick parts of it, for measuring;
* ``rhythm`` and ``timbre`` — :mod:`tuneseek.descriptors` per 15 s window, 7.5 s apart (tempo,
  onset autocorrelation and metre evidence; MFCC and spectral statistics), and ``mfcc``, the
  MFCC mean and standard deviation alone (the classic baseline).

Each group's window vectors are pooled over the clip by several statistics (mean, standard
deviation, maximum and the 10th, 50th and 90th percentiles by default): a mean alone loses how a
piece varies, which is much of what tells styles apart. Pooling happens after the windows are
stored, so the windows of a dataset are computed once (:func:`window_features`, cached by the
training code) and any choice of groups and statistics is a cheap slice of them.

Audio is read as a stream (:class:`WindowStream`): only the current windows' samples and the
per-window outputs are kept, so memory is bounded whatever the file's length.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from tuneseek import descriptors
from tuneseek.embed.musicnn_extractor import PATCH_FRAMES, MusicnnStream, WindowBatches
from tuneseek.errors import UsageError
from tuneseek.features import MUSICNN_SR

__all__ = [
    "GROUPS",
    "DEFAULT_GROUPS",
    "STATS",
    "DEFAULT_STATS",
    "PARTS",
    "MIN_SECONDS",
    "FeatureSpec",
    "WindowStream",
    "pool",
    "parse_groups",
]

#: The blocks of one musicnn window, in column order, with their sizes.
MUSICNN_BLOCKS = {"penultimate": 200, "max_pool": 753, "mean_pool": 753, "mtt_tags": 50, "msd_tags": 50}
_OFFSETS = np.cumsum([0, *MUSICNN_BLOCKS.values()])
#: The columns of each block in a musicnn window matrix.
BLOCK_COLUMNS = {name: np.arange(_OFFSETS[i], _OFFSETS[i + 1]) for i, name in enumerate(MUSICNN_BLOCKS)}
#: Feature groups a probe can be built on: part (which window matrix) and its columns.
GROUPS = {
    "musicnn": ("musicnn", np.arange(_OFFSETS[-1])),
    "musicnn-penultimate": ("musicnn", BLOCK_COLUMNS["penultimate"]),
    "musicnn-pooled": ("musicnn", np.concatenate([BLOCK_COLUMNS["max_pool"], BLOCK_COLUMNS["mean_pool"]])),
    "musicnn-tags": ("musicnn", np.concatenate([BLOCK_COLUMNS["mtt_tags"], BLOCK_COLUMNS["msd_tags"]])),
    "rhythm": ("descriptors", descriptors.GROUPS["rhythm"]),
    "timbre": ("descriptors", descriptors.GROUPS["timbre"]),
    "mfcc": ("descriptors", descriptors.GROUPS["mfcc"]),
}
DEFAULT_GROUPS = ("musicnn", "rhythm", "timbre")
#: The window matrices features come from, and what changes them (cached windows carry it).
PARTS = {"musicnn": "musicnn-3s-1", "descriptors": f"{descriptors.VERSION}-15s-7.5s"}
STATS = ("mean", "std", "max", "min", "q10", "q50", "q90")
DEFAULT_STATS = ("mean", "std", "max", "q10", "q50", "q90")
#: Shortest audio a probe describes: musicnn's 3 s patch, the floor of every musicnn description.
MIN_SECONDS = 3.0
DESCRIPTOR_WINDOW = 15.0
DESCRIPTOR_HOP = 7.5


def parse_groups(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Feature groups from ``"musicnn,rhythm"`` (or a sequence), checked against :data:`GROUPS`."""
    names = [g.strip() for g in (text.split(",") if isinstance(text, str) else text) if g.strip()]
    unknown = [g for g in names if g not in GROUPS]
    if unknown or not names:
        raise UsageError(f"unknown feature group(s) {', '.join(unknown) or '(none)'}; known: {', '.join(GROUPS)}")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class FeatureSpec:
    """Which groups, pooled by which statistics: what a probe's input vector is."""

    groups: tuple[str, ...] = DEFAULT_GROUPS
    stats: tuple[str, ...] = DEFAULT_STATS

    def __post_init__(self) -> None:
        parse_groups(self.groups)
        unknown = [s for s in self.stats if s not in STATS]
        if unknown or not self.stats:
            raise UsageError(
                f"unknown pooling statistic(s) {', '.join(unknown) or '(none)'}; known: {', '.join(STATS)}"
            )

    @property
    def parts(self) -> tuple[str, ...]:
        """The window matrices these groups read, in :data:`PARTS` order."""
        wanted = {GROUPS[g][0] for g in self.groups}
        return tuple(p for p in PARTS if p in wanted)

    @property
    def version(self) -> str:
        """Names the features exactly: groups, statistics and the versions of the parts they come from."""
        parts = "+".join(PARTS[p] for p in self.parts)
        return f"{','.join(self.groups)}/{','.join(self.stats)}/{parts}"

    @property
    def size(self) -> int:
        return sum(len(GROUPS[g][1]) for g in self.groups) * len(self.stats)

    def to_dict(self) -> dict:
        return {**{k: list(v) for k, v in asdict(self).items()}, "version": self.version}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        return cls(groups=tuple(d["groups"]), stats=tuple(d["stats"]))


def pool(windows: dict[str, np.ndarray], spec: FeatureSpec) -> np.ndarray:
    """The clip's vector: each group's columns of its part's window matrix, pooled by each statistic.

    ``windows`` maps a part to its ``(windows, columns)`` matrix. Layout: group by group, and in a
    group statistic by statistic (all columns' means, then all their standard deviations...).
    """
    out = []
    for group in spec.groups:
        part, columns = GROUPS[group]
        w = np.asarray(windows[part], np.float64)[:, columns]
        for stat in spec.stats:
            if stat == "mean":
                out.append(w.mean(axis=0))
            elif stat == "std":
                out.append(w.std(axis=0))
            elif stat == "max":
                out.append(w.max(axis=0))
            elif stat == "min":
                out.append(w.min(axis=0))
            else:
                out.append(np.quantile(w, int(stat[1:]) / 100, axis=0))
    return np.concatenate(out).astype(np.float32)


@lru_cache(maxsize=2)
def _musicnn(name: str):
    """The pretrained musicnn ``name``, loaded once per process (3 MB of weights)."""
    from tuneseek.embed.weights import load_musicnn

    return load_musicnn(name)[0]


class WindowStream:
    """The window matrices of ``parts`` over 16 kHz mono audio fed in chunks.

    ``finish()`` gives ``{part: (windows, columns) float32}``, or ``None`` when fewer than
    :data:`MIN_SECONDS` of audio came. musicnn's windows lie side by side (a trailing part shorter
    than 3 s is dropped, as musicnn's own tagger does); the descriptors' windows are 15 s long,
    7.5 s apart, and audio shorter than one is described whole.
    """

    def __init__(self, parts: tuple[str, ...]):
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise UsageError(f"unknown feature part(s) {', '.join(sorted(unknown))}")
        self.parts = parts
        self.samples = 0
        self._musicnn = None
        if "musicnn" in parts:
            layers = ("penultimate", "max_pool", "mean_pool", "prob")
            self._musicnn = MusicnnStream(
                [
                    (_musicnn("mtt"), PATCH_FRAMES, PATCH_FRAMES, layers),
                    (_musicnn("msd"), PATCH_FRAMES, PATCH_FRAMES, ("prob",)),
                ]
            )
        self._descriptors = None
        self._head: list[np.ndarray] | None = []  # the first samples, while shorter than one descriptor window
        if "descriptors" in parts:
            n = int(DESCRIPTOR_WINDOW * MUSICNN_SR)
            self._descriptors = WindowBatches(
                n, int(DESCRIPTOR_HOP * MUSICNN_SR), per_batch=1, run=lambda block: descriptors.describe(block)
            )

    def feed(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk, np.float32)
        if self._musicnn is not None:
            self._musicnn.feed(chunk)
        if self._descriptors is not None:
            if self._head is not None:
                self._head.append(chunk)
                if self.samples + len(chunk) >= self._descriptors.n:
                    self._head = None
            self._descriptors.feed(chunk)
        self.samples += len(chunk)

    def finish(self) -> dict[str, np.ndarray] | None:
        if self.samples < MIN_SECONDS * MUSICNN_SR:
            return None
        out = {}
        if self._musicnn is not None:
            [(_, mtt), (_, msd)] = self._musicnn.finish()
            out["musicnn"] = np.concatenate(
                [mtt["penultimate"], mtt["max_pool"], mtt["mean_pool"], mtt["prob"], msd["prob"]], axis=1
            ).astype(np.float32)
        if self._descriptors is not None:
            rows = self._descriptors.finish()
            if not rows:
                rows = [descriptors.describe(np.concatenate(self._head))]
            out["descriptors"] = np.stack(rows).astype(np.float32)
        return out
