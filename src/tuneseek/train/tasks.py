"""What is learned, as Lightning modules: taggers and classifiers, and triplet embeddings.

Each task holds one network of :mod:`tuneseek.models` (built from its config, so that a run
resumed from a Lightning checkpoint rebuilds exactly the same network) and says what its loss
and its validation metric are. The validation metric is what early stopping, the learning-rate
schedule and the choice of the best checkpoint all follow:

* multi-label (taggers, multi-label genre): binary cross-entropy on logits, optionally with
  ``pos_weight`` (negatives / positives per tag, capped) against rare tags; metric macro
  ROC-AUC (PR-AUC logged beside it);
* single-label (genre): cross-entropy with label smoothing; metric balanced accuracy;
* triplet: the triplet margin loss on L2-normalised embeddings; metric the share of validation
  triplets whose neighbour is nearer the anchor than the distant patch;
* fingerprint: NT-Xent (:func:`nt_xent`) over a batch of anchors and their positives
  (:mod:`tuneseek.train.fingerprint_pairs`); metric the segment-level top-1 hit rate
  (:func:`tuneseek.train.metrics.segment_top1`): the share of validation positives whose nearest
  validation anchor is their own.

A model that offers ``param_groups(lr, frontend_lr_scale=...)`` (fine-tuned musicnn,
:mod:`tuneseek.models.musicnn_tune`) is optimised in its groups: its front end at
``lr * frontend_lr_scale``, frozen (and never given to the optimizer) at 0; the other
architectures ignore ``frontend_lr_scale`` and train all their parameters at ``lr``.

Validation batches carry each item's number last (:class:`tuneseek.train.parallel.Indexed`): the
metrics and the validation loss are computed once per epoch over the whole valid split, gathered
from every process of a DDP run and put in item order (:func:`~tuneseek.train.parallel.gather_rows`),
so that they are the same in every process and the same as one process computes.
"""

from __future__ import annotations

import warnings

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from tuneseek.models import registry
from tuneseek.train import metrics
from tuneseek.train.parallel import gather_rows, quiet_lightning, rank_seed, unique_rows

MONITOR = {
    "multi-label": "val_roc_auc",
    "single-label": "val_balanced_accuracy",
    "triplet": "val_triplet_accuracy",
    "fingerprint": "val_top1",
}


