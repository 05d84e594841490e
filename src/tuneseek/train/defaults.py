"""Training settings chosen for the data when a person leaves them out: windows per item per epoch,
epochs, patience, learning rate, and a pretrained network's front-end learning-rate scale.

Fixed defaults made for MagnaTagATune (19 000 training clips: 1 200 optimizer steps an epoch)
starve a small dataset: on 300 clips an epoch of one window per item is 19 steps at batch 16,
and 30 epochs stopped a from-scratch CRNN under-trained (measured: 30.9 % balanced accuracy
after 8 epochs, 45.5 % after 20 and still rising). So the choice counts optimizer steps:

* windows per item: enough that an epoch draws at least :data:`EPOCH_WINDOWS` windows, but no
  more than the typical item holds side by side (a 30 s window of a 30 s clip is the same
  window however often it is drawn; more draws of it would only make epochs longer);
* epochs: enough for :data:`TRAIN_STEPS` steps (fewer for a pretrained network, which starts
  near a good solution), at least the :data:`MIN_EPOCHS` of large datasets, at most
  :data:`MAX_EPOCHS`; early stopping usually ends the run before;
* patience: :data:`PATIENCE_STEPS` steps' worth of epochs, at least :data:`MIN_PATIENCE`, at
  most :data:`MAX_PATIENCE`, so a small set is not stopped by the noise of a few validation clips;
* learning rate: 1e-3 from scratch; 3e-4 for a pretrained network, whose layers large steps
  would undo, with its front end at a tenth of that on a GPU (:data:`FRONTEND_LR_SCALE`) and
  frozen on a CPU, where training the front end costs 9x a frozen one (measured: 0.40 against
  0.045 s a 3 s window, one core), i.e. hours an epoch for a few hundred clips.

On a large dataset these come back to the fixed defaults (one window per item, 30 epochs,
patience 5, 1e-3). Values a person sets always win.

The learned fingerprint (``train fingerprint``, :func:`choose_fingerprint`) counts *pairs*: 64 a
batch (:data:`FINGERPRINT_BATCH`; Chang et al. used 640 on a GPU, where more negatives help, but
a step of 64 pairs already takes about half a second on one CPU thread), enough pairs per track
that an epoch is :data:`FINGERPRINT_EPOCH_PAIRS` (50 steps, so that validation and checkpoints
come every half minute or so on a CPU), and a bounded number of steps: :data:`FINGERPRINT_STEPS`,
about half an hour on two CPU cores, or many more on a GPU. Its learning rate is 3e-4: on 32
synthetic tracks (default network, batch 64, full degradation chain) the validation top-1 after
30 / 60 steps was 0.35 / 0.45 at 3e-4, 0.23 / 0.42 at 1e-4, and 0.03 / 0.02 at 1e-3, which was
still at 0.07 after 240 steps.
"""

from __future__ import annotations

import math

__all__ = [
    "EPOCH_WINDOWS",
    "TRAIN_STEPS",
    "PATIENCE_STEPS",
    "LR",
    "FRONTEND_LR_SCALE",
    "FRONTEND_LR_SCALE_CPU",
    "FINGERPRINT_BATCH",
    "BATCH",
    "choose",
    "choose_fingerprint",
    "batch_size",
]

