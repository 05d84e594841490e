"""Commands about what music sounds like: ``tag`` and ``embed`` (any file), ``similar`` and ``search`` (a library).

``tag`` and ``embed`` open no library: they run the library's extractors on files
(:meth:`~tuneseek.library.Library.tag_file`, :meth:`~tuneseek.library.Library.embed_file`).
``search`` must start without torch or sentence-transformers, so nothing is imported here
until a command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tuneseek.cli.common import fmt_time, open_library, positive_int, print_error, print_json
from tuneseek.errors import TuneseekError, UsageError


def register(sub, common) -> None:
    """Add this group's commands to the ``tuneseek`` subparsers ``sub``; ``common`` holds the shared options."""
    s = sub.add_parser("search", parents=[common], help='tracks that fit a description: "calm solo piano, no vocals"')
    s.add_argument("query", nargs="+", help="words describing the music (quote them or not)")
    s.add_argument("-k", type=positive_int, default=10, help="results (default 10)")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("similar", parents=[common], help="tracks that sound like a library track, a file or a clip")
    s.add_argument(
        "query",
        help="track id, a library track's path, or any audio file (a clip under 30 s is "
        "matched against 3.7 s segments, and each result says where)",
    )
    s.add_argument("-k", type=positive_int, default=10, help="results (default 10)")
    s.add_argument(
        "--space",
        default="musicnn",
        help="embedding space: musicnn (default), text-audio (the joint space of `index --text-model`), "
        "or the name of a trained embedder given to `index --embedder`",
    )
    s.set_defaults(func=cmd_similar)

    s = sub.add_parser("tag", parents=[common], help="top tags of audio files (pretrained musicnn or a trained model)")
    s.add_argument("files", nargs="+")
    s.add_argument(
        "--model",
        default="mtt",
        metavar="MODEL",
        help="mtt: MagnaTagATune top 50 (instruments, moods, genres, default); msd: Million Song Dataset "
        "(genres, eras); or a trained tagger or classifier (a `tuneseek train` folder)",
    )
    s.add_argument("--top", type=positive_int, default=10, help="tags shown (default 10; --json gives all)")
    s.add_argument("--over-time", action="store_true", help="also the tags of every 3 s patch")
    s.add_argument("--wheel", metavar="PATH", help="the musicnn-0.1.0 wheel, to convert the weights offline")
    s.set_defaults(func=cmd_tag)

    s = sub.add_parser(
        "embed", parents=[common], help="deep embeddings of audio files over time (musicnn or a trained model)"
    )
    s.add_argument("files", nargs="*")
    s.add_argument(
        "--text",
        metavar="DESCRIPTION",
        help="embed a description instead: the library's text-audio model's 128-d vector "
        "(or, without one, the sentence encoder's)",
    )
    s.add_argument(
        "--window",
        type=float,
        default=None,
        help="window in seconds (0.5, 3.7, 29 or any >= 0.5; default 3.7); a trained model has its own",
    )
    s.add_argument("--hop", type=float, default=None, help="seconds between windows (default window/2)")
    s.add_argument(
        "--layer",
        choices=["penultimate", "max_pool", "mean_pool"],
        default="penultimate",
        help="penultimate: 200-d (default); max_pool / mean_pool: 753-d",
    )
    s.add_argument("--pool", choices=["none", "mean", "max"], default="none", help="one vector for the whole file")
    s.add_argument(
        "--model",
        default="mtt",
        metavar="MODEL",
        help="mtt (default) or msd: pretrained musicnn; or a trained model (a `tuneseek train` folder)",
    )
    s.add_argument(
        "--output",
        "-o",
        metavar="FILE.npy",
        help="write the vectors as .npy (and the window start times as FILE.times.npy); "
        "else one JSON object per window",
    )
    s.add_argument("--wheel", metavar="PATH", help="the musicnn-0.1.0 wheel, to convert the weights offline")
    s.set_defaults(func=cmd_embed)


