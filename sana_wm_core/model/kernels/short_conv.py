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
                             chunk_id: Optional[Sequence[int]] = None, *,
                             initial_state: Optional[torch.Tensor] = None, output_final_state: bool = False):
    """x: (B, N, C) tokens in frame-major order; weight: (C, 1, K). Returns (B, N, C) in x's dtype.

    initial_state: (B, P, S, C), the last P <= K-1 pre-conv frames before this window (what the causal half
    reads across the window start; None = the video starts here). With output_final_state the result is
    `(out, state)`, state = the last min(K-1, P+T) input frames. The time-flipped half never reads past the
    window end, which is exact for a chunk-causal model whose window ends at a chunk end."""
    B, N, C = x.shape
    T = num_frames
    K = weight.shape[-1]
    w = weight.reshape(C, K).to(device=x.device, dtype=x.dtype)
    xt = x.reshape(B, T, N // T, C)
    past = xt
    P = 0
    if initial_state is not None and initial_state.shape[1] > 0:
        if initial_state.shape[0] != B or tuple(initial_state.shape[2:]) != (N // T, C):
            raise ValueError(f"short-conv initial_state must be (B={B}, frames, S={N // T}, C={C}), got "
                             f"{tuple(initial_state.shape)}")
        P = min(int(initial_state.shape[1]), K - 1)
        past = torch.cat([initial_state[:, -P:].to(device=x.device, dtype=x.dtype), xt], 1)
    out = xt * w[:, K - 1]
    for d in range(1, min(K, T + P)):
        tap = w[:, K - 1 - d]
        if P == 0:
            out[:, d:].addcmul_(xt[:, :-d], tap)  # past (causal pass)
        else:  # window frame t reads input frame t - d, P of them held in the carried state
            lo = max(0, d - P)
            out[:, lo:].addcmul_(past[:, P - d + lo:P + T - d], tap)
        if d >= T:
            continue
        if chunk_id is None:
            out[:, :-d].addcmul_(xt[:, d:], tap)  # future (time-flipped pass)
        else:
            same = torch.tensor([chunk_id[t] == chunk_id[t + d] for t in range(T - d)], device=x.device)
            out[:, :-d].addcmul_(xt[:, d:] * same.view(1, T - d, 1, 1).to(x.dtype), tap)
    out = out.reshape(B, N, C)
    if not output_final_state:
        return out
    return out, past[:, -(K - 1):].clone() if K > 1 else past[:, :0].clone()
