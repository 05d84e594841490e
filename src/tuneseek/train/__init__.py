"""Training: dataset items and their cache, Lightning tasks, the metrics they validate with, and runs
that end in a checkpoint folder. :mod:`tuneseek.evaluate` builds on it, never the other way."""

from __future__ import annotations

import importlib.util

from tuneseek.errors import UsageError

#: What training imports beyond the base install (module name, what it is), all in the ``train`` extra.
TRAINING_STACK = (
    ("torch", "PyTorch"),
    ("lightning", "PyTorch Lightning"),
    ("safetensors", "safetensors"),
    ("sklearn", "scikit-learn"),
    ("matplotlib", "matplotlib"),
)


def require_training_stack() -> None:
    """One clear line instead of an ImportError when a package of the ``train`` extra is missing.

    Looks the packages up without importing them (torch and Lightning take seconds to import).
    """
    for name, what in TRAINING_STACK:
        if importlib.util.find_spec(name) is None:
            raise UsageError(
                f"training needs the train extra ({what} is missing): "
                "pip install torch==2.13.0 && pip install 'tuneseek[train]'"
            )