def cmd_search(args) -> int:
    query = " ".join(args.query)
    with open_library(args) as lib:
        result = lib.search(query, k=args.k)
    if args.json:
        print_json(result.to_dict())
        return 0
    for notice in result.notices:
        print(f"note: {notice}", file=sys.stderr)
    print(f'{result.model}: "{result.query}"')
    if result.explanation:
        print(f"  {result.explanation}")
    for rank, hit in enumerate(result.hits, 1):
        print(f"{rank:>3}. {hit.score:+.3f}  {hit.track.name} [track {hit.track.id}]")
    return 0


def cmd_similar(args) -> int:
    with open_library(args) as lib:
        results = lib.similar(args.query, k=args.k, space=args.space)
    for rank, r in enumerate(results, 1):
        if args.json:
            print_json({"query": args.query, "rank": rank, **r.to_dict()})
        else:
            where = f" at {fmt_time(r.time)}" if r.time is not None else ""
            print(f"{rank:>3}. {r.score:.3f}  {r.track.name} [track {r.track.id}]{where}")
    return 0


def cmd_tag(args) -> int:
    """Each file's top tags (and, ``--over-time``, each patch's); a file that cannot be tagged is one error line."""
    import numpy as np

    from tuneseek.library import Library

    status = 0
    for path in args.files:
        try:
            tags = Library.tag_file(path, model=args.model, wheel=args.wheel)
        except TuneseekError as e:
            print_error(str(e))
            status = 1
            continue
        if args.json:
            print_json(tags.to_dict(over_time=args.over_time))
            continue
        print(f"{path}: " + ", ".join(f"{label} {p:.2f}" for label, p in tags.top(args.top)))
        if args.over_time:
            for t, row in zip(tags.times, tags.curve):
                best = np.argsort(-row)[: min(args.top, 3)]
                print(f"  {fmt_time(t):>8}  " + ", ".join(f"{tags.labels[i]} {row[i]:.2f}" for i in best))
    return status


def cmd_embed(args) -> int:
    """Vectors of files (``-o FILE.npy``, else one JSON line per window), or of a description (``--text``)."""
    if args.text is not None:
        return _embed_text(args)
    if not args.files:
        raise UsageError("give audio files to embed, or --text DESCRIPTION")
    if args.output and len(args.files) > 1:
        raise UsageError("-o/--output takes one input file")
    from tuneseek.library import Library

    status = 0
    for path in args.files:
        try:
            emb = Library.embed_file(
                path,
                window=args.window,
                hop=args.hop,
                layer=args.layer,
                pool=args.pool,
                model=args.model,
                wheel=args.wheel,
            )
        except TuneseekError as e:
            print_error(str(e))
            status = 1
            continue
        if args.output:
            _save_embedding(path, emb, Path(args.output), quiet=args.json)
            continue
        d = emb.to_dict()  # one line per window (a pooled vector has no time), with the keys of Embedding.to_dict
        for t, vector in zip(d["times"] or [None], d["vectors"]):
            print_json({"file": d["file"], "time": t, "window": d["window"], "layer": d["layer"], "vector": vector})
    return status


def _save_embedding(path: str, emb, out: Path, *, quiet: bool) -> None:
    """``emb``'s vectors to ``out`` (.npy), its window starts beside it (``.times.npy``); says so unless ``quiet``."""
    import numpy as np

    np.save(out, emb.vectors)
    if len(emb.times):
        np.save(out.with_suffix(".times.npy"), emb.times)
    if not quiet:
        extra = f" and {out.with_suffix('.times.npy')}" if len(emb.times) else ""
        print(
            f"{path}: {emb.vectors.shape[0]} x {emb.vectors.shape[1]} {emb.layer} vectors "
            f"({emb.window:g} s windows, hop {emb.hop:g} s) -> {out}{extra}"
        )


def _embed_text(args) -> int:
    """``embed --text``: the vector of a description in the library's text space, as JSON or to ``-o``."""
    if args.files:
        raise UsageError("--text embeds a description: give it without audio files")
    with open_library(args) as lib:
        vector, space = lib.embed_text(args.text)
    if args.output:
        import numpy as np

        np.save(args.output, vector)
        if not args.json:
            print(f'{len(vector)}-d {space} vector of "{args.text}" -> {args.output}')
    else:
        print_json({"text": args.text, "space": space, "vector": [round(float(x), 4) for x in vector]})
    return 0
