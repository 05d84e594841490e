"""``mtat:PATH`` — MagnaTagATune, multi-label with the top-50 tags.

The folder holds ``annotations_final.csv`` (TAB-separated, fields may be quoted: ``clip_id``,
one 0/1 column per tag (188 in the release), ``mp3_path`` such as
``f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3``) and the
audio, under ``PATH`` or ``PATH/mp3/``.

Splits:

- **official**, when ``train.npy``, ``valid.npy``, ``test.npy``, ``binary.npy`` and
  ``tags.npy`` lie in ``PATH`` or ``PATH/split/`` (the split files most MTAT papers use):
  each split file is an array of strings ``"<index>\\t<mp3_path>"``, ``binary.npy`` the
  ``(n, 50)`` 0/1 label matrix indexed by ``<index>``, ``tags.npy`` its 50 tag names;
- otherwise our own deterministic 80/10/10 split **by song**: the clips of one song (same
  mp3 folder, same file name up to the ``-NN-NN.mp3`` clip-time suffix) stay together.  The
  vocabulary is then the 50 tag columns with the most positives (ties: column order).

Clips with none of the 50 tags are kept as all-zero rows, the usual practice (a note says how
many).  Missing mp3 files are not checked at open time: see :meth:`Dataset.check_files`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneseek.data.datasets import (
    SPLITS,
    Dataset,
    Item,
    at_line,
    by_frequency,
    load_npy,
    own_split_source,
    read_tsv,
    split_by_group,
    too_few_groups,
    under,
)
from tuneseek.errors import DatasetError

__all__ = ["read_mtat", "ANNOTATIONS", "TOP_TAGS", "SPLIT_FILES"]

ANNOTATIONS = "annotations_final.csv"
TOP_TAGS = 50
SPLIT_FILES = {name: f"{name}.npy" for name in (*SPLITS, "binary", "tags")}
_CLIP_SUFFIX = re.compile(r"-\d+-\d+\.mp3$", re.IGNORECASE)
_FLAGS = frozenset("01")


@dataclass(frozen=True)
class _Annotations:
    """``annotations_final.csv``: per clip its id and mp3 path, and the (clips, tags) 0/1 matrix."""

    path: Path
    clip_ids: list[str]
    mp3_paths: list[str]
    tags: list[str]
    matrix: np.ndarray  # uint8


def read_mtat(root: Path, *, seed: int = 0) -> Dataset:
    """Read MagnaTagATune (see the module docstring); ``seed`` picks our own split, used only
    when the official split files are absent."""
    annotations = _read_annotations(root / ANNOTATIONS)
    audio_root = root / "mp3" if (root / "mp3").is_dir() else root
    split_files = _find_split_files(root)
    if split_files:
        labels, splits = _official_splits(annotations, split_files, audio_root)
        source = "official"
    else:
        labels, splits = _own_splits(annotations, audio_root, seed)
        source = own_split_source(seed)
    unlabelled = sum(1 for items in splits.values() for item in items if not item.labels)
    note = f"{unlabelled} clip(s) with none of the {len(labels)} tags kept as all-zero rows (the usual practice)"
    return Dataset(
        name="mtat",
        root=root,
        task="multi-label",
        labels=labels,
        splits=splits,
        split_source=source,
        notes=(note,) if unlabelled else (),
    )


# ----------------------------------------------------------------------------- annotations


def _read_annotations(path: Path) -> _Annotations:
    """Parse and check ``annotations_final.csv``: header, field count, 0/1 flags, unique ids."""
    rows = read_tsv(path)
    _, header = next(rows, (1, []))
    if len(header) < 3 or header[0] != "clip_id" or header[-1] != "mp3_path":
        raise DatasetError(at_line(path, 1), "the header must be clip_id, the tag columns, mp3_path")
    tags = header[1:-1]
    clip_ids: list[str] = []
    mp3_paths: list[str] = []
    flags: list[str] = []
    line_of: dict[str, int] = {}
    for line, row in rows:
        if len(row) != len(header):
            raise DatasetError(at_line(path, line), f"{len(row)} fields where the header has {len(header)}")
        values = row[1:-1]
        if not _FLAGS.issuperset(values):
            column = next(j for j, value in enumerate(values) if value not in _FLAGS)
            raise DatasetError(at_line(path, line), f"tag {tags[column]!r} is {values[column]!r}, not 0 or 1")
        if row[0] in line_of:
            raise DatasetError(at_line(path, line), f"clip_id {row[0]} already on line {line_of[row[0]]}")
        line_of[row[0]] = line
        clip_ids.append(row[0])
        mp3_paths.append(row[-1])
        flags.append("".join(values))
    if not clip_ids:
        raise DatasetError(path, "no clips")
    bits = np.frombuffer("".join(flags).encode("ascii"), dtype=np.uint8) - ord("0")
    return _Annotations(path, clip_ids, mp3_paths, tags, bits.reshape(len(clip_ids), len(tags)))


def song_of(mp3_path: str) -> str:
    """The song a clip comes from: its path without the ``-NN-NN.mp3`` clip-time suffix
    (without the extension when there is no such suffix)."""
    song, n = _CLIP_SUFFIX.subn("", mp3_path)
    return song if n else str(Path(mp3_path).with_suffix(""))


def _vocabulary(names: Sequence[str], matrix: np.ndarray) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The label tuple (most positives first, ties by name) and each row's labels in that order."""
    counts = Counter(dict(zip(names, matrix.sum(axis=0).tolist())))
    labels = by_frequency(counts)
    column = {name: j for j, name in enumerate(names)}
    ordered = matrix[:, [column[label] for label in labels]]
    return labels, [tuple(labels[j] for j in np.flatnonzero(row)) for row in ordered]


