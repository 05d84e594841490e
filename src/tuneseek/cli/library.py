"""Commands that fill and look after a library: ``index``, ``list``, ``show``, ``remove``, ``stats``, ``compact``."""

from __future__ import annotations

import sys
from pathlib import Path

from tuneseek.cli.common import fmt_time, open_library, positive_int, print_error, print_json, progress_bar
from tuneseek.errors import TuneseekError, UsageError


def register(sub, common) -> None:
    """Add this group's commands to the ``tuneseek`` subparsers ``sub``; ``common`` holds the shared options."""
    s = sub.add_parser("index", parents=[common], help="add audio files and folders (recursively) to the library")
    s.add_argument("paths", nargs="+", help="files or folders (wav, flac, ogg, opus, mp3, m4a/aac, ...)")
    s.add_argument("--workers", "-j", type=int, default=None, help="parallel processes (default: all cores)")
    s.add_argument(
        "--executor",
        default="local",
        metavar="WHERE",
        help="where files are decoded and analysed: local (this machine's processes, the default), ray "
        "(a Ray instance on this machine), ray://HOST:PORT or ray:auto (a Ray cluster; every node needs "
        "tuneseek and the files at the same paths); this process commits",
    )
    s.add_argument(
        "--commit-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="commit finished files at least this often; an interruption loses only the rest (default 5)",
    )
    s.add_argument(
        "--landmarks-only",
        action="store_true",
        help="index for identification only: no tags or embeddings (about 40x faster); a learned fingerprint "
        "(--fingerprint) is still computed",
    )
    s.add_argument("--wheel", metavar="PATH", help="the musicnn-0.1.0 wheel, to convert the weights offline")
    s.add_argument(
        "--vectors",
        metavar="STORE",
        default=None,
        help="where the library keeps the vectors `similar` searches: faiss (in memory, the default), milvus "
        "(a Milvus Lite file in the library), milvus:FILE.db or milvus:http://HOST:19530 (pip install "
        "'tuneseek[scale]'); recorded in the library, later commands use it without being told",
    )
    s.add_argument(
        "--tagger",
        metavar="RUN",
        action="append",
        default=[],
        help="also tag every track with this trained tagger or classifier (a `tuneseek train` folder); "
        "the library keeps running it on later additions",
    )
    s.add_argument(
        "--text-model",
        metavar="RUN",
        action="append",
        default=[],
        help="a text-audio run (`tuneseek train text-audio`): `search` uses it from now on",
    )
    s.add_argument(
        "--fingerprint",
        metavar="RUN",
        help="a learned fingerprint beside the landmarks: `builtin` (the model shipped with tuneseek) or a "
        "`tuneseek train fingerprint` run; `identify --engine learned|fused` use it, and later additions get it",
    )
    s.add_argument(
        "--embedder",
        metavar="RUN",
        action="append",
        default=[],
        help="also embed every track with this trained model: a new space for `similar --space NAME`",
    )
    s.set_defaults(func=cmd_index)

    s = sub.add_parser("list", parents=[common], help="list the tracks in the library")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("remove", parents=[common], help="remove tracks (by id or path) from the library")
    s.add_argument("tracks", nargs="+")
    s.set_defaults(func=cmd_remove)

    s = sub.add_parser("show", parents=[common], help="a track's facts, stored tags and extractor versions")
    s.add_argument("track", help="track id or path")
    s.add_argument(
        "--top", type=positive_int, default=8, help="tags shown per vocabulary (default 8; --json gives all)"
    )
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("stats", parents=[common], help="size of the library and its index")
    s.set_defaults(func=cmd_stats)

    s = sub.add_parser("compact", parents=[common], help="merge index segments, dropping removed tracks")
    s.set_defaults(func=cmd_compact)


def cmd_index(args) -> int:
    """Add files and folders; a progress bar on a terminal; failures named one by one, then a summary.

    Exit status 1 only when files failed and nothing at all was indexed.
    """
    from tuneseek.library import Library

    lib = Library.open(args.library, create=True, vectors=args.vectors)
    bar = progress_bar("indexing")
    task = None
    shown: set[str] = set()

    def show_failure(path: str, reason: str) -> None:
        shown.add(path)
        if bar is not None and bar.live.is_started:
            bar.console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False)
        else:
            print(f"skipped {path}: {reason}", file=sys.stderr)

    def on_files(n: int) -> None:
        nonlocal task
        if bar is not None:
            task = bar.add_task("indexing", total=n, file="")

    def progress(outcome) -> None:
        if outcome.error and not args.json:
            show_failure(outcome.path, outcome.error)
        if bar is not None and task is not None:
            bar.update(task, advance=1, file=Path(outcome.path).name[-40:])

    with lib:
        if (args.tagger or args.embedder or args.text_model) and args.landmarks_only:
            raise UsageError(
                "--landmarks-only runs no model: leave out --tagger/--embedder/--text-model, or --landmarks-only"
            )
        roles = (("tagger", args.tagger), ("embedder", args.embedder), ("text-audio", args.text_model))
        for role, runs in (*roles, ("fingerprint", [args.fingerprint] if args.fingerprint else [])):
            for run in runs:
                name = lib.use_model(run, role=role)
                if not args.json:
                    print(f"{name}: {run} runs on every track of this library", file=sys.stderr)
        trained = lib.models()
        if bar is not None:
            bar.start()
        try:
            report = lib.add(
                args.paths,
                workers=args.workers,
                executor=args.executor,
                progress=progress,
                on_files=on_files,
                commit_every=args.commit_every,
                analyse=not args.landmarks_only,
                wheel=args.wheel,
            )
        finally:
            if bar is not None:
                bar.stop()
    if args.json:
        print_json(report.to_dict())
    else:
        _print_index_report(report, shown, trained)
    indexed = report.added or report.reindexed or report.unchanged or report.moved or report.analysed
    return 1 if report.failed and not indexed else 0


