"""A trained probe applied to audio: frozen pooled features of the whole file, then the probe's head.

A probe run (``tuneseek train classifier --from musicnn``, :mod:`tuneseek.train.probe`) is a
checkpoint folder whose model is a :class:`~tuneseek.models.probe.ProbeHead` and whose config
names the features it was fitted on (:class:`~tuneseek.embed.pooled.FeatureSpec`). It answers for
a whole file, not per window: the features pool over every window of the file, so a file has one
set of probabilities (a "curve" of one row, at 0 s). It serves the places a trained tagger or
classifier does (``tag --model``, ``index --tagger``, ``evaluate``) through the same
``stream(head=True)`` interface as :class:`~tuneseek.embed.trained.TrainedModel`; it has no
embedding of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tuneseek.embed.pooled import MIN_SECONDS, FeatureSpec, WindowStream, pool
from tuneseek.errors import ModelError, UsageError
from tuneseek.features import MUSICNN_SR
from tuneseek.models import checkpoint
from tuneseek.models.probe import ARCHITECTURE, ProbeHead

__all__ = ["ProbeRun", "is_probe", "load_probe"]

_KIND = {"single-label": "classifier", "multi-label": "tagger"}


def is_probe(config: dict) -> bool:
    """Whether a checkpoint config (``config.json``) is a probe's."""
    return config.get("architecture") == ARCHITECTURE


@dataclass(frozen=True)
class ProbeRun:
    """A probe ready for 16 kHz audio: its features, its head, its labels."""

    folder: Path
    name: str
    kind: str  # "classifier" (single-label, softmax) or "tagger" (multi-label, sigmoid)
    labels: tuple[str, ...]
    version: str  # the head's weights and the features' version: changes exactly when the outputs would
    features: FeatureSpec
    head: ProbeHead = field(repr=False, compare=False)

    sample_rate = MUSICNN_SR
    has_vectors = False
    #: The shortest audio a probe answers for, in seconds.
    window = MIN_SECONDS

    @property
    def min_samples(self) -> int:
        return int(MIN_SECONDS * MUSICNN_SR)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """``(n, labels)`` probabilities of ``(n, features)`` pooled vectors."""
        with torch.inference_mode():
            logits = self.head(torch.from_numpy(np.asarray(vectors, np.float32)))
            out = torch.sigmoid(logits) if self.kind == "tagger" else torch.softmax(logits, dim=1)
        return out.numpy().astype(np.float32)

    def stream(self, head: bool = True, *, hop: float | None = None) -> ProbeStream:
        """Audio fed in chunks, probabilities at the end (as :meth:`TrainedModel.stream`); a probe has no vectors."""
        if not head:
            self._no_vectors()
        return ProbeStream(self)

    def tags(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(start times, probabilities (1, labels))`` of mono audio ``x`` at 16 kHz."""
        run = self.stream()
        run.feed(x)
        result = run.finish()
        if result is None:
            raise UsageError(
                f"{len(x) / MUSICNN_SR:.2f} s of audio is shorter than the {MIN_SECONDS:g} s a probe needs"
            )
        return result

    def vectors(self, x: np.ndarray, *, hop: float | None = None):
        """Refused: a probe has labels, no embedding."""
        self._no_vectors()

    def _no_vectors(self):
        raise UsageError(f"{self.folder} is a probe: it gives labels, not an embedding (use it as a tagger)")


class ProbeStream:
    """A probe over audio fed in chunks: ``finish()`` gives ``(np.array([0.0]), probabilities (1, labels))``,
    or ``None`` when the audio was shorter than :data:`~tuneseek.embed.pooled.MIN_SECONDS`."""

    def __init__(self, run: ProbeRun):
        self.run = run
        self._windows = WindowStream(run.features.parts)

    def feed(self, chunk: np.ndarray) -> None:
        self._windows.feed(chunk)

    def finish(self) -> tuple[np.ndarray, np.ndarray] | None:
        windows = self._windows.finish()
        if windows is None:
            return None
        return np.zeros(1), self.run.probabilities(pool(windows, self.run.features)[None])


def load_probe(folder: str | Path, *, name: str) -> ProbeRun:
    """The probe saved in ``folder``, called ``name`` in a library; :class:`ModelError` when it is not usable."""
    folder = Path(folder)
    head, config = checkpoint.load(folder)
    if not is_probe(config):
        raise ModelError("not a probe", folder)
    kind = _KIND.get(config.get("task"))
    if kind is None:
        raise ModelError(f"config.json names no task a probe can run ({config.get('task')!r})", folder)
    try:
        features = FeatureSpec.from_dict(config["features"])
    except (KeyError, TypeError) as e:
        raise ModelError(f"config.json does not say which features the probe reads ({e})", folder) from None
    digest = checkpoint.weights_digest(folder)
    version = f"probe/{digest}/{features.version}"
    return ProbeRun(folder, name, kind, tuple(config.get("labels") or ()), version, features, head)
