"""Measuring: ``evaluate identify QUERYSET``, ``evaluate model RUN``, and ``make-queries``, which makes query sets.

``evaluate`` is the one verb for measuring. ``evaluate identify`` scores identification on a query
set (the origin/sample layout that ``make-queries`` writes); ``evaluate model`` scores a run folder
of ``train``, whichever kind it is (:func:`tuneseek.evaluate.runs.evaluate_model` tells).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tuneseek.cli.common import key_values, print_error, print_json

#: What follows ``evaluate``: a run folder alone means ``evaluate model RUN``.
TARGETS = ("identify", "model")


def shorthand(argv: list[str]) -> list[str]:
    """``evaluate RUN ...`` read as ``evaluate model RUN ...`` (a run folder is what is most often measured)."""
    at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if at is not None and argv[at] == "evaluate" and at + 1 < len(argv):
        target = argv[at + 1]
        if target not in TARGETS and not target.startswith("-"):
            return [*argv[: at + 1], "model", *argv[at + 1 :]]
    return argv


def register(sub, common) -> None:
    """Add ``make-queries`` and ``evaluate`` to the ``tuneseek`` subparsers ``sub`` (``common``: the shared options)."""
    s = sub.add_parser(
        "make-queries",
        parents=[common],
        help="cut (degraded) query clips from music into the origin/sample dataset layout",
    )
    s.add_argument("source", help="folder of music")
    s.add_argument("out", help="output dataset folder")
    s.add_argument("--length", type=float, default=10.0, help="clip length in seconds (default 10)")
    s.add_argument(
        "--degrade",
        default="",
        metavar="SPEC",
        help="e.g. noise:0db,mp3:32k,phone,speed:1.02,tempo:1.05,reverb,gsm (applied in order)",
    )
    s.add_argument("--per-track", type=int, default=3, help="clips per track (default 3)")
    s.add_argument("--holdout", type=int, default=0, help="tracks to keep out of origin/ (negative queries)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--split", default="test")
    s.add_argument("--format", default="wav", choices=["wav", "flac", "mp3", "m4a"])
    s.add_argument("--copy", action="store_true", help="copy origin tracks instead of linking them")
    s.set_defaults(func=cmd_make_queries)

    s = sub.add_parser("evaluate", parents=[common], help="measure: identification on a query set, or a trained model")
    what = s.add_subparsers(dest="target", required=True, metavar="WHAT")
    e = what.add_parser(
        "identify",
        parents=[common],
        help="index QUERYSET/SPLIT/origin, identify QUERYSET/SPLIT/sample, report accuracy",
    )
    e.add_argument("dataset", metavar="QUERYSET", help="a folder in the origin/sample layout (see `make-queries`)")
    e.add_argument("--split", default="test")
    e.add_argument("--workers", "-j", type=int, default=None)
    e.add_argument("--verbose", "-v", action="store_true", help="print every query's answer")
    e.add_argument(
        "--fingerprint",
        metavar="RUN",
        help="index the origins with this learned fingerprint too (`builtin`, or a `train fingerprint` run)",
    )
    e.add_argument(
        "--engine",
        choices=("landmarks", "learned", "fused"),
        default=None,
        help="which engine identifies the samples (default as for identify; learned and fused need --fingerprint)",
    )
    e.set_defaults(func=cmd_evaluate_identify)

    e = what.add_parser(
        "model",
        parents=[common],
        help="metrics of a trained model: on a split of its dataset, or (embeddings) on labelled data",
    )
    e.add_argument(
        "run",
        help="a run folder from `tuneseek train` (`evaluate RUN` is short for `evaluate model RUN`); with --labels "
        "also musicnn or musicnn:LAYER (penultimate, max_pool, mean_pool, pooled), the pretrained network's layers",
    )
    e.add_argument(
        "--data",
        metavar="KIND:PATH",
        help="taggers and classifiers: score on this dataset (its --split) instead of the one trained on; "
        "its labels must be among the model's",
    )
    e.add_argument(
        "--data-option",
        action="append",
        metavar="KEY=VALUE",
        help="the reader's options for --data or --labels, e.g. label=family (a csv: table's column), seed=1",
    )
    e.add_argument("--split", default="test")
    e.add_argument("--crops", type=int, default=8, help="windows per item, averaged (default 8)")
    e.add_argument("--show", type=int, default=5, help="taggers: the worst N tags shown (default 5)")
    e.add_argument(
        "--labels",
        metavar="KIND:PATH",
        help="an embedding space (a run with vectors, or musicnn:LAYER): a labelled dataset (e.g. folder:DIR) "
        "for the linear probe, k-means, kNN and the map; text-audio runs: a labelled folder for zero-shot classification by prompts",
    )
    e.add_argument(
        "--map", choices=["tsne", "pca"], default="tsne", help="with --labels: how the map is drawn (default tsne)"
    )
    e.add_argument("--cache", metavar="DIR")
    e.set_defaults(func=cmd_evaluate_model)


def cmd_make_queries(args) -> int:
    from tuneseek.data.querysets import make_queries

    qs = make_queries(
        args.source,
        args.out,
        length=args.length,
        degradations=args.degrade,
        per_track=args.per_track,
        seed=args.seed,
        split=args.split,
        holdout=args.holdout,
        link_origins=not args.copy,
        fmt=args.format,
    )
    neg = sum(not s.in_library for s in qs.samples)
    msg = {
        "out": str(Path(args.out) / args.split),
        "origins": len(qs.origins),
        "samples": len(qs.samples),
        "not_in_library": neg,
        "skipped": [{"path": path, "reason": reason} for path, reason in qs.skipped],
    }
    if args.json:
        print_json(msg)
    else:
        for path, reason in qs.skipped:
            print(f"skipped {path}: {reason}", file=sys.stderr)
        print(
            f"wrote {len(qs.samples)} clips ({neg} of music kept out of origin/) from {len(qs.origins)} "
            f"tracks to {msg['out']}"
        )
    return 0


def cmd_evaluate_identify(args) -> int:
    """Index the query set's origins (into a temporary library unless ``--library``), identify its samples, report."""
    import tempfile

    from tuneseek.data.querysets import read_queryset
    from tuneseek.evaluate.identify import evaluate_identify
    from tuneseek.library import Library

    qs = read_queryset(args.dataset, split=args.split)
    with tempfile.TemporaryDirectory(prefix="tuneseek-eval-") as tmp:
        where = args.library if args.library_given else Path(tmp) / "library"
        with Library.open(where, create=True) as lib:
            if args.fingerprint:
                lib.use_model(args.fingerprint, role="fingerprint")
            added = lib.add([str(o.path) for o in qs.origins], workers=args.workers, analyse=False)
            if not args.json:
                print(f"indexed {len(qs.origins)} origin tracks: {added.summary()}")
            for path, reason in added.failed:
                print_error(f"{path}: {reason}")

            def on_result(r):
                if args.verbose and not args.json:
                    top = r.top
                    got = f"{top.track.name} at {top.offset:.2f} s (score {top.score})" if top else "no match"
                    print(f"  {r.sample.path.name}: {r.error or got}")

            report = evaluate_identify(lib, qs, on_result=on_result, engine=args.engine)
    if args.json:
        print_json(report.to_dict())
    else:
        _print_identify_metrics(report.metrics)
    return 0


