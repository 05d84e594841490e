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
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tuneseek.errors import ModelError, UsageError
from tuneseek.fingerprint.fusion import DEFAULT_CORROBORATION, MIN_CONFIDENCE, Corroboration, FusedIdentifier
from tuneseek.identifier import Candidate, Identifier
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


def _fitted(folder: str) -> dict:
    """The run's ``calibration.json`` (empty where it has none), read once while the file is unchanged: every
    query without a named engine asks whether it holds a fusion. :class:`ModelError` where it is not one."""
    path = Path(folder) / CALIBRATION_FILE
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ModelError(f"{CALIBRATION_FILE} is not a calibration ({e})", folder) from None
    return _read_fitted(folder, stamp)


@lru_cache(maxsize=8)
def _read_fitted(folder: str, stamp: int) -> dict:
    try:
        fitted = json.loads((Path(folder) / CALIBRATION_FILE).read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{CALIBRATION_FILE} is not a calibration ({e})", folder) from None
    if not isinstance(fitted, dict):
        raise ModelError(f"{CALIBRATION_FILE} is not a calibration (not a JSON object)", folder)
    return fitted


def _corroboration(folder: str) -> Corroboration:
    """The fused engine's weights for the run in ``folder``: its fitted fusion, else :data:`DEFAULT_CORROBORATION`."""
    fitted = _fitted(folder)
    try:
        return Corroboration(**fitted["fusion"]) if "fusion" in fitted else DEFAULT_CORROBORATION
    except TypeError as e:
        raise ModelError(f"{CALIBRATION_FILE} is not a calibration ({e})", folder) from None


class Engines:
    """The identifiers of one library by engine name; ``landmarks`` is the library's landmark finder
    (an unsharded index, or its shards)."""

    def __init__(self, catalog: Catalog, landmarks: Identifier):
        self.catalog = catalog
        self.landmarks = landmarks
        self._learned = None
        self._learned_key: tuple | None = None
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
            return "fused" if "fusion" in _fitted(model[1]) else "landmarks"
        except ModelError:
            return "landmarks"

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
                fitted, calibration = _fitted(model[1]), DEFAULT_CALIBRATION
                _corroboration(model[1])  # a calibration the fused engine cannot read is refused here too
                if fitted:
                    try:
                        calibration = Calibration(**fitted["calibration"])
                    except (KeyError, TypeError) as e:
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
        model = self.fingerprint_model()
        if model is None:
            raise UsageError(
                f"engine {engine!r} needs a learned fingerprint, and this library has none: "
                "tuneseek index DIR --fingerprint builtin (or a run made by tuneseek train fingerprint)"
            )
        if engine == "learned":
            return self.learned()
        return FusedIdentifier(
            self.landmarks, _LearnedWhenAsked(self, name=model[0]), corroboration=_corroboration(model[1])
        )

    def close(self) -> None:
        if self._learned is not None:
            self._learned.close()


class _LearnedWhenAsked:
    """The library's learned engine as the fused engine's second, loaded (PyTorch and the network) the first
    time it is asked: a clip the landmarks are certain of is answered without either, so ``tuneseek identify``
    of such a clip starts as fast as with the landmarks alone. Its rate is the landmarks' (the fused engine
    needs one); the learned engine's own is checked against it when it is loaded."""

    def __init__(self, engines: Engines, *, name: str):
        self._engines = engines
        self.name = name
        self.sample_rate = engines.landmarks.sample_rate

    def _loaded(self):
        learned = self._engines.learned()
        if learned.sample_rate != self.sample_rate:
            raise UsageError(
                f"cannot fuse {self._engines.landmarks.name} ({self.sample_rate} Hz) "
                f"with {learned.name} ({learned.sample_rate} Hz)"
            )
        return learned

    @property
    def version(self) -> str:
        return self._loaded().version

    def add(self, tracks: Sequence[tuple[int, Any]]) -> None:
        self._loaded().add(tracks)

    def remove(self, track_ids: Sequence[int]) -> None:
        self._loaded().remove(track_ids)

    def candidates(
        self, clip: np.ndarray, k: int = 5, *, name: str = "<samples>", floor: float = MIN_CONFIDENCE
    ) -> list[Candidate]:
        return self._loaded().candidates(clip, k, name=name, floor=floor)
