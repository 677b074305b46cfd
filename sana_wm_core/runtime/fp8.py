"""fp8 weight storage shared by the Stage-1 DiT and the refiner: e4m3 weights with a per-row scale.

Storing a matmul weight as e4m3 halves its memory against bf16 (the 2.6B DiT: 5.3 -> 2.6 GB of block weights;
the 13B refiner video branch: 26 -> 13 GB). The per-output-row scale keeps small rows out of e4m3's subnormal
range (plain casting loses them). Each call upcasts the weight to the activation's dtype and device, multiplies
by the scale there, and runs an ordinary matmul: one extra weight-sized temporary per layer call.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

FP8_DTYPE = getattr(torch, "float8_e4m3fn", None)
FP8_MAX = 448.0  # largest finite e4m3fn value


def quantize_fp8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(out, ...)` float weight -> (e4m3 weight, float32 scale shaped `(out, 1, ...)`) with `w ~= q * scale`.

    An all-zero row gets scale 1 (its codes are zeros either way)."""
    if FP8_DTYPE is None:
        raise ValueError("fp8 weight storage needs a torch build with float8_e4m3fn")
    w = weight.detach().float()
    amax = w.reshape(w.shape[0], -1).abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax)).reshape((w.shape[0],) + (1,) * (w.ndim - 1))
    q = (w / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    return q, scale


def dequantize(weight: torch.Tensor, scale: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The weight in `like`'s device and dtype as a 2-D `(out, in)` matrix, times its fp8 scale when it has one.

    Also the plain path for unscaled weights that live on another device (ComfyUI's partial loading)."""
    w = weight
    if w.device != like.device:
        w = w.to(like.device, non_blocking=True)
    if w.dtype != like.dtype:
        w = w.to(like.dtype)
    if scale is not None:
        w = w * scale.to(device=like.device, dtype=like.dtype)
    return w.reshape(w.shape[0], -1)


class Fp8Linear(nn.Module):
    """Stands in for an `nn.Linear` of a network we do not own (the diffusers refiner): fp8 weight + row scale."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], compute_dtype: torch.dtype):
        super().__init__()
        q, scale = quantize_fp8(weight)
        self.in_features, self.out_features = int(weight.shape[1]), int(weight.shape[0])
        self.compute_dtype = compute_dtype
        self.register_buffer("weight_fp8", q)
        self.register_buffer("weight_scale", scale)
        self.bias = nn.Parameter(bias.detach().to(compute_dtype), requires_grad=False) if bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(device=x.device, dtype=x.dtype) if self.bias is not None else None
        return F.linear(x, dequantize(self.weight_fp8, self.weight_scale, x), bias)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, storage=float8_e4m3fn"


def convert_linears_to_fp8(module: nn.Module, compute_dtype: torch.dtype) -> int:
    """Replaces every materialised `nn.Linear` under `module` by an `Fp8Linear`; returns how many were replaced."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear) and child.weight.device.type != "meta":
            setattr(module, name, Fp8Linear(child.weight, child.bias, compute_dtype))
            count += 1
        else:
            count += convert_linears_to_fp8(child, compute_dtype)
    return count
