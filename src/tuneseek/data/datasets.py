"""Training datasets: the common types, the shared reading helpers and :func:`open_dataset`.

A dataset is named by a spec ``"KIND:PATH"``:

- ``folder:PATH`` — one sub-folder per label (GTZAN style), or plain audio for unlabelled,
  self-supervised training (:mod:`tuneseek.data.folder`);
- ``mtat:PATH`` — MagnaTagATune with its top-50 tags (:mod:`tuneseek.data.mtat`);
- ``jamendo:PATH`` — MTG-Jamendo auto-tagging metadata, audio or precomputed
  mel-spectrograms (:mod:`tuneseek.data.jamendo`);
- ``csv:FILE`` — a table of audio files and their labels (several label columns may be
  present: ``label=COLUMN`` picks one), with the set's own split when it has a ``split``
  column (:mod:`tuneseek.data.table`);
- ``queries:PATH`` — the origin/sample layout of identification benchmarks, as written by
  ``tuneseek make-queries``: the origin tracks, unlabelled, with the query excerpts kept for
  validation (:mod:`tuneseek.data.queries`).

Every reader returns a :class:`Dataset`: items in ``train``/``valid``/``test`` splits, the label
vocabulary in model-output order and the targets a loss needs.  The official split files are
used where a dataset ships them; otherwise the split is our own, deterministic (sorted, then
shuffled with ``numpy.random.default_rng(seed)``) and made by *group* (song, artist, file) so
that near-duplicates never sit on both sides of a split.

Label order: most frequent first, ties by name, for MTAT and MTG-Jamendo (the usual way a
tag vocabulary is listed, and what a top-N cut keeps); alphabetical for folders (the class
names are the folder names and have no frequency worth ranking by).

Opening is fast and touches only the metadata files: no per-item file-system check
(25 000 rows read in well under a second).  :meth:`Dataset.check_files` lists the audio and
feature files that are missing, for a trainer to call before its first epoch.

Malformed input is a :class:`~tuneseek.errors.DatasetError` that names the file, the line
(or array entry) and the reason.
"""

from __future__ import annotations

import csv
import importlib
import inspect
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tuneseek.errors import DatasetError

if TYPE_CHECKING:  # only for the annotation: querysets imports the audio and degradation code
    from tuneseek.data.querysets import QuerySet

__all__ = [
    "SPLITS",
    "TASKS",
    "Item",
    "PrecomputedMel",
    "Dataset",
    "open_dataset",
]

SPLITS = ("train", "valid", "test")
TASKS = ("multi-label", "single-label", "unlabelled")
HELD_OUT_FRACTION = 0.1  # of the groups, for each of valid and test: an 80/10/10 split

# KIND -> "module:function"; imported on use, since the readers import this module.
_READERS = {
    "folder": "tuneseek.data.folder:read_folder",
    "mtat": "tuneseek.data.mtat:read_mtat",
    "jamendo": "tuneseek.data.jamendo:read_jamendo",
    "queries": "tuneseek.data.queries:read_queries",
    "csv": "tuneseek.data.table:read_table",
}
# the kinds whose PATH is a file (the table), not a folder
_FILE_KINDS = frozenset({"csv"})


# ----------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Item:
    """One example of a dataset.

    ``key`` is its stable id (MTAT clip_id, MTG-Jamendo TRACK_ID, a folder file's relative
    path).  ``path`` is the audio file (None when only precomputed features exist),
    ``features`` a precomputed mel-spectrogram ``.npy``.  ``group`` is what must not straddle
    splits and what "the same track" means for triplets: the artist (MTG-Jamendo), the song
    (MTAT: mp3 folder + song part of the file name), the file or the sub-folder of a label
    folder that holds it (folder).
    """

    key: str
    path: Path | None
    labels: tuple[str, ...]
    features: Path | None = None
    group: str = ""


