"""Obtain, convert and cache the pretrained musicnn weights; load them into the PyTorch port.

Why this shape: the weights are only published inside the ``musicnn`` 0.1.0 wheel on PyPI, as
TensorFlow-1 checkpoints, and that package cannot be installed beside a modern stack (it pins
NumPy < 1.17 and TensorFlow). So tuneseek treats the wheel as a data file:

1. find it: an explicit path (``--wheel PATH``), else ``$TUNESEEK_MUSICNN_WHEEL``, else a copy
   named ``musicnn-0.1.0-py3-none-any.whl`` in the models directory, else (only when a model is
   actually asked for, never at import) ``pip download --no-deps musicnn==0.1.0`` into a
   temporary folder, pip's ordinary client with the user's own index settings (never when
   ``$TUNESEEK_OFFLINE`` is set);
2. check its SHA-256 against the known hash (so the bytes are the published ones);
3. read the ``MTT_musicnn`` and ``MSD_musicnn`` checkpoints out of the zip in memory with
   :mod:`tuneseek.embed.tfbundle` (no TensorFlow), rename and transpose the tensors to the
   port's layout (:data:`TF_TO_TORCH`), and check every shape against the network;
4. write ``model.safetensors`` then ``config.json`` (architecture, the 50 tag names in order,
   the exact preprocessing, the source wheel and its hash, the converter version, and the
   digest of the tensors and settings, :func:`~tuneseek.models.digest.tensors_digest`, which names the model's version)
   into ``<models>/musicnn-mtt/`` and ``<models>/musicnn-msd/``, each file written aside,
   fsynced and renamed into place, ``config.json`` last.

The models directory is ``$TUNESEEK_MODELS``, else ``$XDG_CACHE_HOME/tuneseek/models``, else
``~/.cache/tuneseek/models``. Loading checks the config, the weights' digest and every
tensor's shape; a half-written or stale conversion is redone when the wheel can be had.
Every failure is one :class:`~tuneseek.errors.ModelError` line a person can act on.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tuneseek.embed.tfbundle import TensorBundle
from tuneseek.errors import ModelError
from tuneseek.fileio import atomic_write_bytes
from tuneseek.models.digest import tensors_digest
from tuneseek.models.directory import default_models_dir

__all__ = [
    "ModelError",
    "MUSICNN_WHEEL_NAME",
    "MUSICNN_WHEEL_SHA256",
    "MUSICNN_MODELS",
    "MTT_LABELS",
    "MSD_LABELS",
    "CONVERTER_VERSION",
    "TF_TO_TORCH",
    "default_models_dir",
    "model_dir",
    "find_wheel",
    "download_wheel",
    "tf_to_state_dict",
    "convert_wheel",
    "read_converted",
    "downloads_allowed",
    "ensure_converted",
    "load_musicnn",
]

MUSICNN_REQUIREMENT = "musicnn==0.1.0"
MUSICNN_WHEEL_NAME = "musicnn-0.1.0-py3-none-any.whl"
# sha256 of the wheel on PyPI (pip download --no-deps musicnn==0.1.0).
MUSICNN_WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
CONVERTER_VERSION = 1
FORMAT = "tuneseek-model"
FORMAT_VERSION = 1

OFFLINE_HINT = (
    "offline: run `pip download --no-deps musicnn==0.1.0` on a connected machine and pass "
    "--wheel PATH / set TUNESEEK_MUSICNN_WHEEL"
)

# The pip command run to fetch the wheel (the destination folder is appended); a module
# attribute so that tests can replace it without touching the network.
PIP_DOWNLOAD_COMMAND: list[str] = [
    sys.executable,
    "-m",
    "pip",
    "download",
    "--no-deps",
    "--only-binary=:all:",
    MUSICNN_REQUIREMENT,
    "-d",
]
PIP_TIMEOUT_S = 600

# musicnn/configuration.py, in output order.
MTT_LABELS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop",
    "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice",
    "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
MSD_LABELS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock", "jazz",
    "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s",
    "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy",
    "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip

# name -> (folder in the models dir, checkpoint prefix inside the wheel, labels, training data)
MUSICNN_MODELS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "mtt": ("musicnn-mtt", "musicnn/MTT_musicnn/", MTT_LABELS, "MagnaTagATune, top-50 tags"),
    "msd": ("musicnn-msd", "musicnn/MSD_musicnn/", MSD_LABELS, "Million Song Dataset, top-50 last.fm tags"),
}

ARCHITECTURE = {"name": "musicnn", "num_classes": 50, "n_mels": 96, "midend_filters": 64, "backend_units": 200}

PREPROCESSING = {
    "function": "tuneseek.features.musicnn_logmel",
    "sample_rate": 16000,
    "n_fft": 512,
    "hop_length": 256,
    "n_mels": 96,
    "window": "hann (periodic)",
    "center": True,
    "pad_mode": "constant",
    "power": 2.0,
    "mel_scale": "slaney",
    "mel_norm": "slaney",
    "storage_dtype": "float16",
    "log": "log10(10000 * x + 1)",
    "patch_frames": 187,
}


def _bn(tf: str, torch_name: str) -> list[tuple[str, str, str]]:
    return [
        (f"{tf}/gamma", f"{torch_name}.weight", "copy"),
        (f"{tf}/beta", f"{torch_name}.bias", "copy"),
        (f"{tf}/moving_mean", f"{torch_name}.running_mean", "copy"),
        (f"{tf}/moving_variance", f"{torch_name}.running_var", "copy"),
    ]


def _conv(tf: str, torch_name: str, how: str) -> list[tuple[str, str, str]]:
    return [(f"{tf}/kernel", f"{torch_name}.weight", how), (f"{tf}/bias", f"{torch_name}.bias", "copy")]


# (TensorFlow name, port name, how to convert). TF layer names follow creation order in
# musicnn's models.build_musicnn: the input batch norm, then each block's conv and batch norm.
TF_TO_TORCH: tuple[tuple[str, str, str], ...] = tuple(
    _bn("batch_normalization", "frontend_bn")
    + _conv("conv2d", "timbral74.conv", "conv2d") + _bn("batch_normalization_1", "timbral74.bn")
    + _conv("conv2d_1", "timbral77.conv", "conv2d") + _bn("batch_normalization_2", "timbral77.bn")
    + _conv("conv2d_2", "temporal128.conv", "conv2d") + _bn("batch_normalization_3", "temporal128.bn")
    + _conv("conv2d_3", "temporal64.conv", "conv2d") + _bn("batch_normalization_4", "temporal64.bn")
    + _conv("conv2d_4", "temporal32.conv", "conv2d") + _bn("batch_normalization_5", "temporal32.bn")
    + _conv("conv2d_5", "midend1.conv", "conv1d") + _bn("batch_normalization_6", "midend1.bn")
    + _conv("conv2d_6", "midend2.conv", "conv1d") + _bn("batch_normalization_7", "midend2.bn")
    + _conv("conv2d_7", "midend3.conv", "conv1d") + _bn("batch_normalization_8", "midend3.bn")
    + _bn("batch_normalization_9", "pool_bn")
    + [("dense/kernel", "dense.weight", "dense"), ("dense/bias", "dense.bias", "copy")]
    + _bn("batch_normalization_10", "dense_bn")
    + [("dense_1/kernel", "output.weight", "dense"), ("dense_1/bias", "output.bias", "copy")]
)  # fmt: skip


# --------------------------------------------------------------------------- places


def _check_name(name: str) -> tuple[str, str, tuple[str, ...], str]:
    try:
        return MUSICNN_MODELS[name]
    except KeyError:
        raise ModelError(f"unknown musicnn model {name!r} (choose from {', '.join(MUSICNN_MODELS)})") from None


def model_dir(name: str, *, models_dir: str | Path | None = None) -> Path:
    """Where the converted model ``name`` ("mtt" or "msd") lives."""
    folder = _check_name(name)[0]
    return Path(models_dir if models_dir is not None else default_models_dir()) / folder


def find_wheel(wheel: str | Path | None = None, *, models_dir: str | Path | None = None) -> Path | None:
    """The musicnn wheel to convert from: ``wheel`` if given (it must exist), else
    ``$TUNESEEK_MUSICNN_WHEEL``, else ``<models_dir>/musicnn-0.1.0-py3-none-any.whl``; ``None`` if none."""
    for source, candidate in (
        ("--wheel", wheel),
        ("TUNESEEK_MUSICNN_WHEEL", os.environ.get("TUNESEEK_MUSICNN_WHEEL") or None),
    ):
        if candidate is not None:
            path = Path(candidate).expanduser()
            if not path.is_file():
                raise ModelError(f"no such wheel file (from {source})", path)
            return path
    cached = Path(models_dir if models_dir is not None else default_models_dir()) / MUSICNN_WHEEL_NAME
    return cached if cached.is_file() else None


def download_wheel(dest: str | Path) -> Path:
    """Fetch the musicnn wheel with ``pip download --no-deps musicnn==0.1.0`` into ``dest``.

    Raises :class:`ModelError` with the offline hint when pip fails (no network, no index).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            [*PIP_DOWNLOAD_COMMAND, str(dest)], capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(f"cannot download {MUSICNN_REQUIREMENT} ({exc}); {OFFLINE_HINT}") from None
    found = sorted(dest.glob("musicnn-*.whl"))
    if proc.returncode != 0 or not found:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        why = lines[-1] if lines else f"pip exited with status {proc.returncode}"
        raise ModelError(f"cannot download {MUSICNN_REQUIREMENT} (pip: {why}); {OFFLINE_HINT}")
    return found[0]


