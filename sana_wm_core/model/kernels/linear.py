"""Linear layers whose weights may live on another device or be stored in fp8 (e4m3 with a per-row scale).

Weights are cast to the activation's device and dtype at call time, so a partially loaded model (ComfyUI
lowvram) or an fp8 checkpoint runs without a second resident copy. The fp8 format and its (de)quantiser are
shared with the refiner: sana_wm_core/runtime/fp8.py.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ...runtime.fp8 import FP8_DTYPE, dequantize, quantize_fp8

__all__ = ["FP8_DTYPE", "dequantize", "quantize_fp8", "linear"]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
           scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """y = x W^T + b with W cast (and de-scaled when fp8) to x's dtype and device."""
    b = None
    if bias is not None:
        b = bias.to(device=x.device, dtype=x.dtype, non_blocking=True)
    return F.linear(x, dequantize(weight, scale, x), b)