#: Windows an epoch draws at least, where the items hold that many distinct ones.
EPOCH_WINDOWS = 512
#: Optimizer steps a run is given (epochs permitting), from scratch or from a pretrained network.
TRAIN_STEPS = {"scratch": 3000, "pretrained": 1000}
#: Optimizer steps without a better validation metric before stopping.
PATIENCE_STEPS = {"scratch": 400, "pretrained": 250}
LR = {"scratch": 1e-3, "pretrained": 3e-4}
#: A pretrained front end's learning rate, as a share of ``lr``: on a GPU, and on a CPU (frozen).
FRONTEND_LR_SCALE = 0.1
FRONTEND_LR_SCALE_CPU = 0.0
MIN_EPOCHS, MAX_EPOCHS = 30, 200
MIN_PATIENCE, MAX_PATIENCE = 5, 25
#: Items per optimizer step where a person sets none: windows (or triplets) for the networks, pairs for a fingerprint.
BATCH = 16
FINGERPRINT_BATCH = 64
#: The learned fingerprint: pairs an epoch draws at least (where the tracks hold as many segments), optimizer steps
#: a run is given (on a CPU, on an accelerator), steps without a better validation before stopping, learning rate.
FINGERPRINT_EPOCH_PAIRS = 50 * FINGERPRINT_BATCH
FINGERPRINT_STEPS = {"cpu": 3000, "accelerator": 30000}
FINGERPRINT_PATIENCE_STEPS = 750
FINGERPRINT_MIN_EPOCHS = 5
FINGERPRINT_LR = 3e-4


def choose(
    *,
    items: int,
    windows_held: int,
    batch_size: int,
    pretrained: bool,
    windows_per_item: int | None = None,
    on_cpu: bool = False,
) -> dict[str, int | float]:
    """The settings for ``items`` training items that each hold ``windows_held`` side-by-side windows,
    ``batch_size`` items per optimizer step, from a ``pretrained`` network or not; ``windows_per_item``
    when a person set it (epochs and patience are then counted with it); ``on_cpu`` when it trains on the
    CPU (a pretrained front end is then frozen).

    Returns ``windows_per_item``, ``epochs``, ``patience``, ``lr``, and ``frontend_lr_scale`` when pretrained.
    """
    start = "pretrained" if pretrained else "scratch"
    if windows_per_item is None:
        windows_per_item = max(1, min(windows_held, math.ceil(EPOCH_WINDOWS / max(1, items))))
    steps = max(1, math.ceil(items * windows_per_item / batch_size))
    chosen: dict[str, int | float] = {
        "windows_per_item": windows_per_item,
        "epochs": min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TRAIN_STEPS[start] / steps))),
        "patience": min(MAX_PATIENCE, max(MIN_PATIENCE, math.ceil(PATIENCE_STEPS[start] / steps))),
        "lr": LR[start],
    }
    if pretrained:
        chosen["frontend_lr_scale"] = FRONTEND_LR_SCALE_CPU if on_cpu else FRONTEND_LR_SCALE
    return chosen


def batch_size(kind: str) -> int:
    """Items per optimizer step for a training ``kind`` where a person sets none."""
    return FINGERPRINT_BATCH if kind == "fingerprint" else BATCH


def choose_fingerprint(
    *, items: int, segments_held: int, batch_size: int, pairs_per_item: int | None = None, on_cpu: bool = False
) -> dict[str, int | float]:
    """The settings of a fingerprint run on ``items`` training tracks that each hold ``segments_held`` segments
    (at the fingerprint's hop), ``batch_size`` pairs a step, ``pairs_per_item`` when a person set it; ``on_cpu``
    bounds the steps for a CPU. Returns ``windows_per_item`` (pairs per track per epoch), ``epochs``,
    ``patience`` and ``lr``."""
    if pairs_per_item is None:
        pairs_per_item = max(1, min(segments_held, math.ceil(FINGERPRINT_EPOCH_PAIRS / max(1, items))))
    steps = max(1, math.ceil(items * pairs_per_item / batch_size))
    budget = FINGERPRINT_STEPS["cpu" if on_cpu else "accelerator"]
    return {
        "windows_per_item": pairs_per_item,
        "epochs": min(MAX_EPOCHS, max(FINGERPRINT_MIN_EPOCHS, math.ceil(budget / steps))),
        "patience": min(MAX_PATIENCE, max(MIN_PATIENCE, math.ceil(FINGERPRINT_PATIENCE_STEPS / steps))),
        "lr": FINGERPRINT_LR,
    }
