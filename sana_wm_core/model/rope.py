"""3D (frame, row, column) rotary tables, Wan style, and their application to interleaved channel pairs.

The tables are built the same way as the reference (float32 angles, complex64 polar form) and kept as real
cos/sin pairs; they are computed once per forward and shared by every block.
"""
from __future__ import annotations

from typing import Optional

import torch


def _axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Real channels per axis (t, h, w): h = w = 2*(D//6), t gets the rest."""
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


def _axis_freqs(dim: int, max_len: int, theta: float) -> torch.Tensor:
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32)[: dim // 2] / dim))
    ang = torch.outer(torch.arange(max_len), inv)
    return torch.polar(torch.ones_like(ang), ang)  # (max_len, dim/2) complex64


def rope_table(head_dim: int, fhw: tuple[int, int, int], *, theta: float = 10000.0, max_len: int = 1024,
               device=None, frame_offset: int = 0) -> torch.Tensor:
    """Complex table (F*H*W, head_dim/2) in token order (frame-major, then row, then column).

    frame_offset: absolute position of the first frame (a window of a longer video keeps its frames'
    positions: rope_table(D, (e-s, h, w), frame_offset=s) == rope_table(D, (T, h, w)) rows of frames [s, e))."""
    f, h, w = fhw
    if frame_offset < 0 or frame_offset + f > max_len:
        raise ValueError(f"frames [{frame_offset}, {frame_offset + f}) are outside the RoPE table "
                         f"({max_len} positions); start windows at frame >= 0 and below {max_len - f}")
    tdim, hdim, wdim = _axis_dims(head_dim)
    ft, fh, fw = (_axis_freqs(d, max_len, theta) for d in (tdim, hdim, wdim))
    ft = ft[frame_offset:frame_offset + f].view(f, 1, 1, -1).expand(f, h, w, -1)
    fh = fh[:h].view(1, h, 1, -1).expand(f, h, w, -1)
    fw = fw[:w].view(1, 1, w, -1).expand(f, h, w, -1)
    return torch.cat([ft, fh, fw], dim=-1).reshape(f * h * w, -1).to(device)


def camera_rope_table(table: torch.Tensor, head_dim: int) -> torch.Tensor:
    """The camera branch's table for the last head_dim/2 channels: the first pairs of each axis."""
    t_old, h_old, _ = (d // 2 for d in _axis_dims(head_dim))
    t_new, h_new, w_new = (d // 2 for d in _axis_dims(head_dim // 2))
    return torch.cat([table[:, :t_new], table[:, t_old:t_old + h_new],
                      table[:, t_old + h_old:t_old + h_old + w_new]], dim=-1)


def apply_rope(x: torch.Tensor, table: torch.Tensor, *, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Rotate interleaved pairs (2i, 2i+1) of x's last dim by the complex `table` (broadcast to x[..., ::2]).

    One complex multiply in fp32 (pass the conjugate table for the inverse rotation); the result is cast to
    x's dtype, or written into `out` (a view with the same shape) when given. Under torch.compile (ComfyUI's
    TorchCompileModel) the same rotation is written in real arithmetic: tracing cannot take complex views of
    `out=` tensors, and inductor generates no code for complex ops."""
    if torch.compiler.is_compiling():
        return _apply_rope_real(x, table, out)
    xf = x if x.dtype == torch.float32 else x.float()
    if xf.stride(-1) != 1:
        xf = xf.contiguous()
    xc = torch.view_as_complex(xf.unflatten(-1, (-1, 2)))
    if out is not None and out.dtype == torch.float32 and out.stride(-1) == 1:
        torch.mul(xc, table, out=torch.view_as_complex(out.unflatten(-1, (-1, 2))))
        return out
    res = torch.view_as_real(xc * table).flatten(-2)
    if out is None:
        return res.to(x.dtype)
    out.copy_(res)
    return out


def _apply_rope_real(x: torch.Tensor, table: torch.Tensor, out: Optional[torch.Tensor]) -> torch.Tensor:
    """apply_rope as (a + ib)(c + id) = (ac - bd) + i(ad + bc) on real fp32 pairs, for compiled graphs."""
    pairs = x.float().unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    cs = torch.view_as_real(table)
    c, d = cs[..., 0], cs[..., 1]
    res = torch.stack((a * c - b * d, a * d + b * c), dim=-1).flatten(-2)
    if out is None:
        return res.to(x.dtype)
    out.copy_(res)
    return out
