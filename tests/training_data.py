"""Generated training data and saved runs, shared by the training, evaluation and trained-model tests."""

import numpy as np
import scipy.signal as ss
import soundfile as sf

from tuneseek.models import checkpoint, registry
from tuneseek.synth import synth_catalog

SR = 16000
STYLES = (("bright", 1), ("dark", 2), ("plain", 3))


def timbre(x: np.ndarray, kind: str) -> np.ndarray:
    """Three audibly different classes from the same generator: low-passed, high-passed, as is."""
    if kind == "dark":
        return ss.lfilter(*ss.butter(4, 800 / (SR / 2)), x).astype(np.float32)
    if kind == "bright":
        return ss.lfilter(*ss.butter(4, 2000 / (SR / 2), "high"), x).astype(np.float32)
    return x


def write_styles(root, per_class: int, duration: float):
    """One folder per style ("bright", "dark", "plain"), ``per_class`` generated songs each; returns ``root``."""
    for g, seed in STYLES:
        (root / g).mkdir(parents=True)
        for i, t in enumerate(synth_catalog(per_class, duration=duration, sr=SR, seed=100 * seed)):
            sf.write(root / g / f"{g}{i}.wav", timbre(t.audio, g), SR)
    return root


def save_run(folder, arch: str, task: str, labels=(), features=None, seed: int = 0, **kwargs):
    """An untrained ``arch`` saved as `tuneseek train` saves a run (the same config keys); returns ``folder``."""
    import torch

    torch.manual_seed(seed)
    model = registry.create(arch, **kwargs)
    checkpoint.save(
        folder,
        model,
        extra={
            "labels": list(labels),
            "task": task,
            "data": {"spec": "folder:/nowhere", "options": {}, "features": features},
            "training": {"epochs_run": 1, "monitor": "val_triplet_accuracy", "best": 0.5, "best_epoch": 1},
        },
    )
    return folder
