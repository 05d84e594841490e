"""``folder:PATH`` — a folder of audio, one sub-folder per label, or unlabelled.

Labelled (GTZAN style)::

    genres/blues/blues.00000.wav                     # group: the file itself
    genres/rock/armygeddon/armygeddon-00.wav         # group: rock/armygeddon
    genres/rock/armygeddon/armygeddon-01.wav         #   (same song: same group)
    genres/rock/live/cd2/rock.00007.flac             # group: rock/live (found recursively)

Each immediate sub-folder holding audio is a label (single-label task, labels alphabetical);
the audio files of a folder with no such sub-folders (or any folder, with ``labelled=False``)
make an unlabelled dataset for self-supervised training.  Audio is what
:mod:`tuneseek.audio` decodes, found by :func:`tuneseek.audio.find_audio_files`: hidden files
and folders and non-audio files are ignored.

The split is ours: 80/10/10 stratified by label, by *group*, deterministic for a seed.  A file
directly in a label folder is its own group; the files in a sub-folder of a label folder, at any
depth below it, share the group ``label/<sub-folder>`` (a song cut into excerpts, an album), so
they never straddle splits and a triplet's distant patch never comes from the same group.  A
label needs at least 3 groups so that each split holds one.  Unlabelled files are each their
own group, wherever they lie.
"""

from __future__ import annotations

from pathlib import Path

from tuneseek.audio import SUPPORTED_EXTENSIONS, find_audio_files
from tuneseek.data.datasets import Dataset, Item, own_split_source, short_of_groups, split_by_group, too_few_groups
from tuneseek.errors import DatasetError

__all__ = ["read_folder"]


def read_folder(root: Path, *, seed: int = 0, labelled: bool | None = None) -> Dataset:
    """Read a folder dataset (see the module docstring).

    ``seed`` picks the split.  ``labelled``: None (default) decides from the layout, True
    requires label sub-folders, False treats every audio file as unlabelled.
    """
    keys = [path.relative_to(root).as_posix() for path in find_audio_files(root)]
    if not keys:
        extensions = ", ".join(sorted(ext.lstrip(".") for ext in SUPPORTED_EXTENSIONS))
        raise DatasetError(root, f"no audio files ({extensions})")
    loose = [key for key in keys if "/" not in key]
    has_label_folders = len(loose) < len(keys)
    if labelled is False or (labelled is None and not has_label_folders):
        return _unlabelled(root, keys, seed)
    if not has_label_folders:
        raise DatasetError(root, "no label sub-folders holding audio (labelled=True was asked)")
    if loose:
        raise DatasetError(
            root,
            f"{len(loose)} audio file(s) lie outside any label folder (e.g. {loose[0]}); "
            "move them into one, or pass labelled=False",
        )
    return _labelled(root, keys, seed)


def _labelled(root: Path, keys: list[str], seed: int) -> Dataset:
    """One label per top-level sub-folder; a split by group, stratified by label."""
    labels = [key.split("/", 1)[0] for key in keys]
    groups = [_group(key) for key in keys]
    named = short_of_groups(labels, groups)
    if named:
        raise DatasetError(
            root,
            f"label(s) with fewer than 3 audio files (a sub-folder's files count as one), one per split needed: {named}",
        )
    items = [
        Item(key=key, path=root / key, labels=(label,), group=group) for key, label, group in zip(keys, labels, groups)
    ]
    return Dataset(
        name="folder",
        root=root,
        task="single-label",
        labels=tuple(sorted(set(labels))),
        splits=_split(items, seed, strata=labels),
        split_source=own_split_source(seed),
    )


def _group(key: str) -> str:
    """What must not straddle splits: ``label/<sub-folder>`` for a file inside a sub-folder of its
    label folder, else the file itself."""
    parts = key.split("/")
    return f"{parts[0]}/{parts[1]}" if len(parts) > 2 else key


def _unlabelled(root: Path, keys: list[str], seed: int) -> Dataset:
    """Every audio file under ``root``, its own group, for self-supervised training."""
    if too_few_groups(keys):
        raise DatasetError(root, f"{len(keys)} audio file(s); at least 3 are needed, one per split")
    items = [Item(key=key, path=root / key, labels=(), group=key) for key in keys]
    return Dataset(
        name="folder",
        root=root,
        task="unlabelled",
        labels=(),
        splits=_split(items, seed),
        split_source=own_split_source(seed),
    )


def _split(items: list[Item], seed: int, strata: list[str] | None = None) -> dict[str, list[Item]]:
    chosen = split_by_group([item.group for item in items], seed=seed, strata=strata)
    return {split: [items[i] for i in indices] for split, indices in chosen.items()}