@dataclass(frozen=True)
class PrecomputedMel:
    """How a dataset's precomputed mel-spectrograms were made, so that a model trained on them
    can be fed identical features computed from audio (``hop / sample_rate`` s per frame)."""

    sample_rate: int
    n_fft: int
    hop: int
    n_mels: int

    def to_dict(self) -> dict:
        """The four parameters, for a model config or a JSON summary."""
        return asdict(self)


@dataclass
class Dataset:
    """Items in ``train``/``valid``/``test`` splits, with their label vocabulary.

    ``task`` is ``"multi-label"`` (tags), ``"single-label"`` (one class per item) or
    ``"unlabelled"`` (``labels == ()``, for self-supervised training).  ``labels`` is the
    vocabulary in model-output order.  ``features`` is set when the items carry precomputed
    mel-spectrograms.  ``split_source`` says where the split came from: ``"official"`` or
    ``"deterministic 80/10/10 (seed N)"``.  ``notes`` are facts a person should know about
    how the data was read (items left out, rows kept without tags...).  ``queries`` is set by
    the ``queries:`` reader only: per split, the query excerpts of the origin/sample layout
    (positives with their label and true start/end in the origin, and negatives) whose
    origins are that split's items, for a matcher to validate on; None elsewhere.

    Construction checks that every split exists and is non-empty (else
    :class:`~tuneseek.errors.DatasetError`) and that the items agree with the task and
    vocabulary (else ``ValueError``: a reader's bug, not the data's).
    """

    name: str
    root: Path
    task: str
    labels: tuple[str, ...]
    splits: dict[str, list[Item]]
    features: PrecomputedMel | None = None
    split_source: str = ""
    notes: tuple[str, ...] = ()
    queries: dict[str, QuerySet] | None = None

    def __post_init__(self) -> None:
        for split in SPLITS:
            if not self.splits.get(split):
                raise DatasetError(self.root, f"the {split} split is empty")
        if set(self.splits) != set(SPLITS):
            raise ValueError(f"splits must be {SPLITS}, not {tuple(self.splits)}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {self.task!r}")
        if (self.task == "unlabelled") != (not self.labels):
            raise ValueError(f"a {self.task} dataset with {len(self.labels)} labels")
        self._check_item_labels()

    def _check_item_labels(self) -> None:
        """Every item's labels are in the vocabulary; exactly one each when single-label."""
        known = set(self.labels)
        for split, items in self.splits.items():
            for item in items:
                if not known.issuperset(item.labels):
                    raise ValueError(f"{split} item {item.key}: labels {item.labels} not all in the vocabulary")
                if self.task == "single-label" and len(item.labels) != 1:
                    raise ValueError(f"{split} item {item.key}: {len(item.labels)} labels in a single-label dataset")

    def targets(self, split: str) -> np.ndarray:
        """What a loss compares the model's output with, row i for ``splits[split][i]``.

        Multi-label: float32 ``(n, len(labels))`` of 0/1.  Single-label: int64 ``(n,)`` class
        indices into ``labels``.  Unlabelled data has none (:class:`DatasetError`).
        """
        if self.task == "unlabelled":
            raise DatasetError(self.root, "an unlabelled dataset has no targets")
        items = self.splits[split]
        index = {label: i for i, label in enumerate(self.labels)}
        if self.task == "single-label":
            return np.array([index[item.labels[0]] for item in items], dtype=np.int64)
        out = np.zeros((len(items), len(self.labels)), dtype=np.float32)
        for row, item in enumerate(items):
            out[row, [index[label] for label in item.labels]] = 1.0
        return out

    def summary(self) -> dict:
        """A JSON-able account of the dataset, for a checkpoint's config and ``--json`` output:
        per split the item and group counts, the per-label counts (vocabulary order) and, for
        multi-label data, how many items carry no label at all; with ``queries``, also their
        sample and negative-sample counts per split."""
        splits = {}
        for split in SPLITS:
            items = self.splits[split]
            counts = Counter(label for item in items for label in item.labels)
            entry = {
                "items": len(items),
                "groups": len({item.group for item in items}),
                "label_counts": {label: counts[label] for label in self.labels},
            }
            if self.task == "multi-label":
                entry["items_without_labels"] = sum(1 for item in items if not item.labels)
            if self.queries is not None:
                entry["samples"] = len(self.queries[split].samples)
                entry["negative_samples"] = len(self.queries[split].negatives)
            splits[split] = entry
        return {
            "name": self.name,
            "root": str(self.root),
            "task": self.task,
            "n_labels": len(self.labels),
            "labels": list(self.labels),
            "split_source": self.split_source,
            "features": self.features.to_dict() if self.features else None,
            "splits": splits,
            "notes": list(self.notes),
        }

    def describe(self) -> str:
        """A few lines for the terminal: what, how split, how big, the top labels, the query
        samples, the notes."""
        sizes = ", ".join(f"{split} {len(self.splits[split]):,}" for split in SPLITS)
        lines = [
            f"{self.name} dataset at {self.root}: {self.task}, {len(self.labels)} labels",
            f"  split    {self.split_source or 'given'}: {sizes} items",
        ]
        if self.labels:
            counts = Counter(label for items in self.splits.values() for item in items for label in item.labels)
            shown = ", ".join(f"{label} ({counts[label]:,})" for label in self.labels[:8])
            more = f", ... {len(self.labels) - 8} more" if len(self.labels) > 8 else ""
            lines.append(f"  labels   {shown}{more}")
        if self.features:
            f = self.features
            lines.append(
                f"  features precomputed mel-spectrograms: {f.n_mels} mels, {f.sample_rate} Hz, "
                f"n_fft {f.n_fft}, hop {f.hop} ({f.sample_rate / f.hop:g} frames/s)"
            )
        if self.queries is not None:
            counts = ", ".join(
                f"{split} {len(self.queries[split].samples):,} ({len(self.queries[split].negatives):,} negative)"
                for split in SPLITS
            )
            lines.append(f"  queries  {counts} samples")
        lines.extend(f"  note     {note}" for note in self.notes)
        return "\n".join(lines)

    def check_files(self) -> list[Path]:
        """The audio and feature files named by the items that do not exist, in split order.

        Opening never checks them (it must stay fast on tens of thousands of items); a
        trainer calls this before its first epoch.
        """
        return [
            path
            for split in SPLITS
            for item in self.splits[split]
            for path in (item.path, item.features)
            if path is not None and not os.path.isfile(path)
        ]


