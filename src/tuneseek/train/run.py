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
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from tuneseek import plots, processes
from tuneseek.data.datasets import Dataset, open_dataset
from tuneseek.errors import UsageError
from tuneseek.fileio import atomic_write_bytes
from tuneseek.models import checkpoint, registry
from tuneseek.models.frontend import MelSpec
from tuneseek.train import items as it
from tuneseek.train.augment import Augment

KINDS = ("tagger", "genre", "triplet")
DEFAULT_ARCH = {"tagger": "fcn", "genre": "crnn", "triplet": "resnet18"}
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

    kind: str  # tagger | genre | triplet
    data: str  # dataset spec, e.g. "mtat:/data/mtat"
    out: str
    arch: str | None = None  # default per kind: fcn, crnn, resnet18
    window: float | None = None  # seconds per training window (default: the architecture's)
    model_options: dict = field(default_factory=dict)  # e.g. {"width": 0.25}
    data_options: dict = field(default_factory=dict)  # e.g. {"category": "genre", "single_label": True}
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5  # epochs without a better validation metric before stopping
    seed: int = 0
    loader_workers: int = 2  # data-loader processes while training; as many decode the audio into the cache
    device: str = "auto"  # cpu | cuda | auto
    devices: int = 1  # more than one: DDP
    augment: bool = True
    pos_weight: bool | None = None  # multi-label only; default on for genre, off for taggers
    neighbourhood: float = 10.0  # triplets: seconds within which a neighbour patch starts
    resume: bool = False
    tensorboard: bool = False
    cache: str | None = None


