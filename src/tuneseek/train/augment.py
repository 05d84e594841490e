"""Random audio augmentation for training: gain, pink noise, EQ (the crop itself is the time shift).

Applied to raw audio in the data-loading worker processes, so that every epoch sees new
versions of each excerpt. Noise and gain reuse :mod:`tuneseek.degrade` (the degradations the
identification benchmark uses); the EQ is pedalboard's shelving and peaking biquads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuneseek.degrade import Degradation, degrade


@dataclass(frozen=True)
class Augment:
    """What to randomise, and how much. ``Augment.none()`` changes nothing."""

    gain_db: float = 6.0  # uniform in +-gain_db
    noise_prob: float = 0.5
    snr_db: tuple[float, float] = (15.0, 40.0)  # pink noise, uniform SNR in this range
    eq_prob: float = 0.5
    eq_db: float = 6.0  # low shelf, high shelf and one peak, each uniform in +-eq_db

    @classmethod
    def none(cls) -> Augment:
        return cls(gain_db=0.0, noise_prob=0.0, eq_prob=0.0)

    def __call__(self, x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        steps = []
        if self.noise_prob and rng.random() < self.noise_prob:
            steps.append(Degradation("noise", float(rng.uniform(*self.snr_db))))
        if self.gain_db:
            steps.append(Degradation("gain", float(rng.uniform(-self.gain_db, self.gain_db))))
        y = degrade(x, sr, steps, rng=rng) if steps else x
        if self.eq_prob and rng.random() < self.eq_prob:
            y = self._eq(y, sr, rng)
        return np.asarray(y, np.float32)

    def _eq(self, x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        import pedalboard

        g = lambda: float(rng.uniform(-self.eq_db, self.eq_db))  # noqa: E731
        board = pedalboard.Pedalboard(
            [
                pedalboard.LowShelfFilter(cutoff_frequency_hz=float(rng.uniform(100, 400)), gain_db=g()),
                pedalboard.HighShelfFilter(
                    cutoff_frequency_hz=float(rng.uniform(2000, min(8000, 0.4 * sr))), gain_db=g()
                ),
                pedalboard.PeakFilter(
                    cutoff_frequency_hz=float(np.exp(rng.uniform(np.log(300), np.log(0.3 * sr)))),
                    gain_db=g(),
                    q=float(rng.uniform(0.5, 2.0)),
                ),
            ]
        )
        return board(x[None, :].astype(np.float32), sr)[0]