# ----------------------------------------------------------------------------- opening


def open_dataset(spec: str, **options) -> Dataset:
    """Read the dataset named by ``spec``, ``"KIND:PATH"`` with KIND in folder, mtat, jamendo, queries, csv.

    PATH may start with ``~``.  ``options`` go to the reader (see each reader's docstring;
    all take ``seed``).  An unknown kind or option and a missing folder (or table, for csv) are a
    :class:`~tuneseek.errors.DatasetError`, as is anything malformed in the data.
    """
    kind, sep, raw_path = spec.partition(":")
    if not sep or kind not in _READERS or not raw_path:
        raise DatasetError(spec, f"expected KIND:PATH with KIND one of {', '.join(_READERS)}")
    root = Path(os.path.abspath(Path(raw_path).expanduser()))
    if kind in _FILE_KINDS:
        if not root.is_file():
            raise DatasetError(root, "a folder, not a table file" if root.is_dir() else "no such file")
    elif not root.is_dir():
        raise DatasetError(root, "not a folder" if root.exists() else "no such folder")
    reader = _reader(kind)
    accepted = [name for name in inspect.signature(reader).parameters if name != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(spec, f"unknown option(s) {', '.join(unknown)}; {kind} takes {', '.join(accepted)}")
    return reader(root, **options)


def _reader(kind: str) -> Callable[..., Dataset]:
    """The reader function of a dataset kind, imported on first use."""
    module, function = _READERS[kind].split(":")
    return getattr(importlib.import_module(module), function)


# ----------------------------------------------------------------------------- helpers for the readers


def at_line(path: Path, line: int) -> str:
    """Where an error is, for :class:`DatasetError`: ``"FILE, line N"``."""
    return f"{path}, line {line}"


def read_tsv(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The rows of a TAB-separated UTF-8 file with their line numbers (blank lines skipped).

    Quoted fields are unquoted (MagnaTagATune quotes every field).  A file that cannot be
    read or decoded is a :class:`DatasetError` naming it (and the line, when known).
    """
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t")
            for row in reader:
                if row:
                    yield reader.line_num, row
    except FileNotFoundError as e:
        raise DatasetError(path, "no such file") from e
    except OSError as e:
        raise DatasetError(path, f"cannot read: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise DatasetError(path, f"not UTF-8 text (byte {e.start})") from e
    except csv.Error as e:
        raise DatasetError(at_line(path, reader.line_num), f"not valid TSV: {e}") from e


def load_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array, loaded without pickle; failures are a :class:`DatasetError`."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError as e:
        raise DatasetError(path, "no such file") from e
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DatasetError(path, "holds Python objects; expected a plain numpy array") from e
        raise DatasetError(path, f"not a readable .npy file: {e}") from e
    except OSError as e:
        raise DatasetError(path, f"not a readable .npy file: {e}") from e


def under(root: Path, relative: str) -> Path:
    """``root / relative``, built from one string: three times faster than the ``/``
    operator, which counts when a reader makes tens of thousands of item paths."""
    return Path(f"{root}{os.sep}{relative}")


def by_frequency(counts: Counter[str]) -> tuple[str, ...]:
    """Labels most frequent first, ties by name: the vocabulary order of tag datasets."""
    return tuple(sorted(counts, key=lambda label: (-counts[label], label)))


def own_split_source(seed: int) -> str:
    """``split_source`` of a split made by :func:`split_by_group`."""
    return f"deterministic 80/10/10 (seed {seed})"


def split_by_group(groups: Sequence[str], *, seed: int, strata: Sequence[str] | None = None) -> dict[str, list[int]]:
    """A deterministic 80/10/10 split by group: the item indices of each split, ascending.

    The distinct groups (of each stratum, when ``strata`` gives one per item; a group's
    stratum is its first item's) are sorted, then shuffled with
    ``numpy.random.default_rng(seed)``, so the split depends on the names and the seed only,
    never on file-system listing order.  Valid and test each get ``round(10 %)`` of the
    groups, at least one when there are 3 or more; fewer than 3 groups all go to train, and
    the empty splits are then caught by :class:`Dataset` (callers check first, to say why).
    """
    rng = np.random.default_rng(seed)
    members: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for group, indices in members.items():
        by_stratum[strata[indices[0]] if strata is not None else ""].append(group)
    out: dict[str, list[int]] = {split: [] for split in SPLITS}
    for stratum in sorted(by_stratum):
        names = sorted(by_stratum[stratum])
        shuffled = [names[i] for i in rng.permutation(len(names))]
        n_held = max(1, round(len(names) * HELD_OUT_FRACTION)) if len(names) >= 3 else 0
        for k, group in enumerate(shuffled):
            split = "valid" if k < n_held else "test" if k < 2 * n_held else "train"
            out[split].extend(members[group])
    return {split: sorted(indices) for split, indices in out.items()}


def short_of_groups(labels: Sequence[str], groups: Sequence[str]) -> str:
    """The labels (one per item) whose items fall in fewer than the 3 groups an 80/10/10 split needs, each with its
    count of groups, as a reader names them (``"'jazz' (2), 'pop' (1)"``); empty when every label has enough."""
    counts = Counter(label for label, _ in set(zip(labels, groups)))
    return ", ".join(f"{label!r} ({counts[label]})" for label in sorted(counts) if counts[label] < 3)


def too_few_groups(groups: Iterable[str]) -> bool:
    """True when there are fewer than the 3 groups an 80/10/10 split needs."""
    return len(set(groups)) < 3
