"""Text–audio pairs for the joint text–audio model: from caption files, or from tag datasets.

A caption file is JSON lines (``.jsonl``) or CSV with a header (``.csv``), one caption per row::

    {"audio": "clips/0001.mp3", "caption": "calm solo piano", "start": 30, "end": 40, "split": "test"}

    audio,caption,start,end,split
    clips/0001.mp3,calm solo piano,30,40,test

``audio`` is relative to the caption file's folder (or absolute); ``start``/``end`` (seconds,
optional) cut an excerpt, else the whole file is meant; ``split`` (optional: train, valid or
test) places the pair, else the split is our own deterministic 80/10/10 by audio file. Rows that
name the same audio and span become one pair with several captions.

A tag dataset (``mtat:``, ``jamendo:``, ``folder:`` with labels, see
:mod:`tuneseek.data.datasets`) gives one pair per item whose text is made of its tags; a
library (``library:DIR``) one pair per track, its text made of its title and artist, the
folders that hold it and its stored musicnn tags (:func:`pairs_from_library`).

A malformed row is a :class:`~tuneseek.errors.DatasetError` naming the file and line. A row
whose audio file is missing is left out and counted in the notes (the first few named): one
missing file must not stop a training run; none left is an error.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneseek.data.datasets import SPLITS, Dataset, at_line, open_dataset, own_split_source, split_by_group
from tuneseek.errors import DatasetError

__all__ = [
    "Pair",
    "Pairs",
    "open_pairs",
    "read_captions",
    "pairs_from_dataset",
    "pairs_from_library",
    "CAPTION_SUFFIXES",
]

CAPTION_SUFFIXES = (".jsonl", ".csv")
#: Library tracks: stored musicnn tags at least this probable become words of the track's text...
LIBRARY_TAG_PROB = 0.3
#: ...at most this many per vocabulary.
LIBRARY_TAGS_PER_VOCABULARY = 5
_NAMED_MISSING = 3


@dataclass(frozen=True)
class Pair:
    """One piece of audio and the words that describe it."""

    key: str
    path: Path
    start: float | None  # seconds; None: from the beginning
    end: float | None  # seconds; None: to the end
    captions: tuple[str, ...]  # free text
    tags: tuple[str, ...]  # single words or short phrases
    group: str  # what must not straddle splits (the audio file)


@dataclass
class Pairs:
    """Pairs in ``train``/``valid``/``test`` splits, and facts a person should know about how they were read."""

    name: str
    root: Path
    splits: dict[str, list[Pair]]
    split_source: str
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        counts = ", ".join(f"{s} {len(self.splits[s])}" for s in SPLITS)
        lines = [f"{self.name} pairs at {self.root}", f"  split    {self.split_source}: {counts} pairs"]
        lines += [f"  note     {n}" for n in self.notes]
        return "\n".join(lines)

    def summary(self) -> dict:
        """A JSON-able account of the pairs, for a run's summary: where, how split, how many, the notes."""
        return {
            "name": self.name,
            "root": str(self.root),
            "split_source": self.split_source,
            "splits": {s: len(self.splits[s]) for s in SPLITS},
            "notes": list(self.notes),
        }


def open_pairs(source: str | Path, *, seed: int = 0) -> Pairs:
    """Pairs from a caption file (``.jsonl``/``.csv``), a library (``library:DIR``) or a tag dataset
    spec ``KIND:PATH``."""
    text = str(source)
    if Path(text).expanduser().suffix.lower() in CAPTION_SUFFIXES:
        return read_captions(Path(text).expanduser(), seed=seed)
    kind, sep, path = text.partition(":")
    if kind == "library" and sep and path:
        return pairs_from_library(Path(path).expanduser(), seed=seed)
    return pairs_from_dataset(open_dataset(text, seed=seed))


