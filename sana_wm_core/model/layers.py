"""Small parameter holders that keep the checkpoint's key names and shapes but compute our way.

`Linear` stores a weight of any shape whose first dim is the output (so 1x1 convs keep their conv-shaped
keys) and runs it as one matmul; its weight may be fp8 with a per-row scale (`weight_scale`, not saved).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .kernels.linear import FP8_DTYPE, linear, quantize_fp8

_HAS_RMS_NORM = hasattr(F, "rms_norm")  # torch >= 2.4 has the fused op


class Linear(nn.Module):
    """y = x W^T + b for a weight stored as (out, in, *kernel-of-ones)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, kernel: tuple = ()) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty((out_features, in_features) + tuple(kernel)))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.register_buffer("weight_scale", None, persistent=False)
        bound = 1.0 / math.sqrt(in_features * max(1, math.prod(kernel)))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias, self.weight_scale)

    def compute_weight(self, like: torch.Tensor) -> torch.Tensor:
        """The weight in `like`'s dtype/device with its stored shape (fp8 de-scaled)."""
        w = self.weight.to(device=like.device, dtype=like.dtype)
        if self.weight_scale is not None:
            w = w * self.weight_scale.to(device=like.device, dtype=like.dtype)
        return w

    def to_fp8_(self) -> None:
        """Store the weight as e4m3 with a per-row scale; computation upcasts per call."""
        if FP8_DTYPE is None or self.weight.dtype == FP8_DTYPE:
            return
        q, scale = quantize_fp8(self.weight.data)
        self.weight = nn.Parameter(q, requires_grad=False)
        self.weight_scale = scale


class RMSNorm(nn.Module):
    """RMS normalisation over the last dim, statistics in fp32 (reference semantics)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(device=x.device, dtype=x.dtype)
        if x.device.type == "cpu" and x.dtype == torch.float32:
            # F.rms_norm runs as five passes on a CPU; this is one reduction and two passes, same fp32 stats
            inv = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(self.eps)
            return torch.mul(x, inv.rsqrt_()).mul_(w)
        if _HAS_RMS_NORM:
            return F.rms_norm(x, (x.shape[-1],), w, self.eps)
        return (x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * w


class ConvWeight(nn.Module):
    """Holds a depthwise temporal conv weight (C, 1, K) under the checkpoint name `<name>.weight`."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, 1, kernel) * 0.1)


def timestep_sinusoid(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """[cos, sin] embedding of (already integer-truncated) timesteps, fp32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    ang = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.linear_1 = Linear(freq_dim, hidden)
        self.linear_2 = Linear(hidden, hidden)

    def forward(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(timestep_sinusoid(t, self.freq_dim).to(dtype))))


class Mlp(nn.Module):
    """fc1 -> GELU(tanh) -> fc2 (caption projection)."""

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Linear(in_features, hidden)
        self.fc2 = Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class CaptionEmbedder(nn.Module):
    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.y_proj = Mlp(in_features, hidden)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.y_proj(y)


class PatchEmbed(nn.Module):
    """Conv3d with stride = kernel = patch, as a per-token matmul; (B, C, F, H, W) -> (B, N, hidden)."""

    def __init__(self, in_channels: int, hidden: int, patch: tuple) -> None:
        super().__init__()
        self.patch = tuple(patch)
        self.proj = Linear(in_channels, hidden, kernel=self.patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, F_, H, W = x.shape
        pt, ph, pw = self.patch
        x = x.reshape(B, C, F_ // pt, pt, H // ph, ph, W // pw, pw)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(B, -1, C * pt * ph * pw)
        return self.proj(x)


class FinalLayer(nn.Module):
    """Per-frame modulated LayerNorm then a linear head."""

    def __init__(self, hidden: int, out_features: int) -> None:
        super().__init__()
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden) / hidden ** 0.5)
        self.linear = Linear(hidden, out_features)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x: (B, N, C); t: (B, F, C) raw timestep embedding."""
        B, N, C = x.shape
        F_ = t.shape[1]
        mod = self.scale_shift_table.to(x.device, x.dtype)[None, None] + t[:, :, None]
        shift, scale = mod[:, :, 0:1], mod[:, :, 1:2]
        h = F.layer_norm(x, (C,), eps=1e-6).reshape(B, F_, -1, C)
        return self.linear((h * (1 + scale) + shift).reshape(B, N, C))


def maybe(module: Optional[nn.Module], x: torch.Tensor) -> torch.Tensor:
    return x if module is None else module(x)
