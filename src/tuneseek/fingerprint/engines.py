"""Which identifier answers a clip: the landmarks, the library's learned fingerprint, or both fused.

A library always has its landmark index. It has a learned fingerprint when a fingerprint run was
given to it (``tuneseek index --fingerprint RUN``, :meth:`tuneseek.library.Library.use_model` with
role "fingerprint"): the catalogue's models then name the run, and :class:`Engines` loads its
network on the first query that needs it (PyTorch is imported then, not before). A run folder may
hold a ``calibration.json`` (written by ``benchmarks/learned_fingerprint.py`` from clips it does not
score): the learned engine's no-match threshold and confidence then come from it, else from the
null-derived default of :mod:`tuneseek.fingerprint.learned`.

``fused`` (:class:`~tuneseek.fingerprint.fusion.FusedIdentifier`) answers by default where the
library's learned fingerprint comes with a fitted fusion (its run folder's ``calibration.json`` holds
"fusion", as the shipped model's does), ``landmarks`` otherwise. On the identification benchmark
(benchmarks/RESULTS.md, issue 15) fused with the shipped model is at least as accurate as the landmarks
in every cell and far better on short noisy or pitch-shifted clips (3 s at 0 dB SNR: 90.2 against
78.8 %), and names a song for no clip of music not in the library that the landmarks do not also name
(0 / 0.8 / 0.8 % of 10 / 5 / 3 s clips of rock, 0 % of a second source). A run without a fitted fusion
would be judged with weights fitted for another model's confidences: it is asked for by name
(``identify --engine fused``).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tuneseek.errors import ModelError, UsageError
from tuneseek.fingerprint.fusion import DEFAULT_CORROBORATION, Corroboration, FusedIdentifier
from tuneseek.identifier import Identifier
from tuneseek.store.catalog import Catalog

__all__ = ["ENGINES", "FINGERPRINT_ROLE", "BUILTIN_FINGERPRINT", "Engines", "fingerprint_folder"]

ENGINES = ("landmarks", "learned", "fused")
#: The role a fingerprint run has among a library's models.
FINGERPRINT_ROLE = "fingerprint"
#: The fingerprint model shipped in the package: ``--fingerprint builtin``.
BUILTIN_FINGERPRINT = Path(__file__).resolve().parent / "builtin"
CALIBRATION_FILE = "calibration.json"


def fingerprint_folder(name: str | Path) -> Path:
    """The run folder ``name`` stands for: the shipped model for "builtin", else the folder itself."""
    return BUILTIN_FINGERPRINT if str(name) == "builtin" else Path(name).expanduser()


class Engines:
    """The identifiers of one library by engine name; ``landmarks`` is the library's landmark finder
    (an unsharded index, or its shards)."""

    def __init__(self, catalog: Catalog, landmarks: Identifier):
        self.catalog = catalog
        self.landmarks = landmarks
        self._learned = None
        self._learned_key: tuple | None = None
        self._corroboration = DEFAULT_CORROBORATION
        self._lock = threading.Lock()

    def fingerprint_model(self) -> tuple[str, str] | None:
        """``(extractor name, run folder)`` of the library's learned fingerprint, or ``None``."""
        for name, model in self.catalog.models().items():
            if model.get("role") == FINGERPRINT_ROLE:
                return name, model["folder"]
        return None

    def default(self) -> str:
        """The engine that answers when none is named: "fused" where the learned fingerprint's run holds a
        fitted fusion, else "landmarks" (see the module docstring for why). A calibration that cannot be read
        leaves the landmarks as the default; asking for the learned engines then says what is wrong with it."""
        model = self.fingerprint_model()
        if model is None:
            return "landmarks"
        try:
            fitted = json.loads((Path(model[1]) / CALIBRATION_FILE).read_text())
        except (OSError, ValueError):
            return "landmarks"
        return "fused" if isinstance(fitted, dict) and "fusion" in fitted else "landmarks"

    def learned(self):
        """The library's :class:`~tuneseek.fingerprint.learned.LearnedIndex` (loaded once per run folder and
        weights), or ``None`` when it has no learned fingerprint."""
        model = self.fingerprint_model()
        if model is None:
            return None
        # the network's modules import torch: only when a query needs them (identify starts in a quarter second)
        try:
            from tuneseek.embed.trained import load_trained
            from tuneseek.fingerprint.learned import DEFAULT_CALIBRATION, Calibration, LearnedIndex
        except ImportError as e:
            raise UsageError(
                f"this library's learned fingerprint needs {e.name or 'PyTorch'}: pip install 'tuneseek[models]'"
            ) from None
        trained = load_trained(model[1])
        key = (model[1], trained.version)
        with self._lock:
            if self._learned_key != key:
                calibration, self._corroboration = DEFAULT_CALIBRATION, DEFAULT_CORROBORATION
                path = Path(model[1]) / CALIBRATION_FILE
                if path.exists():
                    try:
                        fitted = json.loads(path.read_text())
                        calibration = Calibration(**fitted["calibration"])
                        if "fusion" in fitted:
                            self._corroboration = Corroboration(**fitted["fusion"])
                    except (ValueError, KeyError, TypeError) as e:
                        raise ModelError(f"{CALIBRATION_FILE} is not a calibration ({e})", model[1]) from None
                self._learned = LearnedIndex.of(self.catalog, trained, calibration=calibration)
                self._learned_key = key
            return self._learned

    def get(self, engine: str | None = None) -> Identifier:
        """The identifier called ``engine`` (default: :meth:`default`); :class:`UsageError` for an unknown
        name, or for ``learned`` and ``fused`` in a library without a learned fingerprint."""
        engine = engine or self.default()
        if engine not in ENGINES:
            raise UsageError(f"unknown identification engine {engine!r} ({', '.join(ENGINES)})")
        if engine == "landmarks":
            return self.landmarks
        learned = self.learned()
        if learned is None:
            raise UsageError(
                f"engine {engine!r} needs a learned fingerprint, and this library has none: "
                "tuneseek index DIR --fingerprint builtin (or a run made by tuneseek train fingerprint)"
            )
        if engine == "learned":
            return learned
        return FusedIdentifier(self.landmarks, learned, corroboration=self._corroboration)

    def close(self) -> None:
        if self._learned is not None:
            self._learned.close()
