"""Query sets for identification benchmarks: the ``origin``/``sample`` folder layout.

The layout of the query-by-example research datasets::

    dataset/{train,valid,test}/origin/<label>/<label>_<n>.<ext>                  # full tracks
    dataset/{train,valid,test}/sample/<label>/<label>_<start_ms>_<end_ms>.<ext>  # excerpts

``<label>`` names a track (the folder).  ``<start_ms>_<end_ms>`` (the last two
``_``-separated integers of a sample's file name, so labels may hold underscores) give the
excerpt's true position in its origin track in milliseconds.  A label may have several
origins (versions of one track; a match to any of them is right); the ``_<n>`` of an
origin's name may be absent.  A sample whose label has no origin folder in its split is a
*negative* query: music that is not in the library (for false-positive rates).

:func:`read_queryset` reads the layout; :func:`make_queries` writes it from any folder of
music (origins as symlinks or copies, samples as random excerpts, optionally degraded by a
spec such as ``"noise:0db,mp3:32k"``) so that anyone can benchmark on their own collection.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuneseek import audio
from tuneseek.degrade import degrade, format_degradations, parse_degradations
from tuneseek.errors import AudioError, UsageError
from tuneseek.fileio import atomic_write_bytes
from tuneseek.fingerprint.extract import fingerprint_file

__all__ = [
    "Origin",
    "Sample",
    "QuerySet",
    "read_queryset",
    "make_queries",
    "parse_sample_name",
    "slugify",
    "QUERIES_JSON",
    "SAMPLE_FORMATS",
]

QUERIES_JSON = "queries.json"
_IN_PROGRESS = ".queries-in-progress.json"
_FORMAT_TAG = "tuneseek-queries"
_FORMAT_VERSION = 1
SAMPLE_FORMATS = ("wav", "flac", "mp3", "m4a")  # not ogg: libvorbis output is not byte-reproducible
_MAX_SLUG = 120
_SAMPLE_NAME = re.compile(r"^.+_(\d+)_(\d+)$")


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Origin:
    """One full track of the library: ``label`` (its folder) and the file."""

    label: str
    path: Path


@dataclass(frozen=True)
class Sample:
    """One query excerpt: its label, file and true span ``start``..``end`` (seconds) in
    the origin track.  ``in_library`` is False for a negative query (no origin folder)."""

    label: str
    path: Path
    start: float
    end: float
    in_library: bool = True

    @property
    def negative(self) -> bool:
        """True when the label has no origin in the split: the right answer is "no match"."""
        return not self.in_library

    @property
    def duration(self) -> float:
        """Length of the source span in seconds (``end - start``)."""
        return self.end - self.start


@dataclass(frozen=True)
class QuerySet:
    """One split of the layout.  ``root`` is the directory holding ``origin/`` and
    ``sample/``; ``split`` its split name (None when the directory was given directly
    and is not named train/valid/test).  ``skipped``: ``(source file, reason)`` for each
    file :func:`make_queries` left out of the split (from its ``queries.json``; empty for
    a split made otherwise)."""

    root: Path
    split: str | None
    origins: list[Origin] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """Sorted labels that have at least one origin (the library's tracks)."""
        return sorted({o.label for o in self.origins})

    def origins_of(self, label: str) -> list[Origin]:
        """The origins (versions) of ``label``; empty for a negative label."""
        return [o for o in self.origins if o.label == label]

    @property
    def positives(self) -> list[Sample]:
        return [s for s in self.samples if s.in_library]

    @property
    def negatives(self) -> list[Sample]:
        return [s for s in self.samples if not s.in_library]


# ----------------------------------------------------------------------------- reading


def _is_audio(p: Path) -> bool:
    fn = getattr(audio, "is_audio_path", None)
    if fn is not None:
        return bool(fn(p))
    exts = {e.lower().lstrip(".") for e in getattr(audio, "SUPPORTED_EXTENSIONS", ())}
    return p.suffix.lower().lstrip(".") in exts


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _visible(p) and p.is_file() and _is_audio(p))