def prepare_out(out: str, *, resume: bool) -> Path:
    """The run folder ``out``, created; :class:`UsageError` when it already holds a run and
    ``resume`` is not asked, or when ``resume`` is asked and there is nothing to resume."""
    folder = Path(out).expanduser()
    last = folder / "lightning" / "last.ckpt"
    if resume and not last.exists():
        raise UsageError(f"nothing to resume in {folder} (no lightning/last.ckpt)")
    if not resume and folder.exists() and any(folder.iterdir()):
        raise UsageError(f"{folder} already holds a run: --resume to continue it, or choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _model_config(s: TrainSettings, ds: Dataset) -> dict:
    arch = s.arch or DEFAULT_ARCH[s.kind]
    kwargs = dict(s.model_options)
    if s.kind != "triplet":
        kwargs["n_outputs"] = len(ds.labels)
    if s.window is not None:
        kwargs["window_seconds"] = s.window
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
    # Lightning (seconds to import) only when training: evaluation imports this module for default_cache
    import lightning as L

    from tuneseek.train.tasks import MONITOR, ClassifierTask, TripletTask

    if s.kind not in KINDS:
        raise UsageError(f"unknown training kind {s.kind!r}; known: {', '.join(KINDS)}")
    quiet_lightning()
    started = time.time()
    out = prepare_out(s.out, resume=s.resume)
    ds = open_dataset(s.data, **s.data_options)
    if s.kind == "tagger" and ds.task != "multi-label":
        raise UsageError(f"a tagger learns tags, but {s.data} is a {ds.task} dataset (use `train genre`)")
    if s.kind == "genre" and ds.task == "unlabelled":
        raise UsageError(f"{s.data} has no labels: a genre classifier needs one folder per genre")
    say(ds.describe())
    L.seed_everything(s.seed, workers=True, verbose=False)
    config = _model_config(s, ds)
    spec = MelSpec.from_dict(config["spec"])
    window = config["window_seconds"]

    # Asked for before the decoding pool starts the fork server: the loader's workers unpickle the datasets
    # (train.items) and Lightning's worker seeding, which the fork server then imports once for all of them
    context = processes.context(preload=[it.__name__, "lightning"]) if s.loader_workers > 0 else None
    cache = Path(s.cache).expanduser() if s.cache else default_cache()
    if ds.features is None:
        say(f"decoding audio at {spec.sample_rate} Hz into the cache {cache} (once; later runs reuse it)")
    splits, targets, left_out = {}, {}, []
    for name in ("train", "valid"):
        labels = None if s.kind == "triplet" else ds.targets(name)
        splits[name], targets[name], failed = it.usable(
            ds.splits[name],
            labels,
            sample_rate=spec.sample_rate,
            cache=cache,
            workers=max(1, s.loader_workers),
            executor=executor,
        )
        left_out += [(str(item.path), reason) for item, reason in failed]
    for path, reason in left_out:
        say(f"left out {path}: {reason}")
    if not splits["train"] or not splits["valid"]:
        raise UsageError("no usable audio left in the train or valid split")
    short = it.shorter_than(splits["train"] + splits["valid"], spec=spec, window_seconds=window, cache=cache)
    if short:
        say(f"{len(short)} item(s) shorter than the {window:g} s window are repeated to fill it, e.g. {short[0].key}")

    augment = Augment() if s.augment else Augment.none()
    if s.kind == "triplet":
        train_set = it.Triplets(
            splits["train"],
            spec=spec,
            window_seconds=window,
            cache=cache,
            train=True,
            augment=augment,
            neighbourhood_seconds=s.neighbourhood,
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
        task = TripletTask(config, lr=s.lr, weight_decay=s.weight_decay, patience=s.patience)
        task_name = "triplet"
    else:
        train_targets = targets["train"]
        train_set = it.Excerpts(
            splits["train"], train_targets, spec=spec, window_seconds=window, cache=cache, train=True, augment=augment
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
        )
        task_name = ds.task
    monitor = MONITOR[task_name]

    loader = dict(
        batch_size=s.batch_size,
        num_workers=s.loader_workers,
        persistent_workers=s.loader_workers > 0,
        multiprocessing_context=context,
    )
    train_loader = torch.utils.data.DataLoader(
        train_set, shuffle=True, drop_last=len(train_set) > s.batch_size, **loader
    )
    valid_loader = torch.utils.data.DataLoader(valid_set, shuffle=False, **loader)

    trainer, best = make_trainer(
        out,
        monitor,
        epochs=s.epochs,
        device=s.device,
        devices=s.devices,
        patience=s.patience,
        tensorboard=s.tensorboard,
        steps_per_epoch=len(train_loader),
        say=say,
    )
    trainer.fit(task, train_loader, valid_loader, ckpt_path=str(out / "lightning" / "last.ckpt") if s.resume else None)
    if not trainer.is_global_zero:
        return {}

    trained = type(task).load_from_checkpoint(best_path(out, best), map_location="cpu")
    per_epoch = epoch_metrics(out)
    best_value = float(best.best_model_score) if best.best_model_score is not None else None
    summary = {
        "kind": s.kind,
        "task": task_name,
        "settings": asdict(s),
        "dataset": ds.summary(),
        "epochs_run": int(trainer.current_epoch),
        "monitor": monitor,
        "best": best_value,
        "best_epoch": best_epoch(per_epoch.get(monitor, {})),
        "left_out": [{"path": p, "reason": r} for p, r in left_out],
        "seconds": round(time.time() - started, 1),
    }
    extra = {
        "labels": list(ds.labels),
        "task": task_name,
        "data": {"spec": s.data, "options": s.data_options, "features": ds.features.to_dict() if ds.features else None},
        "training": {k: summary[k] for k in ("epochs_run", "monitor", "best", "best_epoch")},
    }
    export_run(out, trained.model, extra=extra, summary=summary, per_epoch=per_epoch, monitor=monitor)
    return summary


def make_trainer(
    out: Path,
    monitor: str,
    *,
    epochs: int,
    device: str,
    devices: int,
    patience: int,
    tensorboard: bool,
    steps_per_epoch: int,
    say=print,
):
    """``(trainer, best)``: a seeded-run Lightning trainer writing into ``out``, and its checkpoint callback.

    CSV logs in ``out/logs/run-N`` (one folder per start or resume; TensorBoard beside them when
    asked and installed), ``out/lightning/best.ckpt`` (the best ``monitor``, higher is better)
    and ``last.ckpt``, early stopping after ``patience`` epochs without a better ``monitor``,
    the learning rate logged per epoch; DDP when ``devices > 1``.
    """
    import lightning as L  # when training only (see train)
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    runs = sorted((out / "logs").glob("run-*")) if (out / "logs").exists() else []
    loggers = [CSVLogger(out, name="logs", version=f"run-{len(runs) + 1}")]
    if tensorboard:
        try:
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(out, name="tensorboard"))
        except ModuleNotFoundError:
            say("TensorBoard is not installed (pip install tensorboard): CSV logs only")
    best = ModelCheckpoint(
        dirpath=out / "lightning",
        filename="best",
        monitor=monitor,
        mode="max",
        save_last=True,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=device,
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        deterministic=True,
        logger=loggers,
        callbacks=[
            best,
            EarlyStopping(monitor=monitor, mode="max", patience=patience),
            LearningRateMonitor(logging_interval="epoch"),
        ],
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(50, steps_per_epoch)),
    )
    return trainer, best


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


def quiet_lightning() -> None:
    """Keep Lightning's banner lines (accelerators found, tips) and known deprecation chatter off the terminal."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")  # a resumed run


def best_epoch(values: dict[int, float]) -> int | None:
    """The 1-based epoch of the highest value of ``{0-based epoch: value}``; None when there is none."""
    return max(values, key=values.get) + 1 if values else None
