"""The fixed parameters of the landmark fingerprint.

They are part of the library's on-disk format: an index built with one set
cannot be queried with another, so :data:`FINGERPRINT_VERSION` is stored in the
library manifest and checked on open.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FingerprintParams:
    """Analysis, peak-picking and pairing settings.

    At 8 kHz with a 512-point FFT and a hop of 256 samples, one frame is 32 ms
    and one bin 15.6 Hz; the 0–4 kHz band covers phone recordings too.
    """

    sr: int = 8000
    n_fft: int = 512
    hop: int = 256
    #: lowest and highest FFT bins a peak may sit in (~ 80 Hz .. 3.9 kHz)
    min_bin: int = 5
    max_bin: int = 250
    #: a peak is the maximum of its (2*t_radius+1) x (2*f_radius+1) neighbourhood
    t_radius: int = 3
    f_radius: int = 8
    #: whitening: a peak's strength is its log magnitude minus the local mean
    #: over this many frames x bins
    smooth_t: int = 15
    smooth_f: int = 31
    #: strongest peaks kept per frame, and minimum strength (log-magnitude units)
    peaks_per_frame: int = 3
    min_strength: float = 0.6
    #: absolute floor on magnitude, below which a frame counts as silence
    floor: float = 1e-3
    #: pairing: targets lie 1..dt_max frames after the anchor, within |df| < df_max bins
    dt_max: int = 63
    df_max: int = 64
    fanout: int = 5
    #: peaks looked ahead (in time order) when searching pair targets
    lookahead: int = 40

    @property
    def frames_per_second(self) -> float:
        return self.sr / self.hop


DEFAULT = FingerprintParams()

#: Bumped whenever anything that changes the stored hashes changes.
FINGERPRINT_VERSION = "landmark-1"
