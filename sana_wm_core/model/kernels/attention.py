"""Softmax attention calls with the reference's numerics.

Quirks copied on purpose (diffusers 0.42.1 = the oracle):
- self-attention and camera attention run in bf16 even in an fp32 model (unless the model's `KernelSettings`
  say `softmax_precision="model"`: then in fp32, for checks that bf16 rounding would blur);
- the camera branch zero-pads head dims outside {32, 64, 128, 256} to 128/256, so its softmax scale is
  1/sqrt(padded dim). We pass that scale instead of padding (same result, no wasted FLOPs);
- in an fp32 model the reference's camera SDPA receives non-contiguous bf16 tensors, which PyTorch routes
  to the math kernel (fp32 accumulation, bf16 output) at ~10x the cost of the flash kernel. On CPU we
  reproduce those numbers with the fp32 flash kernel on bf16-rounded inputs and a bf16-rounded output.
- chunk-causal softmax: a query attends to keys of its own and earlier chunks (a key prefix per chunk).

Every SDPA call here passes heads-major tensors with unit last-dim stride, a layout PyTorch's fused kernels
(flash, memory-efficient) take, so the math kernel does not run. That matters because the math kernel's
bf16/fp16 reduction precision follows `torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp`, which
importing ComfyUI turns on for the whole process: our numbers are the same with it on or off
(tests/test_dit_parity.py), and equal the reference's under PyTorch's default, where its math-kernel camera
SDPA reduces in fp32 as reproduced above.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ...runtime.kernels import KernelSettings


def camera_scale(head_dim: int) -> float:
    """Softmax scale the reference's camera SDPA ends up with after its head-dim padding."""
    if head_dim in (32, 64, 128, 256) or head_dim >= 256:
        return head_dim ** -0.5
    return (128 if head_dim <= 128 else 256) ** -0.5


def _chunk_bounds(chunk_id: Sequence[int], tokens_per_frame: int) -> list:
    """[(q_start, q_end)] token ranges of each chunk; keys for a chunk are tokens [0, q_end)."""
    bounds, start = [], 0
    T = len(chunk_id)
    for t in range(1, T + 1):
        if t == T or chunk_id[t] != chunk_id[t - 1]:
            bounds.append((start * tokens_per_frame, t * tokens_per_frame))
            start = t
    return bounds


def _sdpa(q, k, v, scale, chunk_id, tokens_per_frame, past: int = 0):
    """`past` leading key tokens (carried from earlier windows) are visible to every query."""
    if chunk_id is None:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    out = torch.empty_like(q)
    for qs, qe in _chunk_bounds(chunk_id, tokens_per_frame):
        kq = past + qe
        out[:, :, qs:qe] = F.scaled_dot_product_attention(q[:, :, qs:qe], k[:, :, :kq], v[:, :, :kq], scale=scale)
    return out


KV = tuple  # (k, v), each (B, H, n, D): the keys/values of earlier frames as this call's attention sees them


def _with_past(k: torch.Tensor, v: torch.Tensor, initial_state: Optional[KV]) -> tuple:
    """(k, v) with the carried keys/values in front, and how many tokens were carried."""
    if initial_state is None:
        return k, v, 0
    pk, pv = initial_state
    if pk.shape[0] != k.shape[0] or pk.shape[1] != k.shape[1] or pk.shape[3] != k.shape[3] or pk.shape != pv.shape:
        raise ValueError(f"attention initial_state must be (k, v) of shape (B={k.shape[0]}, H={k.shape[1]}, n, "
                         f"D={k.shape[3]}), got {tuple(pk.shape)} / {tuple(pv.shape)}")
    pk, pv = pk.to(device=k.device, dtype=k.dtype), pv.to(device=v.device, dtype=v.dtype)
    return torch.cat([pk, k], 2), torch.cat([pv, v], 2), pk.shape[2]


def _in_bf16(dtype: torch.dtype, kernels: Optional[KernelSettings]) -> bool:
    """An fp32 call rounds to bf16 first (the reference's numerics) unless the settings ask for fp32."""
    return dtype == torch.float32 and (kernels is None or kernels.bf16_softmax)


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                      chunk_id: Optional[Sequence[int]] = None, tokens_per_frame: int = 1,
                      initial_state: Optional[KV] = None, output_final_state: bool = False,
                      kernels: Optional[KernelSettings] = None):
    """Main-branch attention. q, k, v: (B, H, N, D). Runs in bf16 when given fp32 (unless `kernels` say
    softmax_precision "model"); returns q's dtype.

    initial_state: (k, v) of the frames before this window (every query sees them); with output_final_state
    returns `(out, (k_all, v_all))`, the carried keys/values followed by this window's."""
    dtype = q.dtype
    k, v, past = _with_past(k, v, initial_state)
    state = (k, v)
    if _in_bf16(dtype, kernels):
        q, k, v = q.to(torch.bfloat16), k.to(torch.bfloat16), v.to(torch.bfloat16)
    out = _sdpa(q, k, v, None, chunk_id, tokens_per_frame, past).to(dtype)
    return (out, state) if output_final_state else out


def camera_softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                             chunk_id: Optional[Sequence[int]] = None, tokens_per_frame: int = 1,
                             initial_state: Optional[KV] = None, output_final_state: bool = False,
                             kernels: Optional[KernelSettings] = None):
    """Camera-branch attention in UCPE ray space. q, k, v: (B, H, N, D); returns q's dtype.
    initial_state / output_final_state / kernels as in `softmax_attention`."""
    dtype = q.dtype
    scale = camera_scale(q.shape[-1])
    k, v, past = _with_past(k, v, initial_state)
    state = (k, v)
    if _in_bf16(dtype, kernels):
        q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
        if q.device.type == "cpu":
            q, k, v = q.float(), k.float(), v.float()
        out = _sdpa(q, k, v, scale, chunk_id, tokens_per_frame, past).to(torch.bfloat16).to(dtype)
    else:
        out = _sdpa(q, k, v, scale, chunk_id, tokens_per_frame, past)
    return (out, state) if output_final_state else out


def cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Text cross-attention. q: (B, H, N, D); k, v: (B, H, L, D); mask: (B, L) with 1 = keep, or None.

    Padded tokens get the reference's additive -10000 bias (a fully padded prompt then attends uniformly
    instead of producing NaN).
    """
    bias = None
    if mask is not None:
        bias = ((1.0 - mask.to(q.dtype)) * -10000.0)[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


__all__ = ["softmax_attention", "camera_softmax_attention", "cross_attention", "camera_scale"]