def _print_index_report(report, shown: set[str], trained: dict) -> None:
    """What ``index`` did, for a person: what was skipped and why (stderr, each failure once), then the summary."""
    for path, reason in report.failed:
        if path not in shown:
            print(f"skipped {path}: {reason}", file=sys.stderr)
    for path, twin in report.duplicates:
        print(f"skipped {path}: same audio as {twin}", file=sys.stderr)
    for path, reason in report.analysis_failed:
        print(f"no tags or embeddings for {path}: {reason}", file=sys.stderr)
    for extractor, reason in report.models_skipped:
        print(f"note: {extractor} not run: {reason}", file=sys.stderr)
    if report.analysis_skipped:
        what = "musicnn tags and embeddings" if trained else "indexed for identification only; tags and embeddings"
        print(f"note: {what} skipped: {report.analysis_skipped}", file=sys.stderr)
    print(report.summary())


def cmd_list(args) -> int:
    with open_library(args) as lib:
        tracks = lib.tracks()
    for t in tracks:
        if args.json:
            print_json(t.to_dict())
        else:
            print(
                f"{t.id:>6}  {fmt_time(t.duration):>8}  {t.name}  ({t.path})"
                if t.title
                else f"{t.id:>6}  {fmt_time(t.duration):>8}  {t.path}"
            )
    return 0


def cmd_remove(args) -> int:
    status = 0
    with open_library(args) as lib:
        for ref in args.tracks:
            try:
                t = lib.remove(ref)
            except TuneseekError as e:
                print_error(str(e))
                status = 1
                continue
            if args.json:
                print_json(t.to_dict())
            else:
                print(f"removed track {t.id}: {t.path}")
    return status


def cmd_show(args) -> int:
    with open_library(args) as lib:
        track = lib.track(args.track)
        tags = lib.tags(track)
        versions = lib.extractors(track)
    if args.json:
        print_json(
            {
                **track.to_dict(),
                "extractors": versions,
                "tags": {vocab: t.to_dict()["tags"] for vocab, t in tags.items()},
            }
        )
        return 0
    print(f"track        {track.id}: {track.name}")
    print(f"path         {track.path}")
    print(f"duration     {fmt_time(track.duration)}")
    for vocab, t in tags.items():
        label = {"mtt": "tags (MTT)", "msd": "tags (MSD)"}.get(vocab, f"tags ({vocab})")
        print(f"{label:<13}" + ", ".join(f"{name} {p:.2f}" for name, p in t.top(args.top)))
    if not tags:
        print("tags         none yet (run `tuneseek index` on this file with the models available)")
    print("extractors   " + ", ".join(f"{name} {v}" for name, v in sorted(versions.items())))
    return 0


def cmd_stats(args) -> int:
    with open_library(args) as lib:
        s = lib.stats()
    if args.json:
        print_json(s.to_dict())
        return 0
    per_hour = s.index_bytes / s.audio_hours / 1e6 if s.audio_hours else 0.0
    print(f"library      {s.path}")
    print(f"tracks       {s.tracks}")
    print(f"audio        {s.audio_hours:.2f} h")
    print(f"landmarks    {s.landmarks:,}")
    print(f"index        {s.index_bytes / 1e6:.1f} MB in {s.segments} segment(s) ({per_hour:.2f} MB per audio hour)")
    print(f"catalogue    {s.catalog_bytes / 1e6:.1f} MB")
    print(f"tags         {s.tagged} of {s.tracks} tracks")
    print(f"embeddings   {s.embedded} of {s.tracks} tracks")
    for space, n in s.spaces.items():
        if space != "musicnn":
            print(f"  {space:<10} {n} of {s.tracks} tracks (trained embedder)")
    for extractor, (tracks, size) in sorted(s.fingerprints.items()):
        per_hour = size / s.audio_hours / 1e6 if s.audio_hours else 0.0
        print(
            f"learned      {extractor}: {tracks} of {s.tracks} tracks, {size / 1e6:.1f} MB ({per_hour:.2f} MB per audio hour)"
        )
    for extractor, folder in sorted(s.models.items()):
        print(f"model        {extractor} <- {folder}")
    return 0


def cmd_compact(args) -> int:
    with open_library(args) as lib:
        before = lib.stats()
        lib.compact()
        after = lib.stats()
    print(
        f"compacted: {before.segments} segment(s), {before.index_bytes / 1e6:.1f} MB -> "
        f"{after.segments} segment(s), {after.index_bytes / 1e6:.1f} MB"
    )
    return 0
