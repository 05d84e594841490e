"""Where :class:`~tuneseek.errors.ModelError` used to live; it is one of the core's errors now, so that
:mod:`tuneseek.models` (below the engines) can raise it. Kept so that ``from tuneseek.embed.errors
import ModelError`` still works; new code imports it from :mod:`tuneseek.errors`.
"""

from tuneseek.errors import ModelError

__all__ = ["ModelError"]
