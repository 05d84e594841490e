"""tuneseek: music retrieval — identify clips, tag, embed, find similar tracks, search by description,
and train models on your own data.

The public entry point is :class:`tuneseek.library.Library`; what it answers with are the types of
:mod:`tuneseek.results`. Both are imported lazily, so that ``import tuneseek`` stays cheap for
the command line.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Library", "Match", "TrackInfo", "__version__"]


def __getattr__(name: str):
    if name == "Library":
        from tuneseek import library

        return library.Library
    if name in ("Match", "TrackInfo"):
        from tuneseek import results

        return getattr(results, name)
    raise AttributeError(f"module 'tuneseek' has no attribute {name!r}")
