"""The GDN key short convolution: a causal depthwise conv run forwards and backwards over latent frames.

y[t] = sum_j w_j x[t-K+1+j] + sum_j w_j x[t+K-1-j] - w_{K-1} x[t], a symmetric (2K-1)-tap filter.
In the chunk-causal variant the backward half only sees frames of the same chunk.

The reference permutes to (B*S, T, C) and runs two conv1d calls; here the filter is a handful of shifted
multiply-adds directly in the token layout (B, T, S, C): no permutes, no copies of the input.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch


def bidirectional_short_conv(x: torch.Tensor, weight: torch.Tensor, num_frames: int,
                             chunk_id: Optional[Sequence[int]] = None) -> torch.Tensor:
    """x: (B, N, C) tokens in frame-major order; weight: (C, 1, K). Returns (B, N, C) in x's dtype."""
    B, N, C = x.shape
    T = num_frames
    K = weight.shape[-1]
    w = weight.reshape(C, K).to(device=x.device, dtype=x.dtype)
    xt = x.reshape(B, T, N // T, C)
    out = xt * w[:, K - 1]
    for d in range(1, min(K, T)):
        tap = w[:, K - 1 - d]
        out[:, d:].addcmul_(xt[:, :-d], tap)  # past (causal pass)
        if chunk_id is None:
            out[:, :-d].addcmul_(xt[:, d:], tap)  # future (time-flipped pass)
        else:
            same = torch.tensor([chunk_id[t] == chunk_id[t + d] for t in range(T - d)], device=x.device)
            out[:, :-d].addcmul_(xt[:, d:] * same.view(1, T - d, 1, 1).to(x.dtype), tap)
    return out.reshape(B, N, C)
