"""The DiT's small building blocks (timestep / caption / patch embedders, final layer), built from an
operations namespace (`ops.py`): plain torch.nn by default, ComfyUI's `comfy.ops` under ComfyUI.

Weights keep the checkpoint's key names and shapes (patch embeddings are Conv3d-shaped) but compute our way:
a patch embedding is one per-token matmul. `Linear` and `RMSNorm` here are the default classes (ops.py).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ops import Linear, RMSNorm, TorchOps, init_uniform_, layer_class, weight_user

__all__ = ["Linear", "RMSNorm", "TimestepEmbedder", "Mlp", "CaptionEmbedder", "PatchEmbed", "FinalLayer",
           "timestep_sinusoid", "maybe"]


def timestep_sinusoid(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """[cos, sin] embedding of (already integer-truncated) timesteps, fp32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    ang = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int, freq_dim: int = 256, operations: Any = TorchOps) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        lin = layer_class(operations, "Linear")
        self.linear_1 = lin(freq_dim, hidden)
        self.linear_2 = lin(hidden, hidden)

    def forward(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(timestep_sinusoid(t, self.freq_dim).to(dtype))))


class Mlp(nn.Module):
    """fc1 -> GELU(tanh) -> fc2 (caption projection)."""

    def __init__(self, in_features: int, hidden: int, operations: Any = TorchOps) -> None:
        super().__init__()
        lin = layer_class(operations, "Linear")
        self.fc1 = lin(in_features, hidden)
        self.fc2 = lin(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class CaptionEmbedder(nn.Module):
    def __init__(self, in_features: int, hidden: int, operations: Any = TorchOps) -> None:
        super().__init__()
        self.y_proj = Mlp(in_features, hidden, operations)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.y_proj(y)


class PatchEmbed(nn.Module):
    """Conv3d with stride = kernel = patch, as a per-token matmul; (B, C, F, H, W) -> (B, N, hidden)."""

    def __init__(self, in_channels: int, hidden: int, patch: tuple, operations: Any = TorchOps) -> None:
        super().__init__()
        self.patch = tuple(patch)
        conv = weight_user(layer_class(operations, "Conv3d"), matmul=True)
        self.proj = conv(in_channels, hidden, kernel_size=self.patch, stride=self.patch)
        init_uniform_(self.proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, F_, H, W = x.shape
        pt, ph, pw = self.patch
        x = x.reshape(B, C, F_ // pt, pt, H // ph, ph, W // pw, pw)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(B, -1, C * pt * ph * pw)
        return self.proj.matmul(x)


class FinalLayer(nn.Module):
    """Per-frame modulated LayerNorm then a linear head."""

    def __init__(self, hidden: int, out_features: int, operations: Any = TorchOps) -> None:
        super().__init__()
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden) / hidden ** 0.5)
        self.linear = layer_class(operations, "Linear")(hidden, out_features)

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