# ----------------------------------------------------------------------------- our own split


def _own_splits(
    annotations: _Annotations, audio_root: Path, seed: int
) -> tuple[tuple[str, ...], dict[str, list[Item]]]:
    """The top-50 tag columns and an 80/10/10 split by song."""
    top = np.argsort(-annotations.matrix.sum(axis=0), kind="stable")[:TOP_TAGS]
    labels, row_labels = _vocabulary([annotations.tags[j] for j in top], annotations.matrix[:, top])
    songs = [song_of(p) for p in annotations.mp3_paths]
    if too_few_groups(songs):
        raise DatasetError(annotations.path, f"{len(set(songs))} song(s); an 80/10/10 split by song needs at least 3")
    items = [
        Item(key=clip_id, path=under(audio_root, mp3_path), labels=row, group=song)
        for clip_id, mp3_path, row, song in zip(annotations.clip_ids, annotations.mp3_paths, row_labels, songs)
    ]
    chosen = split_by_group(songs, seed=seed)
    return labels, {split: [items[i] for i in indices] for split, indices in chosen.items()}


# ----------------------------------------------------------------------------- the official split


def _find_split_files(root: Path) -> dict[str, Path] | None:
    """The five split files, from the first of ``PATH``, ``PATH/split`` holding any of them;
    None when neither does.  A partial set is an error, not a silent fallback."""
    for folder in (root, root / "split"):
        present = {name: folder / file for name, file in SPLIT_FILES.items() if (folder / file).is_file()}
        if len(present) == len(SPLIT_FILES):
            return present
        if present:
            missing = ", ".join(file for name, file in SPLIT_FILES.items() if name not in present)
            raise DatasetError(folder, f"split files incomplete: {missing} missing")
    return None


def _official_splits(
    annotations: _Annotations, files: dict[str, Path], audio_root: Path
) -> tuple[tuple[str, ...], dict[str, list[Item]]]:
    """Items of ``train/valid/test.npy`` with their labels from ``binary.npy``/``tags.npy``."""
    tags, binary = _label_matrix(files["tags"], files["binary"])
    row_of = {mp3_path: i for i, mp3_path in enumerate(annotations.mp3_paths)}
    chosen = {split: _read_split_file(files[split], row_of, len(binary), annotations.path) for split in SPLITS}
    used = sorted({index for entries in chosen.values() for index, _ in entries})
    labels, used_labels = _vocabulary(tags, binary[used])
    labels_of = dict(zip(used, used_labels))
    splits = {
        split: [
            Item(
                key=annotations.clip_ids[row],
                path=under(audio_root, annotations.mp3_paths[row]),
                labels=labels_of[index],
                group=song_of(annotations.mp3_paths[row]),
            )
            for index, row in entries
        ]
        for split, entries in chosen.items()
    }
    return labels, splits


def _label_matrix(tags_path: Path, binary_path: Path) -> tuple[list[str], np.ndarray]:
    """``tags.npy`` (1-D strings) and ``binary.npy`` (clips x tags, 0/1), checked together."""
    tags = load_npy(tags_path)
    if tags.ndim != 1 or tags.dtype.kind != "U" or len(tags) == 0:
        raise DatasetError(tags_path, f"expected a 1-D array of tag names, found {tags.dtype} {tags.shape}")
    binary = load_npy(binary_path)
    if binary.ndim != 2 or binary.shape[1] != len(tags) or binary.dtype.kind not in "biuf":
        raise DatasetError(
            binary_path,
            f"expected a 0/1 matrix of (clips, {len(tags)}) for tags.npy, found {binary.dtype} {binary.shape}",
        )
    if not np.isin(binary, (0, 1)).all():
        raise DatasetError(binary_path, "values other than 0 and 1")
    return tags.tolist(), binary.astype(np.uint8)


def _read_split_file(path: Path, row_of: dict[str, int], n_indices: int, annotations: Path) -> list[tuple[int, int]]:
    """``(index into binary.npy, annotations row)`` for each ``"<index>\\t<mp3_path>"`` entry."""
    entries = load_npy(path)
    if entries.ndim != 1 or entries.dtype.kind != "U":
        raise DatasetError(path, f"expected a 1-D array of strings, found {entries.dtype} {entries.shape}")
    if len(entries) == 0:
        raise DatasetError(path, "empty split")
    out = []
    for k, entry in enumerate(entries.tolist()):
        index, tab, mp3_path = entry.partition("\t")
        if not tab or not index.isdigit():
            raise DatasetError(f"{path}[{k}]", f"{entry!r} is not '<index>\\t<mp3 path>'")
        if int(index) >= n_indices:
            raise DatasetError(f"{path}[{k}]", f"index {index} beyond the {n_indices} rows of binary.npy")
        if mp3_path not in row_of:
            raise DatasetError(f"{path}[{k}]", f"{mp3_path} is not in {annotations}")
        out.append((int(index), row_of[mp3_path]))
    return out
