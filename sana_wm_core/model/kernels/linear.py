"""Linear layers whose weights may live on another device or be stored in fp8 (e4m3 with a per-row scale).

Weights are cast to the activation's device and dtype at call time, so a partially loaded model (ComfyUI
lowvram) or an fp8 checkpoint runs without a second resident copy. The fp8 format and its (de)quantiser are
shared with the refiner: sana_wm_core/runtime/fp8.py.

Kernel choice: on a CPU, in fp32 and inference, large products run through oneDNN with the weight packed for
the call (`torch.ops.mkldnn._linear_pointwise`, PyTorch's own CPU inference linear). At the DiT's shapes
(K = 448 or 1344, N <= 2688) MKL's sgemm behind `F.linear` reaches 60-70% of the core's fp32 peak, oneDNN
15-35% more, and it fuses the FFN's SiLU into the product. The result is an fp32 GEMM like the other (the
order of the K-sums differs: ~1e-6 relative). Everything else (GPU, bf16, autograd, small products, a build
without oneDNN) takes `F.linear`.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ...runtime.fp8 import FP8_DTYPE, dequantize, quantize_fp8

__all__ = ["FP8_DTYPE", "dequantize", "quantize_fp8", "linear", "ACTIVATIONS"]

ACTIVATIONS = {None: "none", "silu": "swish"}  # ours -> oneDNN's post-op name
ONEDNN_MIN_ROWS = 1024  # below this, packing the weight costs more than it saves


def _onednn_available() -> bool:
    return bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
                and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


_ONEDNN = _onednn_available()


def _use_onednn(x: torch.Tensor, w: torch.Tensor) -> bool:
    if not _ONEDNN or x.device.type != "cpu" or x.dtype != torch.float32 or w.dtype != torch.float32:
        return False
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        return False
    return x.dim() >= 2 and x.stride(-1) == 1 and x.numel() // max(x.shape[-1], 1) >= ONEDNN_MIN_ROWS


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
           scale: Optional[torch.Tensor] = None, activation: Optional[str] = None) -> torch.Tensor:
    """y = act(x W^T + b) with W cast (and de-scaled when fp8) to x's dtype and device; act None or 'silu'."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(map(str, ACTIVATIONS))}, got {activation!r}")
    b = None
    if bias is not None:
        b = bias.to(device=x.device, dtype=x.dtype, non_blocking=True)
    w = dequantize(weight, scale, x)
    if _use_onednn(x, w):
        rows = x.numel() // x.shape[-1]
        packed = torch.ops.mkldnn._reorder_linear_weight(w, rows)
        return torch.ops.mkldnn._linear_pointwise(x, packed, b, ACTIVATIONS[activation], [], "")
    y = F.linear(x, w, b)
    return F.silu(y, inplace=True) if activation == "silu" else y