# --------------------------------------------------------------------------- conversion


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    from tuneseek.models.musicnn import Musicnn  # torch when weights are read, not on import (labels, paths)

    return {k: tuple(v.shape) for k, v in Musicnn(**_arch_kwargs()).state_dict().items()}


def _arch_kwargs() -> dict[str, int]:
    return {k: v for k, v in ARCHITECTURE.items() if k != "name"}


def tf_to_state_dict(tensors: dict[str, np.ndarray], *, source: str = "checkpoint") -> dict[str, np.ndarray]:
    """Rename and transpose musicnn's TensorFlow tensors into the port's state dict.

    Convolution kernels go from TF's ``(kh, kw, in, out)`` to PyTorch's ``(out, in, kh, kw)``
    (``conv1d``: the mid-end kernels ``(7, C, 1, out)`` become ``(out, C, 7)``), dense kernels
    from ``(in, out)`` to ``(out, in)``. Every shape is checked against the network.
    """
    expected = _expected_shapes()
    out: dict[str, np.ndarray] = {}
    for tf_name, name, how in TF_TO_TORCH:
        if tf_name not in tensors:
            raise ModelError(f"checkpoint has no tensor {tf_name!r}; not a musicnn checkpoint", source)
        t = np.asarray(tensors[tf_name])
        if t.dtype != np.float32:
            raise ModelError(f"tensor {tf_name!r} is {t.dtype}, expected float32", source)
        if how == "conv2d" and t.ndim == 4:
            t = t.transpose(3, 2, 0, 1)
        elif how == "conv1d" and t.ndim == 4 and t.shape[2] == 1:
            t = t[:, :, 0, :].transpose(2, 1, 0)
        elif how == "dense" and t.ndim == 2:
            t = t.T
        if tuple(t.shape) != expected[name]:
            raise ModelError(
                f"tensor {tf_name!r} has shape {list(tensors[tf_name].shape)}, which does not fit musicnn's "
                f"{name} {list(expected[name])}",
                source,
            )
        out[name] = np.ascontiguousarray(t)
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """What of a converted model's config changes its output beside the weights."""
    return {key: config.get(key) for key in ("architecture", "labels", "preprocessing")}


