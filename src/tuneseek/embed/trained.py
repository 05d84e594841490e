"""Models trained with ``tuneseek train`` applied to audio files: their tags and their vectors over time.

A run folder (``config.json`` + ``model.safetensors``, see :mod:`tuneseek.models.checkpoint`)
becomes a :class:`TrainedModel`, which cuts audio at the model's own sample rate into windows of
the model's own length and runs the network on them: taggers (multi-label, sigmoid) and
classifiers (single-label, softmax) give probabilities per window, and every model gives
vectors (its penultimate layer; for a triplet run, the embedding it was trained for).

Audio shorter than a window is repeated to fill it, as in training; the window's start times
say so (a single window at 0 s). :meth:`TrainedModel.stream` runs the same windows on audio that
arrives in chunks (a long file, decoded as it is read), keeping only their outputs; it gives no
result for audio shorter than one window, which file-level callers refuse (see
:mod:`tuneseek.analysis`). A model trained on a dataset's precomputed mel-spectrograms
(MTG-Jamendo's, made by Essentia) is refused for audio: its front end would compute features
close to, but not the same as, the ones it learned from, and a model is never fed features it
was not trained with.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from tuneseek.embed.musicnn_extractor import WindowBatches
from tuneseek.embed.probe import ProbeRun, is_probe, load_probe
from tuneseek.errors import ModelError, UsageError
from tuneseek.models import checkpoint
from tuneseek.models.frontend import MelModel, fit_window

__all__ = ["BUILTIN_NAMES", "TrainedModel", "load_trained", "model_name"]

#: Names the pretrained extractors use; a trained model may not take them (its tags would mix with theirs).
BUILTIN_NAMES = ("mtt", "msd", "musicnn")
#: Audio samples per network call: bounds memory for long windows, keeps call overhead small.
BATCH_SAMPLES = 4_000_000
_TASK_KIND = {
    "multi-label": "tagger",
    "single-label": "classifier",
    "triplet": "embedding",
    "fingerprint": "fingerprint",
}


def model_name(folder: str | Path) -> str:
    """What a run is called in a library: its folder's name, lower-cased, with only ``[a-z0-9._-]``."""
    name = re.sub(r"[^a-z0-9._-]+", "-", Path(os.path.abspath(folder)).name.lower()).strip("-.")
    if not name:
        raise UsageError(f"cannot name a model after the folder {folder!r}: rename the folder")
    if name in BUILTIN_NAMES:
        raise UsageError(
            f"a trained model cannot be called {name!r} (the pretrained musicnn uses that name): rename its folder"
        )
    return name


