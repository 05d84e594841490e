"""``jamendo:PATH`` — MTG-Jamendo auto-tagging: genre, instrument or mood/theme tags.

The folder holds the metadata, TAB-separated ``autotagging*.tsv`` files with the header
``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS``, the tags being the remaining fields
(``genre---rock``, ``instrument---guitar``, ``mood/theme---happy``...).  For a category the
file read is the first present of ``autotagging_<category>.tsv`` (``moodtheme`` for
mood/theme), ``autotagging.tsv`` (all categories), then any other ``autotagging*.tsv``.

Audio is at ``PATH/audio/<PATH column>`` or ``PATH/<PATH column>``.  With
``features="melspecs"`` the items also carry the dataset's precomputed mel-spectrograms,
``PATH/melspecs/<PATH column as .npy>`` (or ``PATH/<...>.npy``), each ``(96, frames)`` at
12 kHz, n_fft 512, hop 256 (46.875 frames/s; a 30 s crop is 96 x 1400), and ``path`` is None
when the audio is absent.  Where the files are is decided once, from the first item: no
per-item check (see :meth:`Dataset.check_files`).

Splits: the official ``splits/split-N/<tsv stem>-{train,validation,test}.tsv`` when present
(split-0 unless ``split=N`` asks for another), else our own 80/10/10 by artist.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tuneseek.data.datasets import (
    SPLITS,
    Dataset,
    Item,
    PrecomputedMel,
    at_line,
    by_frequency,
    own_split_source,
    read_tsv,
    split_by_group,
    too_few_groups,
    under,
)
from tuneseek.errors import DatasetError

__all__ = ["read_jamendo", "HEADER", "MELSPECS"]

HEADER = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS")
MELSPECS = PrecomputedMel(sample_rate=12000, n_fft=512, hop=256, n_mels=96)
_SEP = "---"  # between a tag's category and its name
_FILE_SLUG = {"genre": "_genre", "instrument": "_instrument", "mood/theme": "_moodtheme", "all": ""}
_OFFICIAL_SPLIT_NAMES = {"train": "train", "valid": "validation", "test": "test"}


class _Track(NamedTuple):
    """One metadata row: ids, the audio path relative to the audio folder, ``category---name`` tags."""

    track_id: str
    artist_id: str
    path: str
    tags: tuple[str, ...]


def read_jamendo(
    root: Path,
    *,
    category: str = "genre",
    single_label: bool = False,
    balance: bool = True,
    top: int | None = None,
    split: int | None = None,
    features: str | None = None,
    seed: int = 0,
) -> Dataset:
    """Read MTG-Jamendo (see the module docstring).

    ``category``: ``"genre"``, ``"instrument"``, ``"mood/theme"`` (labels without the
    prefix) or ``"all"`` (every tag, prefix kept).  ``single_label``: keep only the tracks with
    exactly one tag of the category, then (unless ``balance=False``) down-sample every class to
    the smallest one's size, seeded.  ``top``: keep the N most frequent tags.  ``split``: the
    official split index.  ``features``: ``"melspecs"`` for the precomputed mel-spectrograms.
    ``seed``: our own split and the balancing.
    """
    _check_options(root, top, split, features)
    tsv = _metadata_file(root, category)
    tracks = _read_tracks(tsv)
    official = _official_split(root, tsv, split, {track.track_id for track in tracks})
    if official is not None:
        tracks = [track for track in tracks if track.track_id in official]
    tagged = _category_labels(tracks, category, tsv)
    if single_label:
        kept, notes = _single_label(tagged, category, top, balance, seed, tsv)
    else:
        kept, notes = _multi_label(tagged, category, top)
    labels = by_frequency(Counter(label for _, track_labels in kept for label in track_labels))
    items = _items(root, kept, labels, features)
    if official is not None:
        splits = {s: [item for item in items if official[item.key] == s] for s in SPLITS}
        source, notes = "official", [f"official split-{split or 0}", *notes]
    else:
        splits, source = _own_splits(items, seed, tsv), own_split_source(seed)
    return Dataset(
        name="jamendo",
        root=root,
        task="single-label" if single_label else "multi-label",
        labels=labels,
        splits=splits,
        features=MELSPECS if features else None,
        split_source=source,
        notes=tuple(notes),
    )


def _check_options(root: Path, top: int | None, split: int | None, features: str | None) -> None:
    """Option values that cannot mean anything are refused before any file is read."""
    if features not in (None, "melspecs"):
        raise DatasetError(root, f"features={features!r}: expected 'melspecs' (precomputed mel-spectrograms) or None")
    if top is not None and (not isinstance(top, int) or top < 1):
        raise DatasetError(root, f"top={top!r}: expected a positive number of tags")
    if split is not None and (not isinstance(split, int) or split < 0):
        raise DatasetError(root, f"split={split!r}: expected an official split index (0, 1, ...)")


# ----------------------------------------------------------------------------- metadata


def _metadata_file(root: Path, category: str) -> Path:
    """The TSV to read for ``category``: its own file, else the all-categories one, else any."""
    found = sorted(root.glob("autotagging*.tsv"))
    if not found:
        raise DatasetError(root, "no autotagging*.tsv metadata file (MTG-Jamendo)")
    preferred = [f"autotagging{_FILE_SLUG[category]}.tsv"] if category in _FILE_SLUG else []
    for name in (*preferred, "autotagging.tsv"):
        if root / name in found:
            return root / name
    return found[0]


def _read_tracks(tsv: Path) -> list[_Track]:
    """Parse and check a metadata TSV: header, at least 6 fields, ``category---name`` tags,
    unique track ids."""
    rows = read_tsv(tsv)
    _, header = next(rows, (1, []))
    if tuple(header) != HEADER:
        raise DatasetError(at_line(tsv, 1), f"header {' '.join(header)!r}, expected {' '.join(HEADER)!r}")
    tracks: list[_Track] = []
    line_of: dict[str, int] = {}
    for line, row in rows:
        if len(row) < len(HEADER):
            raise DatasetError(at_line(tsv, line), f"{len(row)} fields, expected at least {len(HEADER)}")
        track_id, artist_id, _album, path, _duration, *tags = row
        for tag in tags:
            category, sep, name = tag.partition(_SEP)
            if not (sep and category and name):
                raise DatasetError(at_line(tsv, line), f"tag {tag!r} is not category{_SEP}name")
        if track_id in line_of:
            raise DatasetError(at_line(tsv, line), f"{track_id} already on line {line_of[track_id]}")
        line_of[track_id] = line
        tracks.append(_Track(track_id, artist_id, path, tuple(tags)))
    return tracks


def _category_labels(tracks: list[_Track], category: str, tsv: Path) -> list[tuple[_Track, tuple[str, ...]]]:
    """Each track with its tags of ``category`` (names without the prefix), or all its tags
    (prefix kept) for ``"all"``."""
    if category == "all":
        return [(track, track.tags) for track in tracks]
    present = sorted({tag.partition(_SEP)[0] for track in tracks for tag in track.tags})
    if category not in present:
        raise DatasetError(tsv, f"no {category!r} tags; categories present: {', '.join(present)} (or 'all')")
    prefix = category + _SEP
    return [(track, tuple(tag[len(prefix) :] for tag in track.tags if tag.startswith(prefix))) for track in tracks]


# ----------------------------------------------------------------------------- label subsets


def _multi_label(
    tagged: list[tuple[_Track, tuple[str, ...]]], category: str, top: int | None
) -> tuple[list[tuple[_Track, tuple[str, ...]]], list[str]]:
    """The ``top`` most frequent tags; tracks left with none of them are dropped."""
    narrowed = tagged
    if top is not None:
        kept_tags = set(by_frequency(Counter(label for _, labels in tagged for label in labels))[:top])
        narrowed = [(track, tuple(label for label in labels if label in kept_tags)) for track, labels in tagged]
    kept = [(track, labels) for track, labels in narrowed if labels]
    dropped = len(tagged) - len(kept)
    notes = [f"{dropped} track(s) without a kept {_tag_word(category)} left out"] if dropped else []
    return kept, notes


def _single_label(
    tagged: list[tuple[_Track, tuple[str, ...]]],
    category: str,
    top: int | None,
    balance: bool,
    seed: int,
    tsv: Path,
) -> tuple[list[tuple[_Track, tuple[str, ...]]], list[str]]:
    """Tracks with exactly one tag of the category, of the ``top`` classes, balanced."""
    single = [(track, labels) for track, labels in tagged if len(labels) == 1]
    if not single:
        raise DatasetError(tsv, f"no track has exactly one {_tag_word(category)}")
    notes = [f"single-label: {len(single)} of {len(tagged)} tracks have exactly one {_tag_word(category)}"]
    counts = Counter(labels[0] for _, labels in single)
    classes = set(by_frequency(counts)[:top])
    single = [(track, labels) for track, labels in single if labels[0] in classes]
    scarce = sorted(label for label in classes if counts[label] < 3)
    if scarce:
        named = ", ".join(f"{label!r} ({counts[label]})" for label in scarce)
        raise DatasetError(
            tsv,
            f"the single-label subset leaves class(es) with fewer than 3 tracks: {named}; top=N keeps the frequent ones",
        )
    if balance:
        single, size = _balanced(single, seed)
        notes.append(f"balanced: every class down-sampled to {size} tracks (seed {seed})")
    return single, notes


def _balanced(
    single: list[tuple[_Track, tuple[str, ...]]], seed: int
) -> tuple[list[tuple[_Track, tuple[str, ...]]], int]:
    """Down-sample every class to the smallest class's size: per class (by name) the tracks
    sorted by id, ``size`` of them drawn with ``default_rng(seed)``; file order kept."""
    by_class: dict[str, list[str]] = {}
    for track, (label,) in single:
        by_class.setdefault(label, []).append(track.track_id)
    size = min(len(ids) for ids in by_class.values())
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    for label in sorted(by_class):
        ids = sorted(by_class[label])
        chosen.update(ids[i] for i in rng.choice(len(ids), size, replace=False))
    return [(track, labels) for track, labels in single if track.track_id in chosen], size


def _tag_word(category: str) -> str:
    """The words for a category's tags in messages: "genre tag", or "tag" for all categories."""
    return "tag" if category == "all" else f"{category} tag"


