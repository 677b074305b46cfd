"""Chunk-causal variant: no output frame depends on a later chunk (GDN reverse scans, short conv,
softmax attention, temporal FFN conv all respect chunk ends)."""
from __future__ import annotations

import pytest
import torch

from dit_oracle import inputs, make_pair, run_ours
from sana_wm_core.model import SanaWMConfig, SanaWMTransformer, chunk_ids, chunk_starts


def test_chunk_split():
    assert chunk_starts(21, 3) == [0, 4, 7, 10, 13, 16]  # 4,3,3,3,3,5 frames
    assert chunk_starts(7, 3, "uniform") == [0, 3]
    assert chunk_ids(8, 3) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert chunk_starts(5, None) == [0]


@pytest.fixture(scope="module")
def models():
    bidir, _ = make_pair(11, softmax_every_n=2)
    causal = SanaWMTransformer(SanaWMConfig(**{**bidir.config.to_dict(), "chunk_size": 2})).eval()
    causal.load_state_dict(bidir.state_dict())
    return bidir, causal


def test_future_chunk_does_not_leak(models):
    _, causal = models
    F = 7  # chunks (first_chunk_plus_one, size 2): frames 0-2 | 3-4 | 5-6
    assert chunk_ids(F, 2) == [0, 0, 0, 1, 1, 2, 2]
    kw = inputs(causal.config, B=2, F=F, h=3, w=4)
    base = run_ours(causal, kw)
    pert = dict(kw)
    g = torch.Generator().manual_seed(9)
    x = kw["hidden_states"].clone()
    x[:, :, 5:] += torch.randn(x[:, :, 5:].shape, generator=g)
    cam = kw["camera_conditions"].clone()
    cam[:, 5:, :16] += 0.3 * torch.randn(cam[:, 5:, :16].shape, generator=g)
    t = kw["timestep"].clone()
    t[:, :, 5:] = 999.0
    pl = kw["chunk_plucker"].clone()
    pl[:, :, 5:] += 1.0
    pert.update(hidden_states=x, camera_conditions=cam, timestep=t, chunk_plucker=pl)
    out = run_ours(causal, pert)
    assert torch.equal(out[:, :, :5], base[:, :, :5])  # chunks 0 and 1 untouched
    assert (out[:, :, 5:] - base[:, :, 5:]).abs().max() > 1e-3  # the perturbed chunk did change

    pert2 = dict(kw, hidden_states=kw["hidden_states"].clone())
    pert2["hidden_states"][:, :, 3:5] += 1.0  # middle chunk: only frames >= 3 may move
    out2 = run_ours(causal, pert2)
    assert torch.equal(out2[:, :, :3], base[:, :, :3])
    assert (out2[:, :, 5:] - base[:, :, 5:]).abs().max() > 1e-3  # the past does flow forward


def test_bidirectional_model_does_see_the_future(models):
    bidir, causal = models
    kw = inputs(bidir.config, B=1, F=7, h=3, w=4)
    x = kw["hidden_states"].clone()
    x[:, :, 5:] += 1.0
    a, b = run_ours(bidir, kw), run_ours(bidir, dict(kw, hidden_states=x))
    assert (a[:, :, :5] - b[:, :, :5]).abs().max() > 1e-4
    assert not torch.allclose(run_ours(causal, kw), a)  # and the variants differ