def _label_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _visible(p) and p.is_dir())


def parse_sample_name(path: str | Path) -> tuple[int, int]:
    """``(start_ms, end_ms)`` from a sample file name ``<label>_<start_ms>_<end_ms>.<ext>``
    (the last two ``_``-separated integers of the stem); UsageError naming the file if the
    name has no such suffix or ``end <= start``."""
    path = Path(path)
    m = _SAMPLE_NAME.match(path.stem)
    if m is None:
        raise UsageError(
            f"{path}: a sample file name must end in _<start_ms>_<end_ms> "
            f"(e.g. {path.parent.name or 'label'}_12000_22000{path.suffix})"
        )
    start_ms, end_ms = int(m.group(1)), int(m.group(2))
    if end_ms <= start_ms:
        raise UsageError(f"{path}: sample end {end_ms} ms is not after its start {start_ms} ms")
    return start_ms, end_ms


def _is_split_dir(d: Path) -> bool:
    return (d / "origin").is_dir() or (d / "sample").is_dir()


def _present_splits(root: Path) -> list[str]:
    try:
        return sorted(p.name for p in _label_dirs(root) if _is_split_dir(p))
    except OSError:
        return []


def _resolve_split(root: Path, split: str | None) -> tuple[Path, str | None]:
    if split is not None:
        if (root / split).is_dir() and (_is_split_dir(root / split) or not _is_split_dir(root)):
            return root / split, split
        if _is_split_dir(root):  # root is itself a split directory
            return root, (root.name if root.name in ("train", "valid", "test") else None)
        present = _present_splits(root)
        if present:
            raise UsageError(f"{root}: no split {split!r} here; present: {', '.join(present)}")
        raise UsageError(f"{root}: not a query set: no {split}/ split and no origin/ and sample/ directories")
    if _is_split_dir(root):
        return root, (root.name if root.name in ("train", "valid", "test") else None)
    present = _present_splits(root)
    if len(present) == 1:
        return root / present[0], present[0]
    if present:
        raise UsageError(f"{root}: several splits ({', '.join(present)}); choose one")
    raise UsageError(f"{root}: not a query set: no origin/ and sample/ directories and no split in it")


def read_queryset(root: str | Path, *, split: str | None = "test") -> QuerySet:
    """Read one split of the origin/sample layout.

    ``root`` is the dataset directory (then ``root/split`` is read; with ``split=None``,
    ``root`` itself when it holds ``origin/`` and ``sample/``, else its only split) or
    directly a split directory holding ``origin/`` and ``sample/``.  Only audio files
    count; hidden files and folders are ignored.  Origins are sorted by (label, path),
    samples by (label, start, end, path).  Raises :class:`UsageError` (one line, naming
    the path) when the layout cannot be read.
    """
    root = Path(root)
    if not root.exists():
        raise UsageError(f"{root}: no such query set directory")
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory (expected a query set with origin/ and sample/)")
    split_dir, split_name = _resolve_split(root, split)
    origin_dir, sample_dir = split_dir / "origin", split_dir / "sample"
    if not origin_dir.is_dir():
        raise UsageError(f"{split_dir}: no origin/ directory (the library tracks)")
    if not sample_dir.is_dir():
        raise UsageError(f"{split_dir}: no sample/ directory (the query excerpts)")

    origins = [Origin(d.name, f) for d in _label_dirs(origin_dir) for f in _audio_files(d)]
    if not origins:
        raise UsageError(f"{origin_dir}: no origin audio files (expected origin/<label>/<label>_<n>.<ext>)")
    in_library = {o.label for o in origins}

    samples: list[Sample] = []
    for d in _label_dirs(sample_dir):
        for f in _audio_files(d):
            start_ms, end_ms = parse_sample_name(f)
            samples.append(Sample(d.name, f, start_ms / 1000.0, end_ms / 1000.0, d.name in in_library))
    if not samples:
        raise UsageError(
            f"{sample_dir}: no sample audio files (expected sample/<label>/<label>_<start_ms>_<end_ms>.<ext>)"
        )
    samples.sort(key=lambda s: (s.label, s.start, s.end, s.path.name))
    made = _read_json(split_dir / QUERIES_JSON) or {}
    skipped = [(str(s.get("path")), str(s.get("reason"))) for s in made.get("skipped") or [] if isinstance(s, dict)]
    return QuerySet(root=split_dir, split=split_name, origins=origins, samples=samples, skipped=skipped)


