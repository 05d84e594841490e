"""A training run, from a dataset spec to a checkpoint folder a person can use.

``train(settings)`` reads the dataset, decodes its audio once into the cache (in worker
processes, :mod:`tuneseek.processes`), builds the network, and trains it with Lightning: seeded,
with on-the-fly crops and augmentation in data-loader processes started as those are, a
learning-rate schedule and early stopping on the validation metric, CSV
logs (and TensorBoard when asked and installed), and Lightning checkpoints (``last.ckpt``) to
resume from after an interruption. The run folder ends up holding::

    OUT/config.json            the best epoch's model: architecture, mel settings, window, labels,
    OUT/model.safetensors      the dataset it was trained on, and the training summary
    OUT/summary.json           settings, epochs, best validation metric, files left out
    OUT/training-curves.png    loss and validation metrics per epoch
    OUT/logs/run-N/metrics.csv Lightning's CSV log (one folder per start or resume)
    OUT/lightning/             best.ckpt, last.ckpt (for --resume)

so that ``OUT`` is itself a model folder: ``tuneseek evaluate model OUT``, ``tuneseek tag --model OUT``.

``kind="fingerprint"`` trains the learned fingerprint (:class:`~tuneseek.models.fingerprint_net.FingerprintNet`)
the same way, on pairs of a clean 1 s segment and a degraded copy
(:mod:`tuneseek.train.fingerprint_pairs`; with the origin/sample layout its real samples too),
with NT-Xent and the segment-level top-1 hit rate as validation metric
(:class:`~tuneseek.train.tasks.FingerprintTask`); its run folder loads as a ``"fingerprint"``
:class:`~tuneseek.embed.trained.TrainedModel`.

``pretrained="musicnn"`` fine-tunes musicnn (:mod:`tuneseek.models.musicnn_tune`): its pretrained
weights, read by :mod:`tuneseek.embed.weights`, are copied into the network before training, under
a new output layer; the front end learns at ``lr * frontend_lr_scale`` (frozen at 0). The run
folder holds every weight, so using it needs no musicnn wheel.

Settings left ``None`` (epochs, patience, lr, windows per item, the front-end scale) are chosen
for the size of the training split (:mod:`tuneseek.train.defaults`); the summary records the
settings as used, which were chosen (``chosen``, said once as the run starts), and ``notes``: short lines on how the run went (validation
that never improved, or still improving when the epochs ran out).

On more than one process (``devices`` per node times ``num_nodes``, DDP: see
:mod:`tuneseek.train.parallel`) every process runs ``train``; the batch is shared out among them,
validation is computed over the whole valid split in each, and only the first writes the folder
and returns the summary (the others return ``{}``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from tuneseek import analysis, plots, processes
from tuneseek.data.datasets import Dataset, open_dataset
from tuneseek.errors import UsageError
from tuneseek.fileio import atomic_write_bytes
from tuneseek.models import checkpoint, registry
from tuneseek.models.fingerprint_net import HOP_SECONDS, SEGMENT_SECONDS
from tuneseek.models.frontend import MelSpec
from tuneseek.train import defaults, parallel, require_training_stack
from tuneseek.train import fingerprint_pairs as fp
from tuneseek.train import items as it
from tuneseek.train.augment import Augment
from tuneseek.train.parallel import quiet_lightning

KINDS = ("tagger", "genre", "classifier", "triplet", "fingerprint")
#: How the first process of a DDP run tells the others the log folder of this start (``logs/run-N``).
RUN_VERSION_VARIABLE = "TUNESEEK_RUN_VERSION"
DEFAULT_ARCH = {"tagger": "fcn", "genre": "crnn", "triplet": "resnet18", "fingerprint": "fingerprint"}
#: The kinds that learn from audio alone, with no labels.
SELF_SUPERVISED = ("triplet", "fingerprint")
#: A classifier follows its dataset: one label per item (as genre), or several (as a tagger).
CLASSIFIER_ARCH = {"single-label": "crnn", "multi-label": "fcn"}
#: What ``pretrained`` may name: the musicnn vocabulary whose weights start the network.
PRETRAINED = {"musicnn": "mtt", "musicnn-mtt": "mtt", "musicnn-msd": "msd"}
#: cap on pos_weight, so that a tag with 3 positives does not dominate the loss
MAX_POS_WEIGHT = 20.0


def default_cache() -> Path:
    """``$TUNESEEK_CACHE``, else ``$XDG_CACHE_HOME/tuneseek/audio``, else ``~/.cache/tuneseek/audio``."""
    if env := os.environ.get("TUNESEEK_CACHE"):
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tuneseek" / "audio"


@dataclass
class TrainSettings:
    """Everything a run depends on (stored in its summary, so that it can be repeated)."""

    kind: str  # tagger | genre | classifier (single- or multi-label, as the dataset is) | triplet | fingerprint
    data: str  # dataset spec, e.g. "mtat:/data/mtat"
    out: str
    arch: str | None = None  # default per kind: fcn, crnn, resnet18 (classifier: crnn or fcn); musicnn when pretrained
    pretrained: str | None = None  # musicnn | musicnn-msd: fine-tune that network (a new output layer on it)
    window: float | None = None  # seconds per training window (default: the architecture's)
    model_options: dict = field(default_factory=dict)  # e.g. {"width": 0.25}
    data_options: dict = field(default_factory=dict)  # e.g. {"category": "genre", "single_label": True}
    # None: chosen for the training split's size (train.defaults), recorded in the summary
    epochs: int | None = None
    # items (fingerprint: pairs) per optimizer step, shared out among the processes of a DDP run;
    # None: 16, or 64 pairs for a fingerprint (train.defaults.batch_size)
    batch_size: int | None = None
    lr: float | None = None
    frontend_lr_scale: float | None = None  # pretrained only: the front end learns at lr * this; 0 freezes it
    weight_decay: float = 1e-4
    patience: int | None = None  # epochs without a better validation metric before stopping
    windows_per_item: int | None = None  # random windows (fingerprint: pairs) of each training item per epoch
    seed: int = 0
    loader_workers: int = 2  # data-loader processes while training; as many decode the audio into the cache
    device: str = "auto"  # the accelerator: auto | cpu | gpu (cuda: the same as gpu)
    devices: int = 1  # processes per node (GPUs, or CPU processes); more than one: DDP
    strategy: str = "auto"  # auto (ddp when more than one process) | ddp | ddp_spawn
    num_nodes: int = 1  # machines, each running `devices` processes
    augment: bool = True
    pos_weight: bool | None = None  # multi-label only; default on for genre, off for taggers
    neighbourhood: float = 10.0  # triplets: seconds within which a neighbour patch starts
    temperature: float = 0.05  # fingerprint: NT-Xent's temperature
    augment_options: dict = field(default_factory=dict)  # fingerprint: its degradations, e.g. {"pitch_prob": 0.3}
    resume: bool = False
    tensorboard: bool = False
    cache: str | None = None


def prepare_out(out: str, *, resume: bool) -> Path:
    """The run folder ``out``, created; :class:`UsageError` when it already holds a run and
    ``resume`` is not asked, or when ``resume`` is asked and there is nothing to resume.

    A process of a DDP run other than the first (:func:`tuneseek.train.parallel.launched_rank`)
    may find the folder the first has started: only the first refuses a folder that holds a run.
    """
    folder = Path(out).expanduser()
    last = folder / "lightning" / "last.ckpt"
    if resume and not last.exists():
        raise UsageError(f"nothing to resume in {folder} (no lightning/last.ckpt)")
    if not resume and parallel.launched_rank() == 0 and folder.exists() and any(folder.iterdir()):
        raise UsageError(f"{folder} already holds a run: --resume to continue it, or choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_settings(s: TrainSettings) -> None:
    """:class:`UsageError` for settings that cannot go together, before any data is read."""
    if s.kind not in KINDS:
        raise UsageError(f"unknown training kind {s.kind!r}; known: {', '.join(KINDS)}")
    if s.pretrained is not None:
        if s.pretrained not in PRETRAINED:
            raise UsageError(f"unknown pretrained network {s.pretrained!r}; known: {', '.join(PRETRAINED)}")
        if s.arch not in (None, "musicnn"):
            raise UsageError(f"fine-tuning {s.pretrained} trains musicnn's own network, not --arch {s.arch}")
    elif s.arch == "musicnn":
        raise UsageError(
            "the musicnn architecture is the pretrained network: fine-tune it with --from musicnn --fine-tune"
        )
    elif s.frontend_lr_scale is not None:
        raise UsageError(
            "the front end's learning-rate scale is for fine-tuning a pretrained network (--from musicnn --fine-tune)"
        )
    if s.frontend_lr_scale is not None and s.frontend_lr_scale < 0:
        raise UsageError(f"the front end's learning-rate scale must be 0 (frozen) or more, got {s.frontend_lr_scale}")
    if s.kind == "fingerprint":
        if s.pretrained is not None:
            raise UsageError("a fingerprint is trained from scratch (--from is for the tagging networks)")
        if s.arch not in (None, "fingerprint"):
            raise UsageError(f"a fingerprint is trained with its own architecture, not --arch {s.arch}")
        if s.window not in (None, SEGMENT_SECONDS):
            raise UsageError(f"a fingerprint's segment is {SEGMENT_SECONDS:g} s (--window cannot change it)")
        if not s.temperature > 0:
            raise UsageError(f"the temperature must be above 0, got {s.temperature}")
        fp.PairAugment.of(s.augment_options, augment=s.augment)  # a bad option is one line, before any data is read
    elif s.augment_options:
        raise UsageError("augment options are for a fingerprint's degradations (`train fingerprint`)")
    elif s.arch == "fingerprint":
        raise UsageError("the fingerprint architecture is trained by `train fingerprint`")
    for name, least in (("epochs", 1), ("patience", 0), ("windows_per_item", 1), ("batch_size", 1)):
        value = getattr(s, name)
        if value is not None and value < least:
            raise UsageError(f"{name} must be {least} or more, got {value}")


def architecture(s: TrainSettings, task: str) -> str:
    """The architecture ``s`` trains on a dataset of ``task`` (single-label, multi-label, unlabelled)."""
    if s.pretrained:
        return "musicnn"
    if s.arch:
        return s.arch
    return CLASSIFIER_ARCH[task] if s.kind == "classifier" else DEFAULT_ARCH[s.kind]


def pretrained_weights(name: str) -> tuple[dict[str, np.ndarray], dict]:
    """The pretrained musicnn ``name`` (see :data:`PRETRAINED`): ``(state dict, what to record of it)``.
    One :class:`~tuneseek.errors.ModelError` line when the weights cannot be had (no converted copy,
    no wheel, offline), as for ``tuneseek tag``."""
    from tuneseek.embed.weights import MUSICNN_MODELS, ensure_converted

    vocabulary = PRETRAINED[name]
    state, config = ensure_converted(vocabulary)
    folder = MUSICNN_MODELS[vocabulary][0]
    return state, {"name": folder, "version": f"{folder}/{config['weights_sha256'][:16]}"}


def _model_config(s: TrainSettings, ds: Dataset) -> dict:
    arch = architecture(s, ds.task)
    kwargs = dict(s.model_options)
    if s.kind not in SELF_SUPERVISED:
        kwargs["n_outputs"] = len(ds.labels)
    if s.window is not None:
        kwargs["window_seconds"] = s.window
    if ds.features is not None and s.pretrained:
        raise UsageError(
            f"{s.data} holds precomputed mel-spectrograms, not audio: {s.pretrained} needs its own log-mel input"
        )
    if ds.features is not None:  # precomputed mels: the model's front end must compute exactly these from audio
        f = ds.features
        base = registry.create(arch, **kwargs).spec
        kwargs["spec"] = MelSpec(
            **{**base.to_dict(), "sample_rate": f.sample_rate, "n_fft": f.n_fft, "hop": f.hop, "n_mels": f.n_mels}
        )
    return registry.create(arch, **kwargs).config()


def _pos_weight(targets: np.ndarray) -> list[float]:
    pos = targets.sum(axis=0)
    return np.clip((len(targets) - pos) / np.maximum(pos, 1), 1.0, MAX_POS_WEIGHT).astype(float).tolist()


def train(s: TrainSettings, *, say: Callable[[str], None] = print, executor: Executor | None = None) -> dict:
    """Run ``s`` to the end (or to early stopping) and export the best epoch; returns the summary.

    ``say`` gets progress lines; ``executor``, when given, decodes the audio into the cache instead
    of ``s.loader_workers`` processes (see :mod:`tuneseek.processes`).
    """
    require_training_stack()
    # Lightning (seconds to import) only when training: evaluation imports this module for default_cache
    import lightning as L

    from tuneseek.train.tasks import MONITOR, ClassifierTask, FingerprintTask, TripletTask

    check_settings(s)
    batch_chosen = {"batch_size": defaults.batch_size(s.kind)} if s.batch_size is None else {}
    s = replace(s, **batch_chosen)
    where = parallel.layout(
        s.device, devices=s.devices, num_nodes=s.num_nodes, strategy=s.strategy, batch_size=s.batch_size
    )
    if parallel.launched_rank() != 0:  # another process of a DDP run: the first says it all, and outlives it
        say = _silent
        parallel.end_with_parent()
    if where.on_cpu and where.world_size == 1:
        analysis.use_cores()  # one thread per idle core: two on a busy 2-core machine trained musicnn 3-10x slower
    quiet_lightning()
    started = time.time()
    # before anything is written or decoded: missing weights are one line, at once
    pretrained, pretrained_info = pretrained_weights(s.pretrained) if s.pretrained else (None, None)
    out = prepare_out(s.out, resume=s.resume)
    ds = open_dataset(s.data, **s.data_options)
    if s.kind == "tagger" and ds.task != "multi-label":
        raise UsageError(f"a tagger learns tags, but {s.data} is a {ds.task} dataset (use `train genre`)")
    if s.kind in ("genre", "classifier") and ds.task == "unlabelled":
        raise UsageError(f"{s.data} has no labels: a {s.kind} classifier needs one folder per label")
    if s.kind == "fingerprint" and ds.features is not None:
        raise UsageError(f"{s.data} holds precomputed mel-spectrograms: a fingerprint is trained on audio")
    say(ds.describe())
    L.seed_everything(s.seed, workers=True, verbose=False)
    config = _model_config(s, ds)
    spec = MelSpec.from_dict(config["spec"])
    window = config["window_seconds"]

    # Asked for before the decoding pool starts the fork server: the loader's workers unpickle the datasets
    # (train.items) and Lightning's worker seeding, which the fork server then imports once for all of them
    context = processes.context(preload=[it.__name__, parallel.__name__, "lightning"]) if s.loader_workers > 0 else None
    cache = Path(s.cache).expanduser() if s.cache else default_cache()
    if ds.features is None:
        say(f"decoding audio at {spec.sample_rate} Hz into the cache {cache} (once; later runs reuse it)")
    splits, targets, left_out = {}, {}, []
    for name in ("train", "valid"):
        labels = None if s.kind in SELF_SUPERVISED else ds.targets(name)
        splits[name], targets[name], failed = it.usable(
            ds.splits[name],
            labels,
            sample_rate=spec.sample_rate,
            cache=cache,
            workers=max(1, s.loader_workers),
            executor=executor,
        )
        left_out += [(str(item.path), reason) for item, reason in failed]
    real = {}
    if s.kind == "fingerprint":  # the origin/sample layout's own samples are positives too
        for name in ("train", "valid"):
            real[name], failed = fp.real_samples(
                ds,
                name,
                splits[name],
                sample_rate=spec.sample_rate,
                cache=cache,
                workers=max(1, s.loader_workers),
                executor=executor,
            )
            left_out += failed
    for path, reason in left_out:
        say(f"left out {path}: {reason}")
    if not splits["train"] or not splits["valid"]:
        raise UsageError("no usable audio left in the train or valid split")
    short = it.shorter_than(splits["train"] + splits["valid"], spec=spec, window_seconds=window, cache=cache)
    if short:
        say(f"{len(short)} item(s) shorter than the {window:g} s window are repeated to fill it, e.g. {short[0].key}")
    s, chosen = choose_settings(
        s,
        items=len(splits["train"]),
        windows_held=it.windows_held(
            splits["train"], spec=spec, window_seconds=HOP_SECONDS if s.kind == "fingerprint" else window, cache=cache
        ),
        on_cpu=where.on_cpu,
    )
    chosen = {**batch_chosen, **chosen}
    if chosen:
        say(chosen_line(chosen, len(splits["train"])))
    frontend_lr_scale = 1.0 if s.frontend_lr_scale is None else s.frontend_lr_scale

    augment = Augment() if s.augment else Augment.none()
    if s.kind == "fingerprint":
        pair_augment = fp.PairAugment.of(s.augment_options, augment=s.augment)
        common = dict(spec=spec, cache=cache, augment=pair_augment, seed=s.seed)
        train_set = fp.FingerprintPairs(
            splits["train"], train=True, pairs_per_item=s.windows_per_item, samples=real["train"], **common
        )
        valid_set = fp.FingerprintPairs(splits["valid"], samples=real["valid"], **common)
        for silent in train_set.silent + valid_set.silent:
            say(f"left out {silent.path}: no audible {SEGMENT_SECONDS:g} s segment")
            left_out.append((str(silent.path), f"no audible {SEGMENT_SECONDS:g} s segment"))
        if not train_set.items or len(valid_set) < 2:
            raise UsageError(
                "a fingerprint needs audible audio in the train split and two segments at least in the valid split"
            )
        say(fp.describe(train_set, valid_set))
        task = FingerprintTask(
            config, lr=s.lr, weight_decay=s.weight_decay, patience=s.patience, temperature=s.temperature
        )
        task_name = "fingerprint"
    elif s.kind == "triplet":
        train_set = it.Triplets(
            splits["train"],
            spec=spec,
            window_seconds=window,
            cache=cache,
            train=True,
            augment=augment,
            neighbourhood_seconds=s.neighbourhood,
            windows_per_item=s.windows_per_item,
        )
        held_out = splits["valid"]
        if (
            len({i.group or i.key for i in held_out}) < 2
        ):  # distant patches need a second track: borrow the test split's
            held_out = (
                held_out
                + it.usable(
                    ds.splits["test"],
                    None,
                    sample_rate=spec.sample_rate,
                    cache=cache,
                    workers=max(1, s.loader_workers),
                    executor=executor,
                )[0]
            )
        if len({i.group or i.key for i in held_out}) < 2:
            raise UsageError(
                "validation triplets need held-out audio of two tracks at least; the valid and test "
                "splits together have fewer (add music, or change the split with --data-option seed=N)"
            )
        valid_set = it.Triplets(
            held_out, spec=spec, window_seconds=window, cache=cache, neighbourhood_seconds=s.neighbourhood
        )
        task = TripletTask(
            config, lr=s.lr, weight_decay=s.weight_decay, patience=s.patience, frontend_lr_scale=frontend_lr_scale
        )
        task_name = "triplet"
    else:
        train_targets = targets["train"]
        train_set = it.Excerpts(
            splits["train"],
            train_targets,
            spec=spec,
            window_seconds=window,
            cache=cache,
            train=True,
            augment=augment,
            windows_per_item=s.windows_per_item,
        )
        valid_set = it.Excerpts(splits["valid"], targets["valid"], spec=spec, window_seconds=window, cache=cache)
        use_pw = s.pos_weight if s.pos_weight is not None else s.kind == "genre"
        pos_weight = _pos_weight(train_targets) if ds.task == "multi-label" and use_pw else None
        task = ClassifierTask(
            config,
            ds.task,
            list(ds.labels),
            lr=s.lr,
            weight_decay=s.weight_decay,
            patience=s.patience,
            pos_weight=pos_weight,
            frontend_lr_scale=frontend_lr_scale,
        )
        task_name = ds.task
    monitor = MONITOR[task_name]
    if pretrained is not None:  # (a resumed run's own weights then replace them, from its checkpoint)
        task.model.load_pretrained(pretrained)

    # Each process takes its share of a batch (Lightning puts a DistributedSampler in the loaders of a DDP run)
    loader = dict(
        batch_size=where.batch_size,
        num_workers=s.loader_workers,
        persistent_workers=s.loader_workers > 0,
        multiprocessing_context=context,
    )
    share = -(-len(train_set) // where.world_size)  # items per process per epoch
    sampler = parallel.one_process_sampler(train_set, where, seed=s.seed)
    train_loader = torch.utils.data.DataLoader(
        train_set, sampler=sampler, shuffle=sampler is None, drop_last=share > where.batch_size, **loader
    )
    valid_loader = torch.utils.data.DataLoader(parallel.Indexed(valid_set), shuffle=False, **loader)

    trainer, best = make_trainer(
        out,
        monitor,
        epochs=s.epochs,
        layout=where,
        seed=s.seed,
        patience=s.patience,
        tensorboard=s.tensorboard,
        steps_per_epoch=max(1, share // where.batch_size),
        say=say,
    )
    fit(trainer, task, train_loader, valid_loader, ckpt_path=str(out / "lightning" / "last.ckpt") if s.resume else None)
    if not trainer.is_global_zero:
        return {}

    trained = type(task).load_from_checkpoint(best_path(out, best), map_location="cpu")
    per_epoch = epoch_metrics(out)
    best_at = best_epoch(per_epoch.get(monitor, {}))
    summary = {
        "kind": s.kind,
        "task": task_name,
        "settings": asdict(s),
        "chosen": {"for_training_items": len(splits["train"]), **chosen} if chosen else {},
        "pretrained": pretrained_info,
        "dataset": ds.summary(),
        "processes": where.world_size,
        "epochs_run": epochs_run(trainer, per_epoch),
        "monitor": monitor,
        "best": best_score(best, per_epoch.get(monitor, {}), best_at),
        "best_epoch": best_at,
        "left_out": [{"path": p, "reason": r} for p, r in left_out],
        "seconds": round(time.time() - started, 1),
    }
    if s.kind == "fingerprint":
        summary["pairs"] = fp.summary(train_set, valid_set)
    summary["notes"] = run_notes(per_epoch.get(monitor, {}), monitor=monitor, pretrained=s.pretrained is not None)
    extra = {
        "labels": list(ds.labels),
        "task": task_name,
        "data": {"spec": s.data, "options": s.data_options, "features": ds.features.to_dict() if ds.features else None},
        "training": {k: summary[k] for k in ("epochs_run", "monitor", "best", "best_epoch")},
        "pretrained": pretrained_info,
    }
    export_run(out, trained.model, extra=extra, summary=summary, per_epoch=per_epoch, monitor=monitor)
    return summary


def choose_settings(
    s: TrainSettings, *, items: int, windows_held: int, on_cpu: bool = False
) -> tuple[TrainSettings, dict]:
    """``s`` with the settings it leaves ``None`` chosen for ``items`` training items that each hold
    ``windows_held`` windows (a fingerprint: segments at its hop), training on the CPU or not
    (:func:`tuneseek.train.defaults.choose`, :func:`~tuneseek.train.defaults.choose_fingerprint`), and
    those chosen values. (A batch size left ``None`` counts as the kind's default, and is not among them.)"""
    batch_size = s.batch_size or defaults.batch_size(s.kind)
    if s.kind == "fingerprint":
        picked = defaults.choose_fingerprint(
            items=items,
            segments_held=windows_held,
            batch_size=batch_size,
            pairs_per_item=s.windows_per_item,
            on_cpu=on_cpu,
        )
    else:
        picked = defaults.choose(
            items=items,
            windows_held=windows_held,
            batch_size=batch_size,
            pretrained=s.pretrained is not None,
            windows_per_item=s.windows_per_item,
            on_cpu=on_cpu,
        )
    chosen = {name: value for name, value in picked.items() if getattr(s, name) is None}
    return replace(s, **chosen), chosen


def chosen_line(chosen: dict, items: int) -> str:
    """One line naming the settings chosen for ``items`` training items."""
    values = ", ".join(f"{name} {value:g}" for name, value in chosen.items())
    return f"chosen for {items} training items: {values} (set them to override)"


def run_notes(values: dict[int, float], *, monitor: str, pretrained: bool) -> list[str]:
    """What a person should know of how the run went, from ``{0-based epoch: monitor}``: validation that
    never improved after the first epoch, or that was still improving when the epochs ran out."""
    if len(values) < 2:
        return []
    best, last = best_epoch(values), max(values) + 1
    if best == 1:
        remedies = "a lower --lr or more data" if pretrained else "a lower --lr, more data or --from musicnn"
        return [
            f"validation never improved after epoch 1 (the model may not have learned: {remedies} may help; "
            f"best {monitor} {values[min(values)]:.3f} at epoch 1)"
        ]
    if best == last:
        return [f"still improving at the last epoch (best = last, {last}): more --epochs would likely help"]
    return []


def make_trainer(
    out: Path,
    monitor: str,
    *,
    epochs: int,
    layout: parallel.Layout | None = None,
    seed: int = 0,
    patience: int,
    tensorboard: bool,
    steps_per_epoch: int,
    say=print,
):
    """``(trainer, best)``: a seeded-run Lightning trainer writing into ``out``, and its checkpoint callback.

    CSV logs in ``out/logs/run-N`` (one folder per start or resume; TensorBoard beside them when
    asked and installed), ``out/lightning/best.ckpt`` (the best ``monitor``, higher is better)
    and ``last.ckpt``, early stopping after ``patience`` epochs without a better ``monitor``,
    the learning rate logged per epoch; on ``layout`` (default: one process, where Lightning
    chooses), the processes of a DDP run each seeded from ``seed`` and their rank.
    """
    import lightning as L  # when training only (see train)
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from tuneseek.train.tasks import RankSeed

    layout = layout or parallel.layout()
    # The first process names the log folder before it starts the others (strategy ddp), and tells them
    version = os.environ.get(RUN_VERSION_VARIABLE) if parallel.launched_rank() != 0 else None
    if version is None:
        runs = sorted((out / "logs").glob("run-*")) if (out / "logs").exists() else []
        version = f"run-{len(runs) + 1}"
        os.environ[RUN_VERSION_VARIABLE] = version
    loggers = [CSVLogger(out, name="logs", version=version)]
    if tensorboard:
        try:
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(out, name="tensorboard"))
        except ModuleNotFoundError:
            say("TensorBoard is not installed (pip install tensorboard): CSV logs only")
    best = ModelCheckpoint(
        dirpath=out / "lightning", filename="best", monitor=monitor, mode="max", enable_version_counter=False
    )
    # last.ckpt after every epoch, for --resume: ModelCheckpoint's own save_last copies a checkpoint only
    # when it saves one (with a monitor: when the run improves), so a resumed run would restart from its best
    last = ModelCheckpoint(dirpath=out / "lightning", filename="last", save_top_k=1, enable_version_counter=False)
    try:
        trainer = L.Trainer(
            max_epochs=epochs,
            **layout.trainer_options(),
            deterministic=True,
            logger=loggers,
            callbacks=[
                best,
                last,
                EarlyStopping(monitor=monitor, mode="max", patience=patience),
                LearningRateMonitor(logging_interval="epoch"),
                RankSeed(seed),
            ],
            enable_progress_bar=sys.stderr.isatty(),
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=max(1, min(50, steps_per_epoch)),
        )
    except MisconfigurationException as e:  # what layout() could not tell: one line, as the other errors
        raise UsageError(f"Lightning cannot train as asked: {_one_line(e)}") from None
    return trainer, best


