"""Where this machine keeps models: converted pretrained weights, and what is computed from them once.

Plain Python (no torch), so that the engines that only need the place (the text side keeps its
tag vectors there) import nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_models_dir"]


def default_models_dir() -> Path:
    """``$TUNESEEK_MODELS``, else ``$XDG_CACHE_HOME/tuneseek/models``, else ``~/.cache/tuneseek/models``."""
    env = os.environ.get("TUNESEEK_MODELS")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    return (Path(cache).expanduser() if cache else Path.home() / ".cache") / "tuneseek" / "models"