# ----------------------------------------------------------------------------- making


def slugify(text: str, *, max_len: int = _MAX_SLUG) -> str:
    """A filesystem-safe label: lowercase ASCII letters, digits and single dashes.

    ``"Artist/Album/01 Song.flac"``-style relative paths should be passed without the
    extension.  Text with nothing ASCII left gives ``track-<8 hex digits of its hash>``.
    """
    s = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    s = s[:max_len].strip("-")
    if not s:
        s = "track-" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return s


def _unique_labels(bases: Sequence[str]) -> list[str]:
    """First occurrence keeps its slug; later duplicates get ``-2``, ``-3``... (never one
    that another track's own slug already is)."""
    reserved = set(bases)
    taken: set[str] = set()
    out: list[str] = []
    for b in bases:
        if b not in taken:
            label = b
        else:
            n = 2
            while f"{b}-{n}" in reserved or f"{b}-{n}" in taken:
                n += 1
            label = f"{b}-{n}"
        taken.add(label)
        out.append(label)
    return out


@dataclass
class _Track:
    index: int
    path: Path  # absolute
    rel: str  # relative to its source root, for the label
    label: str = ""
    duration: float = 0.0
    sr: int = 0
    in_library: bool = True
    samples: list[str] = field(default_factory=list)


def _collect_sources(src: str | Path | Iterable[str | Path], out: Path) -> tuple[list[str], list[_Track]]:
    if isinstance(src, (str, os.PathLike)):
        roots = [src]
    else:
        roots = list(src)
    if not roots:
        raise UsageError("make_queries: no source folder or file given")
    out_abs = os.path.abspath(out)
    sources: list[str] = []
    tracks: list[_Track] = []
    seen: set[str] = set()
    for r in roots:
        r = Path(r)
        if not r.exists():
            raise UsageError(f"{r}: no such file or folder")
        ra = os.path.abspath(r)
        sources.append(ra)
        if r.is_dir():
            try:
                files = audio.find_audio_files(r)
            except AudioError as e:
                raise UsageError(f"{e.path}: {e.reason}") from None
            items = [(os.path.abspath(f), os.path.relpath(os.path.abspath(f), ra)) for f in files]
        else:
            items = [(ra, os.path.basename(ra))]
        for fa, rel in items:
            # never take the query set being written (out inside src) as a source
            if fa == out_abs or fa.startswith(out_abs + os.sep) or fa in seen:
                continue
            seen.add(fa)
            tracks.append(_Track(index=len(tracks), path=Path(fa), rel=rel))
    return sources, tracks


def _params(sources, length, steps, per_track, seed, split, holdout, link_origins, fmt) -> dict:
    return {
        "source": list(sources),
        "length": float(length),
        "degradations": format_degradations(steps),
        "per_track": int(per_track),
        "seed": int(seed),
        "split": split,
        "holdout": int(holdout),
        "link_origins": bool(link_origins),
        "format": fmt,
    }


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _param_diff(old: dict, new: dict) -> str:
    diffs = []
    for k in new:
        if old.get(k) != new[k]:
            diffs.append(f"{k} {old.get(k)!r} -> {new[k]!r}")
    for k in old:
        if k not in new:
            diffs.append(f"{k} {old[k]!r} -> (none)")
    return "; ".join(diffs) or "format version"


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _copy_atomic(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _link_atomic(target: str, dst: Path) -> None:
    tmp = dst.parent / f".{dst.name}.tmp-link"
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, dst)


