"""What names a model's version: a digest of its tensors and of the settings it is used with.

Plain Python (no torch, no safetensors): the pretrained musicnn conversions
(:mod:`tuneseek.embed.weights`) and the checkpoints of trained runs
(:func:`tuneseek.models.checkpoint.weights_digest`) are both named by it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["tensors_digest"]


def tensors_digest(weights: bytes, settings: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of the tensors of a safetensors file and of the settings they are used with.

    It covers each tensor's name, dtype, shape and bytes, in name order, then ``settings`` as
    canonical JSON, and nothing else of the file: safetensors writes its header's metadata in
    a random order, so two saves of the same tensors differ in bytes. A model's version is
    named by this digest, so converting the same weights again (after the model cache is lost)
    gives the same version and the library does not re-tag every track. Raises ``ValueError``
    when ``weights`` is not a whole safetensors file.
    """
    if len(weights) < 8:
        raise ValueError("too short for a safetensors file")
    size = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + size])  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    if not isinstance(header, dict):
        raise ValueError("the safetensors header is not a JSON object")
    data = memoryview(weights)[8 + size :]
    h = hashlib.sha256()
    for name in sorted(key for key in header if key != "__metadata__"):
        try:
            entry = header[name]
            begin, end = entry["data_offsets"]
            described = json.dumps([name, entry["dtype"], entry["shape"], end - begin])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"tensor {name!r} is not described as safetensors describes a tensor") from None
        if not 0 <= begin <= end <= len(data):
            raise ValueError(f"tensor {name!r} lies outside the file")
        h.update(described.encode())  # its byte count in it: where the bytes end is never ambiguous
        h.update(data[begin:end])
    h.update(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()