def _serialize(state: dict[str, np.ndarray]) -> bytes:
    from safetensors.numpy import save

    return save(state, metadata={"format": "pt", "architecture": "musicnn"})


def convert_wheel(
    wheel: str | Path,
    *,
    models_dir: str | Path | None = None,
    names: Iterable[str] = ("mtt", "msd"),
    sha256: str | None = MUSICNN_WHEEL_SHA256,
) -> dict[str, Path]:
    """Convert the checkpoints of ``wheel`` and store them in the models directory.

    ``sha256`` is the hash the wheel must have (``None`` skips the check, for tests and
    home-made wheels). Returns each model's folder. Nothing is written unless every requested
    model converted cleanly.
    """
    wheel = Path(wheel)
    try:
        data = wheel.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read wheel ({exc.strerror or exc})", wheel) from None
    digest = _sha256(data)
    if sha256 is not None and digest != sha256:
        raise ModelError(
            f"wrong SHA-256 {digest[:16]}..., expected {sha256[:16]}... for {MUSICNN_WHEEL_NAME} "
            "(a different or damaged file; download it again)",
            wheel,
        )
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ModelError(f"not a valid wheel (corrupt zip: {exc})", wheel) from None
    converted: dict[str, tuple[bytes, dict[str, Any]]] = {}
    with zf:
        for name in names:
            folder, prefix, labels, training = _check_name(name)
            try:
                index = zf.read(prefix + ".index")
                shard = zf.read(prefix + ".data-00000-of-00001")
            except KeyError as exc:
                raise ModelError(
                    f"wheel has no {prefix.rstrip('/').rsplit('/', 1)[-1]} checkpoint ({exc.args[0]})", wheel
                ) from None
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise ModelError(f"corrupt zip member under {prefix} ({exc})", wheel) from None
            except Exception as exc:  # zlib.error and friends from a damaged deflate stream
                raise ModelError(f"corrupt zip member under {prefix} ({type(exc).__name__}: {exc})", wheel) from None
            source = f"{wheel}:{prefix}"
            state = tf_to_state_dict(TensorBundle(index, [shard], source=source).read_all(), source=source)
            weights = _serialize(state)
            config = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "architecture": dict(ARCHITECTURE),
                "name": folder,
                "labels": list(labels),
                "training_data": training,
                "preprocessing": dict(PREPROCESSING),
                "source": {
                    "package": MUSICNN_REQUIREMENT,
                    "wheel": wheel.name,
                    "wheel_sha256": digest,
                    "checkpoint": prefix,
                    "license": "ISC, (c) Music Technology Group, Universitat Pompeu Fabra 2019",
                },
                "converter_version": CONVERTER_VERSION,
                "weights_file": "model.safetensors",
            }
            config["weights_sha256"] = tensors_digest(weights, _digest_settings(config))
            converted[name] = (weights, config)
    out: dict[str, Path] = {}
    for name, (weights, config) in converted.items():
        target = model_dir(name, models_dir=models_dir)
        try:
            target.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target / "model.safetensors", weights)
            atomic_write_bytes(target / "config.json", (json.dumps(config, indent=1) + "\n").encode())
        except OSError as exc:
            raise ModelError(f"cannot write converted model ({exc.strerror or exc})", target) from None
        out[name] = target
    return out