def fit(trainer, task, train_loader, valid_loader, *, ckpt_path: str | None) -> None:
    """``trainer.fit(...)``. When it fails, the processes it started (strategy ``ddp``) are ended with it; Lightning's
    complaints about the setup, and processes that cannot meet (a port in use), are one line: :class:`UsageError`."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        trainer.fit(task, train_loader, valid_loader, ckpt_path=ckpt_path)
    except BaseException as e:
        parallel.end_started(trainer)
        if isinstance(e, MisconfigurationException):
            raise UsageError(f"Lightning cannot train as asked: {_one_line(e)}") from None
        if isinstance(e, parallel.connection_errors()):
            where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
            raise UsageError(
                f"the processes of the run could not meet at {where} (MASTER_ADDR:MASTER_PORT): {_one_line(e)}"
            ) from None
        raise


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _silent(_msg: str) -> None:
    pass


def epochs_run(trainer, per_epoch: dict[str, dict[int, float]]) -> int:
    """Epochs trained so far (all starts and resumes): the trainer's count, or, where it was not brought back from
    the processes (``ddp_spawn``), the epochs in the logs."""
    logged = max((epoch + 1 for values in per_epoch.values() for epoch in values), default=0)
    return max(int(trainer.current_epoch), logged)


def best_score(best, values: dict[int, float], chosen: int | None) -> float | None:
    """The best epoch's ``monitor``: the checkpoint callback's, or (not brought back by ``ddp_spawn``) the logged one."""
    if best.best_model_score is not None:
        return float(best.best_model_score)
    return values.get(chosen - 1) if chosen else None


def best_path(out: Path, best) -> str:
    """The Lightning checkpoint to export: the best epoch's, else (no validation ran) the last."""
    return best.best_model_path or str(out / "lightning" / "last.ckpt")


def epoch_metrics(out: Path) -> dict[str, dict[int, float]]:
    """``{metric: {epoch: value}}`` from every CSV log of the run in ``out`` (all starts and resumes)."""
    return plots.read_epoch_metrics(sorted((out / "logs").glob("run-*/metrics.csv")))


def export_run(
    out: Path, model, *, extra: dict, summary: dict, per_epoch: dict[str, dict[int, float]], monitor: str
) -> None:
    """Make ``out`` a model folder: the checkpoint (``model`` with ``extra`` in its config),
    ``summary.json`` and ``training-curves.png``."""
    checkpoint.save(out, model, extra=extra)
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    plots.training_curves(per_epoch, monitor, out / "training-curves.png")


def best_epoch(values: dict[int, float]) -> int | None:
    """The 1-based epoch of the highest value of ``{0-based epoch: value}``; None when there is none."""
    return max(values, key=values.get) + 1 if values else None