def pairs_from_library(root: Path, *, seed: int = 0, min_prob: float = LIBRARY_TAG_PROB) -> Pairs:
    """One pair per track of a tuneseek library, its text made of what the library knows of it.

    Captions: "TITLE by ARTIST" when the file's tags give them. Tags: the names of the two
    folders holding the file (collections are filed by genre, artist, album: "Jazz/Miles Davis/")
    and the musicnn tags stored for the track with a probability of at least ``min_prob`` (at
    most :data:`LIBRARY_TAGS_PER_VOCABULARY` per vocabulary). A track with none of these is left
    out. The split is our own, by track, deterministic for a seed.
    """
    from tuneseek.store.catalog import CATALOG_NAME, Catalog

    root = Path(os.path.abspath(root))
    if not (root / CATALOG_NAME).is_file():
        raise DatasetError(root, f"not a tuneseek library (no {CATALOG_NAME})")
    catalog = Catalog(root, create=False)
    try:
        labels = catalog.vocabularies()
        pairs, bare = [], 0
        for track in catalog.tracks():
            captions = (f"{track.title} by {track.artist}" if track.artist else track.title,) if track.title else ()
            folders = [_words(p) for p in Path(track.path).parent.parts[-2:]]
            tags = [f for f in folders if f]
            for vocab, probs in sorted(catalog.tags(track.id).items()):
                order = np.argsort(-probs)[:LIBRARY_TAGS_PER_VOCABULARY]
                tags += [labels[vocab][i] for i in order if probs[i] >= min_prob and vocab in labels]
            tags = list(dict.fromkeys(tags))
            if not captions and not tags:
                bare += 1
                continue
            pairs.append(Pair(str(track.id), Path(track.path), None, None, captions, tuple(tags), track.path))
    finally:
        catalog.close()
    if len(pairs) < 3:
        raise DatasetError(root, f"{len(pairs)} track(s) with any text (titles, folders, tags): at least 3 are needed")
    chosen = split_by_group([p.group for p in pairs], seed=seed)
    notes = (f"{bare} track(s) with no title, folder name or tag above {min_prob:g} left out",) if bare else ()
    notes += (
        f"text: titles and artists from the files' tags, folder names, musicnn tags with probability "
        f">= {min_prob:g} ({', '.join(sorted(labels)) or 'none stored'})",
    )
    return Pairs("library", root, {s: [pairs[i] for i in chosen[s]] for s in SPLITS}, own_split_source(seed), notes)


def _words(folder: str) -> str:
    """A folder name as words: separators to spaces, a leading track or disc number dropped."""
    text = re.sub(r"[_.]+", " ", folder)
    text = re.sub(r"^\d+\s*[-. ]\s*", "", text).strip()
    return "" if not any(ch.isalpha() for ch in text) else " ".join(text.split())


def pairs_from_dataset(ds: Dataset) -> Pairs:
    """One pair per item of a labelled dataset, its tags as its text."""
    if ds.task == "unlabelled":
        raise DatasetError(ds.root, "has no labels: text–audio pairs need captions or tags")
    if ds.features is not None:
        raise DatasetError(ds.root, "holds precomputed mel-spectrograms; the text–audio model reads audio")
    splits = {
        split: [Pair(it.key, it.path, None, None, (), it.labels, it.group or it.key) for it in items if it.labels]
        for split, items in ds.splits.items()
    }
    empty = [s for s in SPLITS if not splits[s]]
    if empty:
        raise DatasetError(
            ds.root, f"no item of the {', '.join(empty)} split(s) has a tag: no text to pair its audio with"
        )
    unlabelled = sum(len(items) for items in ds.splits.values()) - sum(len(p) for p in splits.values())
    notes = ds.notes + (
        (f"as text–audio pairs, the {unlabelled} item(s) without tags are left out: no text to pair them with",)
        if unlabelled
        else ()
    )
    return Pairs(ds.name, ds.root, splits, ds.split_source, notes)


