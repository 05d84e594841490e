"""``queries:PATH`` — the origin/sample layout of identification benchmarks, as training data.

The layout is the one :mod:`tuneseek.data.querysets` reads and ``tuneseek make-queries``
writes (hence the kind's name)::

    PATH/{train,valid,test}/origin/<label>/<label>_<n>.<ext>                  # full tracks
    PATH/{train,valid,test}/sample/<label>/<label>_<start_ms>_<end_ms>.<ext>  # excerpts

or one such split folder (any name, or ``PATH`` itself holding ``origin/`` and ``sample/``).

The items are the *origin* tracks, unlabelled (the learned matchers to come train on them
contrastively, as ``train triplet`` does), each grouped by its track label so that the
versions of one track never straddle splits.  When ``train/``, ``valid/`` and ``test/`` all
exist they are the split (``split_source`` ``"official"``; other split folders beside them
are ignored, with a note).  Otherwise the origins of every split folder present are pooled
and split by label, 80/10/10, deterministic for a seed.

The samples are kept on :attr:`Dataset.queries <tuneseek.data.datasets.Dataset.queries>`, one
:class:`~tuneseek.data.querysets.QuerySet` per split, so that a matcher can validate on its
valid split: a sample is a positive query (``in_library``) when its label has an origin in
the same split, else a negative one.  With the layout's own split that is the layout's
meaning unchanged.  With our split, a label's samples follow its origins (positives, even
those a layout folder without that origin had as negatives), and the samples of labels with
no origin anywhere are the negatives, split by label the same way.

Parsing (sample names, start/end, which files count) is :func:`read_queryset`'s; its errors
become :class:`~tuneseek.errors.DatasetError` naming the same file and reason.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tuneseek.data.datasets import SPLITS, Dataset, Item, own_split_source, split_by_group, too_few_groups
from tuneseek.data.querysets import Origin, QuerySet, Sample, read_queryset
from tuneseek.errors import DatasetError, UsageError

__all__ = ["read_queries"]


def read_queries(root: Path, *, seed: int = 0) -> Dataset:
    """Read an origin/sample layout (see the module docstring); ``seed`` picks our split when
    the layout does not have all of ``train/``, ``valid/`` and ``test/``."""
    if _holds_split(root):
        folders = {root.name: None}
    else:
        folders = {d.name: d.name for d in sorted(root.iterdir()) if not d.name.startswith(".") and _holds_split(d)}
    if not folders:
        raise DatasetError(
            root,
            "no origin/ folder: expected origin/<label>/ and sample/<label>/ here, "
            "or in split folders train/, valid/, test/",
        )
    if set(SPLITS) <= set(folders):
        return _official(root, folders)
    return _own_split(root, [_read(root, split) for split in folders.values()], seed)


def _holds_split(folder: Path) -> bool:
    """A split folder of the layout: it has ``origin/`` or ``sample/`` (read_queryset then
    says which one is missing)."""
    return (folder / "origin").is_dir() or (folder / "sample").is_dir()


def _read(root: Path, split: str | None) -> QuerySet:
    """One split folder, by :func:`read_queryset`, its error as a :class:`DatasetError`.

    Its messages are ``"PATH: reason"``; the first ``": "`` divides them, so the message
    reads the same even if a path holds one (only ``where`` would then be cut short).
    """
    try:
        return read_queryset(root, split=split)
    except UsageError as e:
        where, _, reason = str(e).partition(": ")
        raise DatasetError(where, reason) from e


def _item(root: Path, origin: Origin) -> Item:
    """An origin track as an unlabelled item: its path under ``root`` as key, its label as group."""
    return Item(key=origin.path.relative_to(root).as_posix(), path=origin.path, labels=(), group=origin.label)


def _official(root: Path, folders: dict[str, str]) -> Dataset:
    """The layout's own train/valid/test folders, read as they are."""
    queries = {split: _read(root, split) for split in SPLITS}
    notes = []
    ignored = sorted(set(folders) - set(SPLITS))
    if ignored:
        notes.append(f"split folder(s) other than train/valid/test ignored: {', '.join(ignored)}")
    where: dict[str, set[str]] = {}
    for split, queryset in queries.items():
        for label in queryset.labels:
            where.setdefault(label, set()).add(split)
    shared = sorted(label for label, splits in where.items() if len(splits) > 1)
    if shared:
        notes.append(f"{len(shared)} track label(s) have origins in more than one split, e.g. {shared[0]}")
    return Dataset(
        name="queries",
        root=root,
        task="unlabelled",
        labels=(),
        splits={split: [_item(root, o) for o in queries[split].origins] for split in SPLITS},
        split_source="official",
        notes=tuple(notes),
        queries=queries,
    )


def _own_split(root: Path, read: list[QuerySet], seed: int) -> Dataset:
    """The origins of every split folder pooled, split 80/10/10 by label; the samples follow.

    Each split's :class:`QuerySet` has ``root`` the dataset folder (its origins and samples
    may come from several split folders) and ``split`` our split's name.
    """
    origins = sorted((o for queryset in read for o in queryset.origins), key=lambda o: (o.label, str(o.path)))
    labels = [o.label for o in origins]
    if too_few_groups(labels):
        raise DatasetError(
            root, f"{len(set(labels))} track label(s) with origins; at least 3 are needed, one per split"
        )
    chosen = split_by_group(labels, seed=seed)
    library = set(labels)
    split_of = {labels[i]: split for split, indices in chosen.items() for i in indices}
    samples = [s for queryset in read for s in queryset.samples]
    negative_labels = sorted({s.label for s in samples if s.label not in library})
    split_of.update(
        (negative_labels[i], split)
        for split, indices in split_by_group(negative_labels, seed=seed).items()
        for i in indices
    )
    queries = {}
    for split in SPLITS:
        in_split = sorted(
            (replace(s, in_library=s.label in library) for s in samples if split_of[s.label] == split),
            key=_sample_order,
        )
        queries[split] = QuerySet(root, split, [origins[i] for i in chosen[split]], in_split)
    folders = ", ".join(f"{q.root.relative_to(root).as_posix()}/" for q in read)
    return Dataset(
        name="queries",
        root=root,
        task="unlabelled",
        labels=(),
        splits={split: [_item(root, origins[i]) for i in chosen[split]] for split in SPLITS},
        split_source=own_split_source(seed),
        notes=(f"split by track label from the layout's {folders} (not all of train/, valid/, test/ there)",),
        queries=queries,
    )


def _sample_order(sample: Sample) -> tuple:
    """read_queryset's order for samples, the full path breaking ties across folders."""
    return sample.label, sample.start, sample.end, sample.path.name, str(sample.path)
