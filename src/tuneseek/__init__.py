"""tuneseek: music retrieval — identify clips, and (later) tag, embed and search a collection.

The public entry point is :class:`tuneseek.library.Library`. It is imported lazily so
that ``import tuneseek`` stays cheap for the command line.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Library", "Match", "__version__"]


def __getattr__(name: str):
    if name in ("Library", "Match"):
        from tuneseek import library

        return getattr(library, name)
    raise AttributeError(f"module 'tuneseek' has no attribute {name!r}")