# ----------------------------------------------------------------------------- items and splits


def _items(
    root: Path, kept: list[tuple[_Track, tuple[str, ...]]], labels: tuple[str, ...], features: str | None
) -> list[Item]:
    """Items with their audio (and feature) paths, their labels in vocabulary order."""
    if not kept:
        return []
    probe = kept[0][0].path
    audio_root = _audio_root(root, probe)
    if audio_root is None and not features:
        audio_root = root  # absent audio: check_files names what is missing
    mel_root = _mel_root(root, probe) if features else None
    order = {label: i for i, label in enumerate(labels)}
    return [
        Item(
            key=track.track_id,
            path=under(audio_root, track.path) if audio_root else None,
            labels=tuple(sorted(track_labels, key=order.__getitem__)),
            features=under(mel_root, _npy(track.path)) if mel_root else None,
            group=track.artist_id,
        )
        for track, track_labels in kept
    ]


def _audio_root(root: Path, probe: str) -> Path | None:
    """``PATH/audio`` when it exists, ``PATH`` when the first track's audio lies there, else None."""
    if (root / "audio").is_dir():
        return root / "audio"
    return root if (root / probe).is_file() else None


def _mel_root(root: Path, probe: str) -> Path:
    """``PATH/melspecs`` when it exists, ``PATH`` when the first track's ``.npy`` lies there."""
    if (root / "melspecs").is_dir():
        return root / "melspecs"
    npy = _npy(probe)
    if not (root / npy).is_file():
        raise DatasetError(root, f"features='melspecs' but no melspecs/ folder and no {npy} here")
    return root