def _clear_split(split_dir: Path) -> None:
    """Remove what an interrupted run of ours left (only our own folders and marker)."""
    for name in ("origin", "sample"):
        d = split_dir / name
        if d.is_symlink() or d.is_file():
            d.unlink()
        elif d.is_dir():
            shutil.rmtree(d)


def _has_files(d: Path) -> bool:
    return d.is_dir() and any(True for _ in d.iterdir())


def make_queries(
    src: str | Path | Iterable[str | Path],
    out: str | Path,
    *,
    length: float = 10.0,
    degradations: str = "",
    per_track: int = 3,
    seed: int = 0,
    split: str = "test",
    holdout: int = 0,
    link_origins: bool = True,
    fmt: str = "wav",
    on_progress: Callable[[int, int], None] | None = None,
) -> QuerySet:
    """Write the origin/sample layout into ``out/<split>`` from a folder (or a list of
    folders and files) of music, and return it as read back by :func:`read_queryset`.

    Every source track gets a label (a slug of its path relative to its source folder,
    made unique), an origin (a symlink to the source, or a copy with ``link_origins=False``)
    and ``per_track`` excerpts of ``length`` seconds at uniformly random positions, cut at
    the source's own sample rate, degraded by ``degradations`` and written as ``fmt``
    under ``sample/<label>/<label>_<start_ms>_<end_ms>.<fmt>`` where start/end are the true
    span in the source (a speed/tempo degradation changes the clip's own length, not the
    name).  ``holdout`` tracks chosen at random get samples but no origin: negative queries.
    Tracks shorter than ``length``, files that fail to decode and files the indexer would
    refuse (silent, too little to fingerprint) are skipped before any is picked, and listed
    with the reason in ``out/<split>/queries.json`` (written last) and the returned
    :attr:`QuerySet.skipped`.  Everything is seeded by ``seed``:
    the same arguments give the same names and byte-identical samples.  Re-running with the
    same arguments on a finished split is a no-op; a different run into a split that already
    has files is refused.  ``on_progress(done, total)`` is called as source files are done.
    """
    out = Path(out)
    # --- check the request before touching anything
    try:
        length = float(length)
    except (TypeError, ValueError):
        raise UsageError(f"excerpt length must be a number of seconds, got {length!r}") from None
    if not np.isfinite(length) or length <= 0:
        raise UsageError(f"excerpt length must be > 0 seconds, got {length!r}")
    if isinstance(per_track, bool) or not isinstance(per_track, (int, np.integer)) or per_track < 1:
        raise UsageError(f"per_track must be a whole number >= 1, got {per_track!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed must be a whole number >= 0, got {seed!r}")
    if isinstance(holdout, bool) or not isinstance(holdout, (int, np.integer)) or holdout < 0:
        raise UsageError(f"holdout must be a whole number >= 0, got {holdout!r}")
    fmt = str(fmt).lower().lstrip(".")
    if fmt not in SAMPLE_FORMATS:
        raise UsageError(f"sample format {fmt!r} is not supported; accepted: {', '.join(SAMPLE_FORMATS)}")
    if (
        not isinstance(split, str)
        or not split
        or split.startswith(".")
        or "/" in split
        or os.sep in split
        or split in ("origin", "sample")
    ):
        raise UsageError(f"split must be a plain folder name such as test, got {split!r}")
    steps = parse_degradations(degradations)
    per_track, seed, holdout = int(per_track), int(seed), int(holdout)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")

    sources, tracks = _collect_sources(src, out)
    params = _params(sources, length, steps, per_track, seed, split, holdout, link_origins, fmt)
    split_dir = out / split

    # --- an existing split: same parameters -> no-op; anything else -> refuse
    done_json = split_dir / QUERIES_JSON
    marker = split_dir / _IN_PROGRESS
    resume = False
    if done_json.exists():
        old = _read_json(done_json)
        if old is None or old.get("format") != _FORMAT_TAG:
            raise UsageError(
                f"{done_json}: not a query set description written by tuneseek; remove it or choose another output"
            )
        if old.get("version") == _FORMAT_VERSION and old.get("params") == params:
            return read_queryset(out, split=split)
        raise UsageError(
            f"{split_dir}: already holds queries made with other parameters "
            f"({_param_diff(old.get('params') or {}, params)}); remove it or choose another output"
        )
    if marker.exists():
        old = _read_json(marker)
        if old is None or old.get("params") != params:
            raise UsageError(
                f"{split_dir}: holds an unfinished run with other parameters; "
                "re-run it as before to finish it, or remove the folder"
            )
        resume = True
    elif _has_files(split_dir):
        raise UsageError(f"{split_dir}: already has files not made by this run; choose an empty output")

    if not tracks:
        raise UsageError(f"{', '.join(sources)}: no audio files found")

    total = len(tracks)
    skipped: list[dict] = []

    def skip(t: _Track, reason: str) -> None:
        skipped.append({"path": str(t.path), "reason": reason})

    # --- probe: durations, native rates; which tracks can give an excerpt
    usable: list[_Track] = []
    for t in tracks:
        try:
            info = audio.probe(t.path)
        except AudioError as e:
            skip(t, e.reason)
            continue
        if info.duration is None:  # the header does not say: decode it once to know
            try:
                dur = len(audio.load(t.path, int(info.sample_rate))) / float(info.sample_rate)
            except AudioError as e:
                skip(t, e.reason)
                continue
        else:
            dur = float(info.duration)
        if not np.isfinite(dur) or dur <= 0 or not info.sample_rate:
            skip(t, "no audio (zero duration)")
            continue
        if dur < length:
            skip(t, f"shorter than the excerpt length ({dur:.2f} s < {length:g} s)")
            continue
        problem = _fingerprint_problem(t.path)
        if problem is not None:
            skip(t, problem)
            continue
        t.duration, t.sr = dur, int(info.sample_rate)
        usable.append(t)
    if not usable:
        first = f"; first: {skipped[0]['path']}: {skipped[0]['reason']}" if skipped else ""
        raise UsageError(f"{', '.join(sources)}: no usable track ({len(skipped)} of {total} files skipped){first}")
    if holdout >= len(usable):
        raise UsageError(f"holdout {holdout} leaves no track in the library ({len(usable)} usable tracks); use fewer")

    # labels depend only on the usable tracks' paths (deterministic)
    for t, label in zip(usable, _unique_labels([slugify(os.path.splitext(t.rel)[0]) for t in usable])):
        t.label = label
    if holdout:
        hrng = np.random.default_rng([seed, 0x686F6C64])  # "hold"
        for i in hrng.choice(len(usable), size=holdout, replace=False):
            usable[int(i)].in_library = False

    # --- write
    split_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        _clear_split(split_dir)
    atomic_write_bytes(marker, _json_bytes({"format": _FORMAT_TAG, "version": _FORMAT_VERSION, "params": params}))
    origin_dir, sample_dir = split_dir / "origin", split_dir / "sample"
    origin_dir.mkdir(exist_ok=True)
    sample_dir.mkdir(exist_ok=True)

    done = len(skipped)
    if on_progress:
        on_progress(done, total)
    length_ms = int(round(length * 1000))
    written: list[_Track] = []
    for t in usable:
        try:
            clips = _cut(t, length, length_ms, per_track, seed, steps)
        except AudioError as e:
            skip(t, e.reason)
            clips = []
        if clips:
            tdir = sample_dir / t.label
            tdir.mkdir(exist_ok=True)
            try:
                for name, y in clips:
                    audio.write(tdir / f"{name}.{fmt}", y, t.sr)
                    t.samples.append(f"{name}.{fmt}")
            except AudioError as e:
                shutil.rmtree(tdir, ignore_errors=True)
                t.samples = []
                skip(t, f"cannot write its excerpts as {fmt}: {e.reason}")
            else:
                if t.in_library:
                    odir = origin_dir / t.label
                    odir.mkdir(exist_ok=True)
                    dst = odir / f"{t.label}{t.path.suffix.lower()}"
                    if link_origins:
                        _link_atomic(str(t.path), dst)
                    else:
                        _copy_atomic(t.path, dst)
                written.append(t)
        done += 1
        if on_progress:
            on_progress(done, total)

    if not any(t.in_library for t in written) or not written:
        _clear_split(split_dir)
        marker.unlink(missing_ok=True)
        first = f"; first: {skipped[0]['path']}: {skipped[0]['reason']}" if skipped else ""
        what = "no usable track" if not written else "no track left for the library (all written tracks are held out)"
        raise UsageError(f"{', '.join(sources)}: {what} ({len(skipped)} of {total} files skipped){first}")

    n_samples = sum(len(t.samples) for t in written)
    n_neg = sum(len(t.samples) for t in written if not t.in_library)
    description = {
        "format": _FORMAT_TAG,
        "version": _FORMAT_VERSION,
        "params": params,
        "counts": {
            "source_files": total,
            "tracks": len(written),
            "library_tracks": sum(1 for t in written if t.in_library),
            "holdout_tracks": sum(1 for t in written if not t.in_library),
            "samples": n_samples,
            "negative_samples": n_neg,
            "skipped": len(skipped),
        },
        "skipped": skipped,
        "tracks": [
            {
                "label": t.label,
                "source": str(t.path),
                "duration": round(t.duration, 6),
                "sample_rate": t.sr,
                "in_library": t.in_library,
                "samples": t.samples,
            }
            for t in written
        ],
    }
    atomic_write_bytes(done_json, _json_bytes(description))
    marker.unlink(missing_ok=True)
    return read_queryset(out, split=split)


