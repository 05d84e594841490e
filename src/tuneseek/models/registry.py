"""The trainable architectures by name: build a model from its config, or create one afresh.

A model's :meth:`~tuneseek.models.frontend.MelModel.config` names its architecture and holds the
keyword arguments, mel settings and window length that rebuild it; :func:`build` turns that
dict (as read from a checkpoint's ``config.json``) back into an untrained model of the same shape.
:func:`build` also rebuilds the models that read vectors rather than audio and so have no mel
settings or window (:data:`VECTOR_MODELS`): the joint text–audio model
(:mod:`tuneseek.models.text_audio`) and a probe's head (:mod:`tuneseek.models.probe`); they are
not :data:`ARCHITECTURES` that ``tuneseek train --arch`` can be asked for.
"""

from __future__ import annotations

from typing import Any

from tuneseek.errors import UsageError
from tuneseek.models.crnn import CRNN
from tuneseek.models.fcn import FCN
from tuneseek.models.fingerprint_net import FingerprintNet
from tuneseek.models.frontend import MelModel, MelSpec
from tuneseek.models.musicnn_tune import MusicnnTune
from tuneseek.models.probe import ProbeHead
from tuneseek.models.resnet import ResNet18
from tuneseek.models.short_chunk import ShortChunkResCNN
from tuneseek.models.text_audio import TextAudioModel

__all__ = ["ARCHITECTURES", "architecture", "create", "build"]

ARCHITECTURES: dict[str, type[MelModel]] = {
    cls.architecture: cls for cls in (FCN, ShortChunkResCNN, CRNN, ResNet18, MusicnnTune, FingerprintNet)
}


def architecture(name: str) -> type[MelModel]:
    """The class registered as ``name``; :class:`UsageError` listing the known names otherwise."""
    try:
        return ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise UsageError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None


def create(name: str, **kwargs: Any) -> MelModel:
    """A new, untrained ``name`` model: ``create("fcn", n_outputs=50, window_seconds=3.7)``."""
    return architecture(name)(**kwargs)


#: Models that read vectors rather than audio: no mel settings or window; rebuilt from ``kwargs`` alone.
VECTOR_MODELS = {cls.architecture: cls for cls in (TextAudioModel, ProbeHead)}


def build(config: dict[str, Any]) -> MelModel | TextAudioModel | ProbeHead:
    """A new, untrained model of the shape that ``config`` (a ``config()`` dict) describes.

    Keys beyond ``architecture``, ``kwargs``, ``spec`` and ``window_seconds`` (``architecture``
    and ``kwargs`` for the :data:`VECTOR_MODELS`; a checkpoint's format, labels, training summary...)
    are ignored. Missing keys or arguments the architecture does not take raise :class:`UsageError`.
    """
    vectors = VECTOR_MODELS.get(config.get("architecture"))
    needed = ("architecture", "kwargs") if vectors else ("architecture", "kwargs", "spec", "window_seconds")
    missing = [key for key in needed if key not in config]
    if missing:
        raise UsageError(f"model config lacks {', '.join(missing)}")
    try:
        if vectors:
            return vectors(**config["kwargs"])
        cls = architecture(config["architecture"])
        return cls(**config["kwargs"], spec=MelSpec.from_dict(config["spec"]), window_seconds=config["window_seconds"])
    except TypeError as e:  # an argument the constructor does not know, or a value of the wrong kind
        raise UsageError(f"model config does not fit architecture {config['architecture']!r}: {e}") from None