# --------------------------------------------------------------------------- loading


def read_converted(folder: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and check a converted model folder: ``(state dict as arrays, config)``.

    Checks the config's format and converter version, the weights' digest, and every
    tensor's name and shape against the network. The config returned has the digest as
    ``weights_sha256``, also for a model converted before the digest covered only the tensors.
    """
    folder = Path(folder)
    cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
    try:
        config = json.loads(cfg_path.read_text())
        weights = w_path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(f"converted model is incomplete ({Path(exc.filename).name} missing)", folder) from None
    except OSError as exc:
        raise ModelError(f"cannot read converted model ({exc.strerror or exc})", folder) from None
    except ValueError as exc:
        raise ModelError(f"config.json is not valid JSON ({exc})", folder) from None
    if (
        not isinstance(config, dict)
        or config.get("format") != FORMAT
        or not isinstance(config.get("architecture"), dict)
    ):
        raise ModelError("config.json is not a tuneseek model config", folder)
    if config["architecture"].get("name") != "musicnn":
        raise ModelError(f"architecture is {config['architecture'].get('name')!r}, not musicnn", folder)
    if config.get("converter_version") != CONVERTER_VERSION:
        raise ModelError(
            f"converted by converter version {config.get('converter_version')}, this tuneseek needs {CONVERTER_VERSION}",
            folder,
        )
    try:
        digest = tensors_digest(weights, _digest_settings(config))
    except ValueError:
        digest = None  # not a whole safetensors file: it cannot match
    stored = config.get("weights_sha256")
    # Conversions made before tensors_digest stored the SHA-256 of the file's bytes: the same
    # tensors, so they are as good, and the caller gets the digest that names them now.
    if stored is None or stored not in (digest, _sha256(weights)):
        raise ModelError("model.safetensors does not match its config.json (damaged or half-written)", folder)
    try:
        from safetensors.numpy import load

        state = load(weights)
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"model.safetensors is not readable ({exc})", folder) from None
    expected = _expected_shapes()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ModelError(f"weights do not fit musicnn (missing {missing[:3]}, unexpected {extra[:3]})", folder)
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise ModelError(f"tensor {key!r} has shape {list(state[key].shape)}, musicnn needs {list(shape)}", folder)
    labels = config.get("labels")
    if not isinstance(labels, list) or len(labels) != config["architecture"].get("num_classes"):
        raise ModelError("config.json's labels do not match the number of outputs", folder)
    config["weights_sha256"] = digest
    return state, config


def downloads_allowed() -> bool:
    """False when ``$TUNESEEK_OFFLINE`` is set (to anything but ``0``): never run pip then."""
    return os.environ.get("TUNESEEK_OFFLINE", "0").strip().lower() in ("", "0", "false", "no")


def ensure_converted(
    name: str = "mtt",
    *,
    models_dir: str | Path | None = None,
    wheel: str | Path | None = None,
    download: bool | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The converted weights and config of musicnn ``name``, converting them first if needed.

    Uses the converted copy in the models directory when it is there and sound; otherwise
    converts it (and the other vocabulary, from the same wheel) from the wheel found by
    :func:`find_wheel`, or, when downloads are allowed (``download``, by default unless
    ``$TUNESEEK_OFFLINE`` is set) and none is found, from a wheel fetched with pip. NumPy
    only: a parent process can check the models without importing torch.
    """
    folder = model_dir(name, models_dir=models_dir)
    download = downloads_allowed() if download is None else download
    try:
        return read_converted(folder)
    except ModelError as first:
        have_files = (folder / "config.json").exists() or (folder / "model.safetensors").exists()
        path = find_wheel(wheel, models_dir=models_dir)
        if path is not None:
            convert_wheel(path, models_dir=models_dir, sha256=MUSICNN_WHEEL_SHA256)
        elif download:
            with tempfile.TemporaryDirectory(prefix="tuneseek-musicnn-") as tmp:
                convert_wheel(download_wheel(tmp), models_dir=models_dir, sha256=MUSICNN_WHEEL_SHA256)
        elif have_files:
            raise ModelError(f"{first.reason}; no wheel to convert it again from: {OFFLINE_HINT}", folder) from None
        else:
            raise ModelError(
                f"musicnn {name} weights are not converted yet and no wheel was given; {OFFLINE_HINT}", folder
            ) from None
        return read_converted(folder)


def load_musicnn(
    name: str = "mtt",
    *,
    models_dir: str | Path | None = None,
    wheel: str | Path | None = None,
    download: bool | None = None,
    precision: str = "float32",
):
    """The pretrained musicnn tagger ``name`` ("mtt" or "msd") as ``(model, config)``.

    The weights come from :func:`ensure_converted`. The model is in inference mode, on the
    CPU, with float32 weights; ``precision="bfloat16"`` runs the front end's matrix products
    in bfloat16 (an explicit opt-in: about 1.8x faster on CPUs with AVX512-BF16, tag
    probabilities within ~0.005 of float32; the parity figures hold for float32 only).
    """
    import torch  # when a model is loaded, not on import: the labels and paths need no torch

    from tuneseek.models.musicnn import Musicnn

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    if precision not in dtypes:
        raise ModelError(f"unknown precision {precision!r} (choose from {', '.join(dtypes)})")
    state, config = ensure_converted(name, models_dir=models_dir, wheel=wheel, download=download)
    model = Musicnn(**_arch_kwargs())
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=True)
    model.eval()
    model.gemm_dtype = dtypes[precision]
    model.labels = tuple(config["labels"])  # handy for callers: output index -> tag name
    return model, config
