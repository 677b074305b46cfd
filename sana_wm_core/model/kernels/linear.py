"""Linear layers whose weights may live on another device or be stored in fp8 (e4m3 with a per-row scale).

Weights are cast to the activation's device and dtype at call time, so a partially loaded model (ComfyUI
lowvram) or an fp8 checkpoint runs without a second resident copy.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

FP8_DTYPE = getattr(torch, "float8_e4m3fn", None)
_FP8_MAX = 448.0


def dequantize(weight: torch.Tensor, scale: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The weight in `like`'s device and dtype, as a 2-D (out, in) matrix."""
    w = weight
    if w.device != like.device:
        w = w.to(like.device, non_blocking=True)
    if w.dtype != like.dtype:
        w = w.to(like.dtype)
    if scale is not None:
        w = w * scale.to(device=like.device, dtype=like.dtype)
    return w.reshape(w.shape[0], -1)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
           scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """y = x W^T + b with W cast (and de-scaled when fp8) to x's dtype and device."""
    b = None
    if bias is not None:
        b = bias.to(device=x.device, dtype=x.dtype, non_blocking=True)
    return F.linear(x, dequantize(weight, scale, x), b)


def quantize_fp8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-row symmetric e4m3 quantisation; returns (fp8 weight, fp32 scale of shape (out, 1, ...))."""
    if FP8_DTYPE is None:
        raise ValueError("weight dtype fp8 needs a torch build with float8_e4m3fn")
    w = weight.float()
    amax = w.reshape(w.shape[0], -1).abs().amax(dim=1).clamp_min(1e-12)
    scale = (amax / _FP8_MAX).reshape((w.shape[0],) + (1,) * (w.ndim - 1))
    q = (w / scale).clamp(-_FP8_MAX, _FP8_MAX).to(FP8_DTYPE)
    return q, scale