def _print_identify_metrics(m: dict) -> None:
    """The metrics of :func:`~tuneseek.evaluate.identify.evaluate_identify`, one per line, for a person."""

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f} %"

    print(f"queries              {m['queries']} ({m['in_library']} in the library, {m['not_in_library']} not)")
    print(f"top-1 accuracy       {pct(m['top1'])}")
    print(f"top-5 accuracy       {pct(m['top5'])}")
    print(f"offset within 0.5 s  {pct(m['offset_within_0.5s'])}")
    print(f"false positives      {pct(m['false_positive_rate'])}")
    if m["latency_ms_median"] is not None:
        print(
            f"latency per query    {m['latency_ms_median']:.1f} ms median, {m['latency_ms_p95']:.1f} ms p95 "
            "(decoding included)"
        )
    if m["errors"]:
        print(f"errors               {m['errors']} (could not be identified)")
        for failure in m["failed"]:
            print(f"  {failure['sample']}: {failure['error']}")
    if m["origin_not_indexed"]:
        print(f"left out             {m['origin_not_indexed']} clips of tracks the library refused")


def cmd_evaluate_model(args) -> int:
    """Score a run folder of ``train`` (whichever kind: :mod:`tuneseek.evaluate.runs` tells) and print its report."""
    from tuneseek.evaluate.runs import evaluate_model, format_model_report

    say = (lambda msg: None) if args.json else print
    result = evaluate_model(
        args.run,
        split=args.split,
        data=args.data,
        labels=args.labels,
        data_options=key_values(args.data_option, "--data-option"),
        crops=args.crops,
        map_method=args.map,
        cache=args.cache,
        say=say,
    )
    if args.json:
        print_json(result)
    else:
        print(format_model_report(result, show=args.show))
    return 0