class _Task(L.LightningModule):
    def __init__(self, model_config: dict, lr: float, weight_decay: float, patience: int, frontend_lr_scale: float):
        super().__init__()
        self.model = registry.build(model_config)
        if hasattr(self.model, "freeze_frontend"):
            # a pretrained musicnn keeps its layers in inference mode on purpose (see tuneseek.models.musicnn_tune)
            warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training")
            if frontend_lr_scale == 0:
                self.model.freeze_frontend()  # here, before a DDP run wraps the model: frozen weights are not synced

    def configure_optimizers(self):
        # A pretrained model says how its layers learn (the front end slower); the others train as one group
        params = (
            self.model.param_groups(self.hparams.lr, frontend_lr_scale=self.hparams.frontend_lr_scale)
            if hasattr(self.model, "param_groups")
            else self.parameters()
        )
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=0.5, patience=max(1, self.hparams.patience // 2)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": self.monitor, "interval": "epoch"}}

    @property
    def monitor(self) -> str:
        return MONITOR[self.hparams.task]

    def gathered(self, rows: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
        """The validation ``rows`` (tuples of tensors, the item numbers last) of every process, each item once,
        in item order: what one process would have collected."""
        columns = [gather_rows(self, torch.cat(column)) for column in zip(*rows)]
        keep = unique_rows(columns[-1])
        return tuple(c[keep] for c in columns[:-1])


class ClassifierTask(_Task):
    """A tagger (multi-label) or a classifier (single-label) over ``labels``."""

    def __init__(
        self,
        model_config: dict,
        task: str,
        labels: list[str],
        *,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int = 5,
        pos_weight: list[float] | None = None,
        label_smoothing: float = 0.1,
        frontend_lr_scale: float = 1.0,
    ):
        super().__init__(model_config, lr, weight_decay, patience, frontend_lr_scale)
        self.save_hyperparameters()
        self.register_buffer("pos_weight", torch.tensor(pos_weight) if pos_weight else None, persistent=False)
        self._val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.hparams.task == "multi-label":
            return F.binary_cross_entropy_with_logits(logits, y.float(), pos_weight=self.pos_weight)
        return F.cross_entropy(logits, y.long(), label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch, _):
        x, y = batch
        loss = self.loss(self.model(x), y)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(x), sync_dist=True)
        return loss

    def validation_step(self, batch, _):
        x, y, index = batch
        self._val.append((self.model(x).detach().float(), y, index))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        logits, y = self.gathered(self._val)
        self._val.clear()
        # every process holds the same values: sync_dist only keeps Lightning from warning that they might differ
        self.log("val_loss", self.loss(logits, y), prog_bar=True, sync_dist=True)
        logits, y, labels = logits.cpu().numpy(), y.cpu().numpy(), self.hparams.labels
        if self.hparams.task == "multi-label":
            m = metrics.tagging(y, 1 / (1 + np.exp(-logits)), labels=labels)
            values = {"val_roc_auc": _finite(m["roc_auc"]), "val_pr_auc": _finite(m["pr_auc"])}
        else:
            m = metrics.classification(y, logits, labels=labels)
            values = {"val_accuracy": m["accuracy"], "val_balanced_accuracy": m["balanced_accuracy"]}
        self.log_dict(values, prog_bar=True, sync_dist=True)


class TripletTask(_Task):
    """Embeddings from triplets: anchor and neighbour close, anchor and distant patch apart."""

    def __init__(
        self,
        model_config: dict,
        *,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int = 5,
        margin: float = 0.5,
        task: str = "triplet",
        frontend_lr_scale: float = 1.0,
    ):
        super().__init__(model_config, lr, weight_decay, patience, frontend_lr_scale)
        self.save_hyperparameters()
        self._val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def _distances(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = batch  # (batch, 3, ...)
        b = x.shape[0]
        z = F.normalize(self.model.embed(x.reshape(b * 3, *x.shape[2:])), dim=1).reshape(b, 3, -1)
        return (z[:, 0] - z[:, 1]).norm(dim=1), (z[:, 0] - z[:, 2]).norm(dim=1)

    def training_step(self, batch, _):
        near, far = self._distances(batch)
        loss = F.relu(near - far + self.hparams.margin).mean()
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(near), sync_dist=True)
        return loss

    def validation_step(self, batch, _):
        x, y, index = batch
        near, far = self._distances((x, y))
        self._val.append((near.detach(), far.detach(), index))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        near, far = self.gathered(self._val)
        self._val.clear()
        values = {
            "val_loss": F.relu(near - far + self.hparams.margin).mean(),
            "val_triplet_accuracy": (near < far).float().mean(),
        }
        self.log_dict(values, prog_bar=True, sync_dist=True)  # the same in every process (see ClassifierTask)


def nt_xent(anchors: torch.Tensor, positives: torch.Tensor, *, temperature: float, same: torch.Tensor | None = None):
    """The normalised temperature-scaled cross-entropy of SimCLR, as Chang et al. (ICASSP 2021) train the neural
    audio fingerprint with: each of the ``2N`` unit vectors (``N`` anchors, their ``N`` positives) must pick its
    partner out of the ``2N - 1`` others by inner product over ``temperature``; the other ``2N - 2`` are its
    negatives. ``same`` (``(N, N)`` bool, optional) marks pairs whose anchors are the same music (overlapping
    segments of one track): they are no one's negatives."""
    n = len(anchors)
    z = torch.cat([anchors, positives])
    logits = z @ z.T / temperature
    excluded = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    if same is not None:
        block = same & ~torch.eye(n, dtype=torch.bool, device=z.device)
        excluded |= block.repeat(2, 2)
    logits = logits.masked_fill(excluded, float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, partner)


def overlapping(where: torch.Tensor, *, samples: int) -> torch.Tensor:
    """``(N, N)``: which anchors of a batch overlap, from their ``(track, start)`` rows (``where``)."""
    track, start = where[:, 0], where[:, 1]
    return (track[:, None] == track[None, :]) & ((start[:, None] - start[None, :]).abs() < samples)


class FingerprintTask(_Task):
    """The learned fingerprint: a clean segment and its degraded copy close, every other segment of the batch apart.

    Batches are ``(pairs (B, 2, samples), where (B, 2))`` from
    :class:`~tuneseek.train.fingerprint_pairs.FingerprintPairs`; the loss is :func:`nt_xent` with
    overlapping segments of one track kept out of each other's negatives. In a DDP run each process
    contrasts its own share of the batch.
    """

    def __init__(
        self,
        model_config: dict,
        *,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int = 5,
        temperature: float = 0.05,
        task: str = "fingerprint",
        frontend_lr_scale: float = 1.0,
    ):
        super().__init__(model_config, lr, weight_decay, patience, frontend_lr_scale)
        self.save_hyperparameters()
        self.segment = self.model.spec.samples(self.model.window_seconds)
        self._val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        z = self.model.embed(x.reshape(2 * b, x.shape[-1])).reshape(b, 2, -1)
        return z[:, 0], z[:, 1]

    def loss(self, anchors, positives, where) -> torch.Tensor:
        same = overlapping(where, samples=self.segment)
        return nt_xent(anchors, positives, temperature=self.hparams.temperature, same=same)

    def training_step(self, batch, _):
        x, where = batch
        anchors, positives = self._embed(x)
        loss = self.loss(anchors, positives, where)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(x), sync_dist=True)
        return loss

    def validation_step(self, batch, _):
        x, where, index = batch
        anchors, positives = self._embed(x)
        self._val.append((anchors.detach().float(), positives.detach().float(), where, index))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        anchors, positives, where = self.gathered(self._val)
        self._val.clear()
        values = {
            "val_loss": self.loss(anchors, positives, where),
            "val_top1": metrics.segment_top1(positives.cpu().numpy(), anchors.cpu().numpy()),
        }
        self.log_dict(values, prog_bar=True, sync_dist=True)  # the same in every process (see ClassifierTask)


def _finite(x: float) -> float:
    """NaN (no tag had both classes in a tiny validation split) would stall early stopping: count it as chance."""
    return x if np.isfinite(x) else 0.5


class RankSeed(L.Callback):
    """Reseed torch in each process of a run of more than one, once the process group is up
    (:func:`~tuneseek.train.parallel.rank_seed`), so that the processes' random crops, augmentation
    and dropout are their own rather than copies of rank 0's. (The loader's worker processes are
    seeded per rank by Lightning already; with none, the draws are made in the process itself.)
    The samplers' order is not affected: it is seeded from the run's seed, alike everywhere."""

    def __init__(self, seed: int):
        self.seed = seed

    def __setstate__(self, state: dict) -> None:
        # Unpickled with the trainer in a process that strategy ddp_spawn starts, before Lightning sets up the
        # process group there: keep its banner lines and chatter off the terminal in that process too.
        self.__dict__.update(state)
        quiet_lightning()

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.world_size > 1:
            torch.manual_seed(rank_seed(self.seed, trainer.global_rank))
