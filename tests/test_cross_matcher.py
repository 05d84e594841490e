"""The cross-attention matcher (issue 15, item 6): shapes, that it can learn a toy pair set, seeded."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tuneseek.models.cross_matcher import TOKEN_HOP, CrossAttentionMatcher

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMALL = {"dim": 32, "heads": 2, "enc_layers": 1, "cross_layers": 1, "ff": 64, "width": 8, "dropout": 0.0}


def _toy_pairs(n: int = 8, seed: int = 0):
    """Half positives (the sample is a slightly noisy cut of the origin, ``offset`` tokens in),
    half negatives (the sample is unrelated noise)."""
    rng = np.random.default_rng(seed)
    no, ns = 40 * TOKEN_HOP, 20 * TOKEN_HOP
    origins = rng.normal(0, 0.3, (n, no)).astype(np.float32)
    samples = rng.normal(0, 0.3, (n, ns)).astype(np.float32)
    offsets = rng.integers(0, 20, n)
    labels = np.arange(n) % 2
    for i in np.flatnonzero(labels):
        samples[i] = origins[i, offsets[i] * TOKEN_HOP : offsets[i] * TOKEN_HOP + ns] + rng.normal(0, 0.03, ns)
    return (
        torch.from_numpy(origins),
        torch.from_numpy(samples),
        torch.tensor(labels, dtype=torch.float32),
        torch.tensor(offsets),
    )


def _loss(model, o, s, y, off):
    logit, align = model(o, s)
    pos = y == 1
    return F.binary_cross_entropy_with_logits(logit, y) + 0.5 * model.alignment_loss(align[pos], off[pos])


def test_shapes_and_default_size():
    model = CrossAttentionMatcher().eval()
    assert 0.5e6 < sum(p.numel() for p in model.parameters()) < 1e6
    with torch.inference_mode():
        logit, align = model(torch.randn(2, 24000), torch.randn(2, 16000))
    assert logit.shape == (2,)
    assert align.shape == (2, 16000 // TOKEN_HOP, 24000 // TOKEN_HOP)  # a token per 20 ms at 8 kHz
    assert model.offset_seconds(align).shape == (2,)
    score, offset = model.alignment_score(align)
    assert score.shape == offset.shape == (2,)
    assert (score <= 0).all() and (offset >= 0).all() and (offset <= 1.0 + 1e-6).all()  # sample inside the window


def test_the_alignment_readout_finds_a_planted_diagonal():
    model = CrossAttentionMatcher(**SMALL)
    align = torch.zeros(1, 10, 30)
    align[0, torch.arange(10), torch.arange(10) + 7] = 5.0
    score, offset = model.alignment_score(align)
    assert abs(float(offset) - 7 * model.token_seconds) < 1e-6
    assert float(score) > float(model.alignment_score(torch.zeros(1, 10, 30))[0])


def test_level_does_not_change_the_answer():
    torch.manual_seed(0)
    model = CrossAttentionMatcher(**SMALL).eval()
    o, s, _, _ = _toy_pairs(2)
    with torch.inference_mode():
        assert torch.allclose(model(o * 0.1, s * 3.0)[0], model(o, s)[0], atol=1e-4)


def test_a_few_steps_on_a_toy_pair_set_reduce_the_loss():
    torch.manual_seed(0)
    model = CrossAttentionMatcher(**SMALL)
    o, s, y, off = _toy_pairs()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        before = float(_loss(model, o, s, y, off))
    for _ in range(12):
        loss = _loss(model, o, s, y, off)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(_loss(model, o, s, y, off))
    assert after < 0.6 * before


def test_deterministic_for_a_seed():
    def run(seed: int):
        torch.manual_seed(seed)
        model = CrossAttentionMatcher(**{**SMALL, "dropout": 0.1})
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        o, s, y, off = _toy_pairs(4)
        for _ in range(3):
            loss = _loss(model, o, s, y, off)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            return model(o, s)[0]

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))
