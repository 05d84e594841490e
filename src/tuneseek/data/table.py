"""``csv:FILE`` — audio files listed in a table with their labels, and optionally their own split.

Many labelled sets come as a metadata table beside the audio rather than as one folder per
label, often with several label columns (a style and a lead instrument, say) and the split the
set's authors fixed. One row per audio file, a header row naming the columns (comma-separated;
TAB-separated when the file name ends in ``.tsv``)::

    path,family,lead,split,group
    audio/rock-g0-s0.flac,rock,organ,train,rock-groove0
    audio/waltz-g5-s1.flac,waltz,flute,test,waltz-groove5

- ``path`` (required): the audio file, relative to the table's folder (or absolute);
- the label column: ``label`` by default, another with ``--data-option label=family``. One
  label per row: a single-label task; the vocabulary is the column's values, alphabetically;
- ``split`` (optional): ``train``, ``valid`` (also ``validation``, ``val``, ``dev``) or ``test``:
  the set's own split, used as it is. Without the column the split is ours, 80/10/10 by group,
  stratified by label, deterministic for ``--data-option seed=N``, as for ``folder:``;
- ``group`` (optional): what must never straddle splits and what "the same track" means for
  triplets (a song cut into excerpts, an album, a groove); each file its own group without it.

Opening reads the table only (no file-system check per row, as the other readers); a missing
audio file is reported by :meth:`~tuneseek.data.datasets.Dataset.check_files` before training.
A malformed table is a :class:`~tuneseek.errors.DatasetError` naming the file, the line and why.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from tuneseek.data.datasets import (
    SPLITS,
    Dataset,
    Item,
    at_line,
    own_split_source,
    short_of_groups,
    split_by_group,
    under,
)
from tuneseek.errors import DatasetError

__all__ = ["read_table"]

_SPLIT_NAMES = {
    "train": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "test": "test",
}


def read_table(root: Path, *, label: str = "label", seed: int = 0) -> Dataset:
    """Read the ``csv:`` table at ``root`` (see the module docstring): ``label`` names the label column, ``seed``
    picks the split where the table has no ``split`` column."""
    table = root
    label = str(label)  # a column named by digits comes through --data-option as a number
    header, rows = _rows(table)
    missing = [column for column in ("path", label) if column not in header]
    if missing:
        hint = (
            "" if label != "label" or "path" in missing else " (name the label column with --data-option label=COLUMN)"
        )
        raise DatasetError(table, f"no column {', '.join(missing)}; the columns are {', '.join(header)}{hint}")
    own_split = "split" in header
    items, splits = [], []
    for line, row in rows:
        if len(row) != len(header):
            raise DatasetError(at_line(table, line), f"{len(row)} fields, the header has {len(header)}")
        values = dict(zip(header, row))
        relative, value = values["path"].strip(), values[label].strip()
        if not relative or not value:
            raise DatasetError(at_line(table, line), f"empty {'path' if not relative else label}")
        if own_split:
            split = _SPLIT_NAMES.get(values["split"].strip().lower())
            if split is None:
                raise DatasetError(at_line(table, line), f"split {values['split']!r} is not train, valid or test")
            splits.append(split)
        path = Path(relative) if Path(relative).is_absolute() else under(table.parent, relative)
        group = values.get("group", "").strip() or relative
        items.append(Item(key=relative, path=path, labels=(value,), group=group))
    if not items:
        raise DatasetError(table, "no rows below the header")
    duplicated = [key for key, n in Counter(item.key for item in items).items() if n > 1]
    if duplicated:
        raise DatasetError(table, f"{len(duplicated)} file(s) listed twice, e.g. {duplicated[0]}")
    values, groups = [item.labels[0] for item in items], [item.group for item in items]
    if own_split:
        chosen = {name: [item for item, split in zip(items, splits) if split == name] for name in SPLITS}
        source = f"the table's own split column ({table.name})"
        empty = [name for name, members in chosen.items() if not members]
        if empty:
            raise DatasetError(table, f"the split column names no {' and no '.join(empty)} row: each split needs one")
    else:
        named = short_of_groups(values, groups)
        if named:
            raise DatasetError(
                table,
                f"label(s) with fewer than 3 groups, one per split needed (or give the table a split column): {named}",
            )
        by_index = split_by_group(groups, seed=seed, strata=values)
        chosen = {name: [items[i] for i in indices] for name, indices in by_index.items()}
        source = own_split_source(seed)
    labels = tuple(sorted(set(values)))
    return Dataset(name="csv", root=table, task="single-label", labels=labels, splits=chosen, split_source=source)


def _rows(table: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header's column names and the non-blank rows with their line numbers."""
    delimiter = "\t" if table.suffix.lower() == ".tsv" else ","
    try:
        with open(table, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            lines = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as e:
        raise DatasetError(table, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise DatasetError(table, f"not a readable table: {e}") from None
    except OSError as e:
        raise DatasetError(table, e.strerror or str(e)) from None
    if not lines:
        raise DatasetError(table, "empty: no header row")
    header = [name.strip() for name in lines[0][1]]
    return header, lines[1:]
