"""fp8 weight storage for the refiner network: e4m3 weights with a per-row scale, upcast per layer.

Halves the weight memory of the LTX-2 refiner (~13 B video parameters: 26 GB bf16 -> 13 GB) so it
fits a 24 GB card with block offload, at the cost of one dequantise per linear layer per call.
The scale keeps small weights out of e4m3's subnormal range (plain casting loses them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FP8 = torch.float8_e4m3fn
_FP8_MAX = 448.0


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(out, in)` float weight -> (e4m3 weight, float32 `(out, 1)` scale) with `w ~= q * scale`."""
    w = weight.detach().float()
    amax = w.abs().amax(dim=1, keepdim=True)
    scale = torch.where(amax > 0, amax / _FP8_MAX, torch.ones_like(amax))
    q = (w / scale).clamp(-_FP8_MAX, _FP8_MAX).to(FP8)
    return q, scale


class Fp8Linear(nn.Module):
    """A linear layer whose weight is stored in fp8 and dequantised to the input dtype on each call."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, compute_dtype: torch.dtype):
        super().__init__()
        q, scale = quantize_rows(weight)
        self.in_features, self.out_features = int(weight.shape[1]), int(weight.shape[0])
        self.compute_dtype = compute_dtype
        self.register_buffer("weight_fp8", q)
        self.register_buffer("weight_scale", scale)
        self.bias = nn.Parameter(bias.detach().to(compute_dtype), requires_grad=False) if bias is not None else None

    def dequantized(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        dtype = dtype or self.compute_dtype
        return (self.weight_fp8.to(torch.float32) * self.weight_scale).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.dequantized(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, storage=float8_e4m3fn"


def convert_linears_to_fp8(module: nn.Module, compute_dtype: torch.dtype) -> int:
    """Replaces every `nn.Linear` under `module` by an `Fp8Linear`; returns how many were replaced."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear) and child.weight.device.type != "meta":
            setattr(module, name, Fp8Linear(child.weight, child.bias, compute_dtype))
            count += 1
        else:
            count += convert_linears_to_fp8(child, compute_dtype)
    return count
