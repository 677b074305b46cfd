"""Text cross-attention: q from image tokens, k/v from the projected caption, q/k RMSNorm, padding mask."""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn as nn

from .kernels.attention import cross_attention
from .ops import TorchOps, layer_class


class CrossAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, qk_norm: bool = True, operations: Any = TorchOps) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        Linear, RMSNorm = layer_class(operations, "Linear"), layer_class(operations, "RMSNorm")
        self.q_linear = Linear(hidden, hidden)
        self.kv_linear = Linear(hidden, 2 * hidden)
        self.proj = Linear(hidden, hidden)
        self.q_norm = RMSNorm(hidden, eps=1e-6) if qk_norm else None
        self.k_norm = RMSNorm(hidden, eps=1e-6) if qk_norm else None

    def project_text(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k, v as (B, heads, L, D) from (B, L, C) caption embeddings."""
        B, L, C = y.shape
        k, v = self.kv_linear(y).view(B, L, 2, C).unbind(2)
        if self.k_norm is not None:
            k = self.k_norm(k)
        k = k.view(B, L, self.heads, self.head_dim).transpose(1, 2)
        v = v.reshape(B, L, self.heads, self.head_dim).transpose(1, 2)
        return k, v

    def forward(self, x: torch.Tensor, y: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        B, N, C = x.shape
        q = self.q_linear(x)
        if self.q_norm is not None:
            q = self.q_norm(q)
        q = q.view(B, N, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.project_text(y)
        out = cross_attention(q, k, v, mask)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))