def read_captions(path: Path, *, seed: int = 0) -> Pairs:
    """Read a caption file (see the module docstring)."""
    path = Path(os.path.abspath(path))
    if not path.is_file():
        raise DatasetError(path, "no such file" if not path.exists() else "not a file")
    rows = list(_rows(path))
    if not rows:
        raise DatasetError(path, "no caption rows")
    with_split = [line for line, *_, split in rows if split]
    without = [line for line, *_, split in rows if not split]
    if with_split and without:
        raise DatasetError(
            path, f"line {with_split[0]} gives a split and line {without[0]} does not: give it on every row or on none"
        )
    merged: dict[tuple[str, float | None, float | None], dict] = {}
    missing: list[str] = []
    for line, audio, caption, start, end, split in rows:
        target = Path(os.path.normpath(audio if os.path.isabs(audio) else path.parent / audio))
        if not target.is_file():
            missing.append(f"{audio} (line {line})")
            continue
        entry = merged.setdefault((str(target), start, end), {"captions": [], "split": split, "line": line})
        if split != entry["split"]:
            raise DatasetError(
                at_line(path, line),
                f"{audio} is in split {entry['split']!r} on line {entry['line']} and {split!r} here",
            )
        entry["captions"].append(caption)
    notes = []
    if missing:
        named = ", ".join(missing[:_NAMED_MISSING]) + (", ..." if len(missing) > _NAMED_MISSING else "")
        notes.append(f"{len(missing)} row(s) left out, their audio is missing: {named}")
    if not merged:
        raise DatasetError(path, f"none of the {len(rows)} rows names an audio file that exists")
    pairs, given = [], []
    for (target, start, end), entry in merged.items():
        key = f"{os.path.relpath(target, path.parent)}" + (f"@{start:g}-{end:g}" if start is not None else "")
        pairs.append(Pair(key, Path(target), start, end, tuple(dict.fromkeys(entry["captions"])), (), target))
        given.append(entry["split"])
    if with_split:
        splits = {s: [p for p, g in zip(pairs, given) if g == s] for s in SPLITS}
        source = "given in the file"
    else:
        chosen = split_by_group([p.group for p in pairs], seed=seed)
        splits = {s: [pairs[i] for i in chosen[s]] for s in SPLITS}
        source = own_split_source(seed)
    empty = [s for s in SPLITS if not splits[s]]
    if empty:
        raise DatasetError(path, f"the {', '.join(empty)} split(s) are empty ({len(pairs)} pairs in all)")
    return Pairs(path.name, path.parent, splits, source, tuple(notes))


def _rows(path: Path):
    """``(line, audio, caption, start, end, split)`` per row, checked."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: a spreadsheet's byte-order mark
            if path.suffix.lower() == ".jsonl":
                for n, text in enumerate(f, 1):
                    if not text.strip():
                        continue
                    try:
                        row = json.loads(text)
                    except json.JSONDecodeError as e:
                        raise DatasetError(at_line(path, n), f"not valid JSON: {e.msg}") from None
                    if not isinstance(row, dict):
                        raise DatasetError(at_line(path, n), "expected a JSON object")
                    yield _checked(path, n, row)
            else:
                reader = csv.DictReader(f)
                if not reader.fieldnames or not {"audio", "caption"} <= set(reader.fieldnames):
                    raise DatasetError(path, "the CSV header must name at least the columns audio and caption")
                for row in reader:
                    yield _checked(path, reader.line_num, row)
    except UnicodeDecodeError as e:
        raise DatasetError(path, f"not UTF-8 text (byte {e.start})") from None
    except csv.Error as e:
        raise DatasetError(path, f"not valid CSV: {e}") from None
    except OSError as e:
        raise DatasetError(path, f"cannot read: {e.strerror or e}") from None


def _checked(path: Path, line: int, row: dict):
    where = at_line(path, line)
    audio, caption = row.get("audio"), row.get("caption")
    if not isinstance(audio, str) or not audio.strip():
        raise DatasetError(where, "no audio path")
    if not isinstance(caption, str) or not caption.strip():
        raise DatasetError(where, "no caption")
    start, end = (_seconds(where, name, row.get(name)) for name in ("start", "end"))
    if (start is None) != (end is None):
        raise DatasetError(where, "give both start and end, or neither")
    if start is not None and not 0 <= start < end:
        raise DatasetError(where, f"start {start:g} s must be at least 0 and before end {end:g} s")
    split = row.get("split") or None
    if split is not None and split not in SPLITS:
        raise DatasetError(where, f"split {split!r} is not one of {', '.join(SPLITS)}")
    return line, audio.strip(), " ".join(caption.split()), start, end, split


def _seconds(where: str, name: str, value) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise DatasetError(where, f"{name} {value!r} is not a number of seconds")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise DatasetError(where, f"{name} {value!r} is not a number of seconds") from None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise DatasetError(where, f"{name} {value!r} is not a number of seconds")
    return seconds
