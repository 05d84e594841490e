"""The learned fingerprint's network: unit vectors, independent of level and of the rest of the batch."""

import json

import numpy as np
import torch

from tuneseek.models.fingerprint_net import FingerprintNet, audible_segments
from tuneseek.models.registry import build, create


def _segments(batch: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(8000) / 8000
    tones = np.stack([0.3 * np.sin(2 * np.pi * rng.uniform(300, 3000) * t) for _ in range(batch)])
    return torch.from_numpy((tones + rng.normal(0, 0.05, tones.shape)).astype(np.float32))


def test_fingerprint_vectors_are_unit_length_and_rebuild_from_config():
    torch.manual_seed(0)
    model = create("fingerprint", dim=32, width=4, hidden=16).eval()
    rebuilt = build(json.loads(json.dumps(model.config())))
    rebuilt.load_state_dict(model.state_dict())
    x = _segments(3)
    with torch.inference_mode():
        z = model.embed(x)
        assert z.shape == (3, 32)
        assert torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
        assert torch.allclose(rebuilt(x), z, atol=1e-6)


def test_a_quieter_copy_and_another_batch_give_the_same_vector():
    torch.manual_seed(0)
    model = FingerprintNet(dim=32, width=4, hidden=16).eval()
    x = _segments(4, seed=1)
    with torch.inference_mode():
        z = model(x)
        assert torch.allclose(model(x * 0.1), z, atol=1e-4)  # 20 dB quieter
        assert torch.allclose(model(x[2:3]), z[2:3], atol=1e-5)  # a batch of one


def test_digital_silence_is_not_an_audible_segment():
    x = _segments(2).numpy()
    x[1] = 0.0
    assert audible_segments(x).tolist() == [True, False]
