"""Trained models on disk: a checkpoint is a folder holding ``model.safetensors`` and ``config.json``.

``config.json`` says what the weights are: ``{"format": "tuneseek-checkpoint", "format_version":
1, "architecture", "kwargs", "spec", "window_seconds", ...}``, the model's
:meth:`~tuneseek.models.frontend.MelModel.config` (architecture and preprocessing, so a model is
never fed features it was not trained on) plus whatever the trainer adds (label names, data
summary, metrics). ``model.safetensors`` holds the state dict (parameters and batch-norm
statistics). The joint text–audio model (:mod:`tuneseek.models.text_audio`) is stored the same
way; its config has ``architecture`` (``"text-audio"``) and ``kwargs`` only.

Each file is replaced atomically, the weights first and the config last, so a crash while
saving over an older checkpoint leaves a folder whose config still describes the old
architecture; :func:`load` then refuses weights that do not fit it rather than misreading them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from tuneseek.errors import ModelError, UsageError
from tuneseek.fileio import atomic_write_bytes
from tuneseek.models.digest import tensors_digest
from tuneseek.models.frontend import MelModel
from tuneseek.models.registry import build
from tuneseek.models.text_audio import TextAudioModel

__all__ = ["FORMAT", "FORMAT_VERSION", "CONFIG_FILE", "WEIGHTS_FILE", "save", "read_config", "load"]

FORMAT = "tuneseek-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def cache_key(folder: str | Path) -> tuple[Path, int]:
    """``(absolute folder, weights modification time)``: a key for caching a loaded run that changes
    when the run is trained again (0 when the weights are missing; :func:`load` then says so)."""
    folder = Path(os.path.abspath(Path(folder).expanduser()))
    try:
        return folder, (folder / WEIGHTS_FILE).stat().st_mtime_ns
    except OSError:
        return folder, 0


def weights_digest(folder: str | Path) -> str:
    """What names a trained model's version: 16 hex digits of the digest of ``folder``'s tensors
    and of the config keys that rebuild the model (:func:`~tuneseek.models.digest.tensors_digest`).

    Not the hash of the file's bytes, which two saves of the same model need not share
    (safetensors writes header metadata in a random order).
    """
    folder = Path(folder)
    config = read_config(folder)
    settings = {key: config[key] for key in ("architecture", "kwargs", "spec", "window_seconds") if key in config}
    return tensors_digest((folder / WEIGHTS_FILE).read_bytes(), settings)[:16]


def save(folder: str | Path, model: MelModel | TextAudioModel, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a checkpoint in ``folder`` (created if needed); returns the folder.

    ``extra`` (JSON-serialisable: labels, training summary...) is stored in ``config.json``
    beside the model's config; it may not reuse the keys those take.
    """
    folder = Path(folder)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **model.config()}
    clashes = sorted(set(config) & set(extra or {}))
    if clashes:
        raise UsageError(f"checkpoint extras may not replace {', '.join(clashes)}")
    config.update(extra or {})
    text = json.dumps(config, indent=2) + "\n"  # before writing anything: a bad extra fails here
    state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / WEIGHTS_FILE, safetensors.torch.save(state))
    atomic_write_bytes(folder / CONFIG_FILE, text.encode())
    return folder


def read_config(folder: str | Path) -> dict[str, Any]:
    """A checkpoint's ``config.json``, checked for format and version, without building the model
    (to tell a text–audio run from a tagger before loading either).

    Raises :class:`~tuneseek.errors.ModelError` as :func:`load` does for a missing folder or
    config, invalid JSON, or another format or version.
    """
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise ModelError("no such checkpoint folder", folder)
    if not path.is_file():
        raise ModelError(f"not a checkpoint: {CONFIG_FILE} is missing", folder)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"not valid JSON: {e}", path) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelError(f'not a tuneseek checkpoint config (no "format": "{FORMAT}")', path)
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(f"checkpoint format version {version!r}; this tuneseek reads version {FORMAT_VERSION}", path)
    return config


def _check_fit(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], architecture: str, path: Path
) -> None:
    """Raise a :class:`ModelError` naming the first tensor of ``state`` that ``expected`` does not match."""
    for name, want in expected.items():
        if name not in state:
            raise ModelError(
                f"weights do not fit architecture {architecture!r}: tensor {name!r} {tuple(want.shape)} is missing",
                path,
            )
        if state[name].shape != want.shape:
            raise ModelError(
                f"weights do not fit architecture {architecture!r}: tensor {name!r} has shape "
                f"{tuple(state[name].shape)}, the architecture expects {tuple(want.shape)}",
                path,
            )
    unexpected = [name for name in state if name not in expected]
    if unexpected:
        raise ModelError(
            f"weights do not fit architecture {architecture!r}: unexpected tensor {unexpected[0]!r} "
            f"{tuple(state[unexpected[0]].shape)}",
            path,
        )


def load(folder: str | Path) -> tuple[MelModel | TextAudioModel, dict[str, Any]]:
    """The model saved in ``folder`` (on the CPU, in eval mode) and its full ``config.json``.

    Raises :class:`~tuneseek.errors.ModelError` naming the file and the reason when the
    folder or a file is missing, the config is not valid JSON or names an unknown architecture,
    or the weights do not fit the architecture the config describes.
    """
    folder = Path(folder)
    config = read_config(folder)
    try:
        model = build(config)
    except UsageError as e:
        raise ModelError(str(e), folder / CONFIG_FILE) from None
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise ModelError(f"{WEIGHTS_FILE} is missing", folder)
    try:
        state = safetensors.torch.load_file(path)
    except (OSError, safetensors.SafetensorError) as e:
        raise ModelError(f"unreadable weights: {e}", path) from None
    _check_fit(state, model.state_dict(), config["architecture"], path)
    model.load_state_dict(state, strict=True)
    return model.eval(), config