@dataclass(frozen=True)
class TrainedModel:
    """A trained checkpoint, ready for audio at :attr:`sample_rate`."""

    folder: Path
    name: str
    kind: str  # "tagger", "classifier", "embedding" or "fingerprint" (1 s segments -> unit vectors, to identify)
    labels: tuple[str, ...]
    version: str  # architecture and weights hash: changes exactly when the outputs would
    model: MelModel = field(repr=False, compare=False)

    #: Every trained network gives vectors (its penultimate layer or its embedding); a probe does not.
    has_vectors = True

    @property
    def sample_rate(self) -> int:
        return self.model.spec.sample_rate

    @property
    def window(self) -> float:
        """Seconds of audio per network input."""
        return self.model.window_seconds

    @property
    def min_samples(self) -> int:
        """The shortest audio it describes: one window."""
        return self.model.spec.samples(self.window)

    def _windows(self, x: np.ndarray, hop: float) -> tuple[np.ndarray, np.ndarray]:
        """Start times (s) and the stacked windows of ``x`` every ``hop`` s; one repeated window for short audio."""
        n = self.model.spec.samples(self.window)
        step = max(1, int(round(hop * self.sample_rate)))
        starts = np.arange(0, max(len(x) - n, 0) + 1, step)
        return starts / self.sample_rate, np.stack([fit_window(x, n, int(s)) for s in starts]).astype(np.float32)

    def _run(self, windows: np.ndarray, head: bool) -> np.ndarray:
        per_call = max(1, BATCH_SAMPLES // windows.shape[1])
        out = []
        with torch.inference_mode():
            for i in range(0, len(windows), per_call):
                batch = torch.from_numpy(windows[i : i + per_call])
                if not head:
                    out.append(self.model.embed(batch))
                elif self.kind == "tagger":
                    out.append(torch.sigmoid(self.model(batch)))
                else:
                    out.append(torch.softmax(self.model(batch), dim=1))
        return torch.cat(out).numpy().astype(np.float32)

    def check_tags(self) -> None:
        """Refuse, in one line saying what to do instead, a model that has no tags: an embedding or a fingerprint."""
        if self.kind == "embedding":
            raise UsageError(
                f"{self.folder} is an embedding model (trained on triplets): it has no tags; "
                "use it with `embed --model` or `index --embedder`"
            )
        if self.kind == "fingerprint":
            raise UsageError(
                f"{self.folder} is a fingerprint model (trained to identify 1 s segments): it has no tags; "
                "use it to identify music (`index --fingerprint`)"
            )

    def stream(self, head: bool, *, hop: float | None = None) -> TrainedStream:
        """Windows of audio fed in chunks: probabilities with ``head`` (as :meth:`tags`), else vectors
        (as :meth:`vectors`), windows ``hop`` s apart (default: side by side)."""
        if head:
            self.check_tags()
        return TrainedStream(self, head, self.window if hop is None else hop)

    def tags(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Window start times and probabilities ``(windows, labels)`` of ``x`` (mono at :attr:`sample_rate`),
        windows side by side; the whole file's probabilities are their mean."""
        self.check_tags()
        times, windows = self._windows(x, self.window)
        return times, self._run(windows, head=True)

    def vectors(self, x: np.ndarray, *, hop: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Window start times and vectors ``(windows, dim)`` of ``x``, windows ``hop`` s apart (default: side by side)."""
        times, windows = self._windows(x, self.window if hop is None else hop)
        return times, self._run(windows, head=False)


class TrainedStream:
    """A trained model's windows over audio (mono at its rate) fed in chunks, batched as in one pass.

    ``finish`` returns ``(start times in s, outputs (windows, dim))``, equal to
    :meth:`TrainedModel.tags` or :meth:`TrainedModel.vectors` of the whole audio, or ``None``
    when the audio was shorter than one window (the whole-array methods would repeat it).
    """

    def __init__(self, model: TrainedModel, head: bool, hop: float):
        self.model = model
        n = model.model.spec.samples(model.window)
        self.step = max(1, round(hop * model.sample_rate))
        windows = np.lib.stride_tricks.sliding_window_view

        def run(block: np.ndarray) -> np.ndarray:
            return model._run(np.array(windows(block, n)[:: self.step], np.float32), head)

        self._batches = WindowBatches(n, self.step, per_batch=max(1, BATCH_SAMPLES // n), run=run)

    def feed(self, chunk: np.ndarray) -> None:
        self._batches.feed(np.asarray(chunk, np.float32))

    def finish(self) -> tuple[np.ndarray, np.ndarray] | None:
        results = self._batches.finish()
        if not results:
            return None
        out = np.concatenate(results)
        return np.arange(len(out)) * self.step / self.model.sample_rate, out


def load_trained(folder: str | Path) -> TrainedModel | ProbeRun:
    """The run in ``folder`` as a :class:`TrainedModel`, or a :class:`~tuneseek.embed.probe.ProbeRun` for a
    probe (loaded once per process while its weights are unchanged).

    Raises :class:`~tuneseek.errors.ModelError` when the folder holds no usable
    checkpoint or the model was trained on precomputed features, and
    :class:`~tuneseek.errors.UsageError` when its folder name cannot name it.
    """
    return _load(*checkpoint.cache_key(folder))


@lru_cache(maxsize=8)
def _load(folder: Path, stamp: int) -> TrainedModel | ProbeRun:
    name = model_name(folder)
    if is_probe(checkpoint.read_config(folder)):
        return load_probe(folder, name=name)
    model, config = checkpoint.load(folder)
    features = (config.get("data") or {}).get("features")
    if features:
        raise ModelError(
            "trained on the dataset's precomputed mel-spectrograms "
            f"({features}), which tuneseek cannot compute identically from audio; "
            "train on the audio itself to use the model on audio files",
            folder,
        )
    kind = _TASK_KIND.get(config.get("task"))
    if kind is None:
        raise ModelError(f"config.json names no task tuneseek can run ({config.get('task')!r})", folder)
    digest = checkpoint.weights_digest(folder)
    return TrainedModel(
        folder, name, kind, tuple(config.get("labels") or ()), f"trained-{config['architecture']}/{digest}", model
    )