def _fingerprint_problem(path: Path) -> str | None:
    """Why the indexer would refuse ``path`` (silent, too little to fingerprint...), or None.

    Such a file can be neither a library track (its clips could never be found) nor held-out
    music (its clips would get "no match" for want of sound, not because the library does not
    know the music), so :func:`make_queries` leaves it out.
    """
    try:
        st = path.stat()
    except OSError as e:
        return e.strerror or str(e)
    return _fingerprint_problem_of(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _fingerprint_problem_of(path: str, size: int, mtime_ns: int) -> str | None:
    """:func:`_fingerprint_problem` of one version of a file (``size`` and ``mtime_ns`` tell it):
    it decodes the whole file, once per process (``demo`` makes seven query sets of one folder)."""
    try:
        fingerprint_file(path)
    except AudioError as e:
        return e.reason
    return None


def _cut(t: _Track, length: float, length_ms: int, per_track: int, seed: int, steps) -> list[tuple[str, np.ndarray]]:
    """The track's excerpts, degraded: ``[(file stem, audio)]``.  All of a track's clips
    are cut before any is written, so a decode failure leaves nothing behind."""
    clips: list[tuple[str, np.ndarray]] = []
    names: set[str] = set()
    n_want = int(round(length_ms * t.sr / 1000))
    max_start = max(0.0, t.duration - length)
    for k in range(per_track):
        rng = np.random.default_rng([seed, t.index, k])
        start_ms = int(np.floor(rng.uniform(0.0, max_start) * 1000)) if max_start > 0 else 0
        x = audio.load(t.path, t.sr, offset=start_ms / 1000.0, duration=length_ms / 1000.0)
        x = np.asarray(x, dtype=np.float32).reshape(-1)[:n_want]
        if len(x) < 0.9 * n_want:
            raise AudioError(
                t.path,
                f"decoded only {len(x) / t.sr:.2f} s at {start_ms / 1000:.2f} s (probed duration {t.duration:.2f} s)",
            )
        end_ms = start_ms + (length_ms if len(x) == n_want else int(round(len(x) * 1000 / t.sr)))
        name = f"{t.label}_{start_ms}_{end_ms}"
        if name in names:  # same span twice (a track barely longer than the excerpt)
            continue
        names.add(name)
        if steps:
            x = degrade(x, t.sr, steps, rng=rng)
        clips.append((name, x))
    return clips