def _npy(audio_path: str) -> str:
    """Where a track's mel-spectrogram lies relative to the melspecs folder: ``14/214.npy``."""
    return os.path.splitext(audio_path)[0] + ".npy"


def _own_splits(items: list[Item], seed: int, tsv: Path) -> dict[str, list[Item]]:
    """80/10/10 by artist."""
    artists = [item.group for item in items]
    if too_few_groups(artists):
        raise DatasetError(tsv, f"{len(set(artists))} artist(s) left; an 80/10/10 split by artist needs at least 3")
    chosen = split_by_group(artists, seed=seed)
    return {split: [items[i] for i in indices] for split, indices in chosen.items()}


def _official_split(root: Path, tsv: Path, split: int | None, known: set[str]) -> dict[str, str] | None:
    """Track id -> split from ``splits/split-N/<stem>-{train,validation,test}.tsv``.

    None when ``split`` is None and split-0 has none of the files; asking for a split whose
    files are absent, a partial set, or a track the metadata lacks is an error.
    """
    folder = root / "splits" / f"split-{split or 0}"
    files = {s: folder / f"{tsv.stem}-{name}.tsv" for s, name in _OFFICIAL_SPLIT_NAMES.items()}
    present = [s for s, path in files.items() if path.is_file()]
    if split is None and not present:
        return None
    if len(present) < len(files):
        missing = ", ".join(path.name for s, path in files.items() if s not in present)
        available = ", ".join(sorted(p.name for p in (root / "splits").glob("split-*"))) or "none"
        raise DatasetError(folder, f"official split files missing: {missing} (splits present: {available})")
    assignment: dict[str, str] = {}
    for s, path in files.items():
        tracks = _read_tracks(path)
        if not tracks:
            raise DatasetError(path, "empty split")
        for track in tracks:
            if track.track_id not in known:
                raise DatasetError(path, f"{track.track_id} is not in {tsv.name}")
            if track.track_id in assignment:
                raise DatasetError(path, f"{track.track_id} is also in the {assignment[track.track_id]} split")
            assignment[track.track_id] = s
    return assignment
