"""The DiT's linear kernel choice (sana_wm_core/model/kernels/linear.py): oneDNN for large fp32 CPU products in
inference, `F.linear` everywhere else, both giving the same fp32 product (and the same fused SiLU)."""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from dit_oracle import inputs, make_pair, rel_diff, run_ours, run_ref
kernel = importlib.import_module("sana_wm_core.model.kernels.linear")  # the package re-exports `linear`, the function

needs_onednn = pytest.mark.skipif(not kernel._ONEDNN, reason="this PyTorch build has no oneDNN linear")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_large_fp32_products_take_onednn_and_equal_f_linear(bias, activation):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 400, 96, generator=g)  # 2400 rows
    w, b = torch.randn(160, 96, generator=g), torch.randn(160, generator=g) if bias else None
    assert kernel._use_onednn(x, w)
    want = F.linear(x, w, b)
    if activation == "silu":
        want = F.silu(want)
    with torch.no_grad():
        got = kernel.linear(x, w, b, activation=activation)
    assert got.shape == want.shape
    assert _rel(got, want) < 2e-6


@needs_onednn
def test_a_strided_input_row_view_is_read_in_place():
    """The FFN's GLU value half is a column slice of a wider tensor (row stride 2x its width)."""
    u = torch.randn(1200, 64)
    val = u[:, :32]
    w = torch.randn(48, 32)
    assert kernel._use_onednn(val, w)
    assert _rel(kernel.linear(val, w), F.linear(val, w)) < 2e-6


@pytest.mark.parametrize("case", ["few rows", "bf16", "autograd"])
def test_everything_else_is_f_linear_bit_for_bit(case):
    x, w, b = torch.randn(64 if case == "few rows" else 2048, 32), torch.randn(24, 32), torch.randn(24)
    if case == "bf16":
        x, w, b = x.bfloat16(), w.bfloat16(), b.bfloat16()
    if case == "autograd":
        w.requires_grad_(True)
    assert not kernel._use_onednn(x, w)
    got = kernel.linear(x, w, b, activation="silu")
    assert torch.equal(got, F.silu(F.linear(x, w, b)))
    if case == "autograd":
        got.sum().backward()
        assert w.grad is not None


def test_an_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation must be one of"):
        kernel.linear(torch.randn(2, 4), torch.randn(3, 4), activation="gelu")


@needs_onednn
def test_the_dit_matches_diffusers_where_its_products_take_onednn():
    """A latent big enough (2 x 4 x 16 x 16 = 2048 tokens) that every token-wide product runs on oneDNN."""
    ours, ref = make_pair(0)
    kw = inputs(ours.config, B=2, F=4, h=16, w=16)
    rows = kw["hidden_states"].shape[0] * 4 * 16 * 16
    assert rows >= kernel.ONEDNN_MIN_ROWS
    assert rel_diff(run_ours(ours, kw), run_ref(ref, kw)) < 1e-4
