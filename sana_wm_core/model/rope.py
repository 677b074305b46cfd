"""3D (frame, row, column) rotary tables, Wan style, and their application to interleaved channel pairs.

The tables are built the same way as the reference (float32 angles, complex64 polar form) and kept as real
cos/sin pairs; they are computed once per forward and shared by every block.
"""
from __future__ import annotations

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
               device=None) -> torch.Tensor:
    """Complex table (F*H*W, head_dim/2) in token order (frame-major, then row, then column)."""
    f, h, w = fhw
    tdim, hdim, wdim = _axis_dims(head_dim)
    ft, fh, fw = (_axis_freqs(d, max_len, theta) for d in (tdim, hdim, wdim))
    ft = ft[:f].view(f, 1, 1, -1).expand(f, h, w, -1)
    fh = fh[:h].view(1, h, 1, -1).expand(f, h, w, -1)
    fw = fw[:w].view(1, 1, w, -1).expand(f, h, w, -1)
    return torch.cat([ft, fh, fw], dim=-1).reshape(f * h * w, -1).to(device)


def camera_rope_table(table: torch.Tensor, head_dim: int) -> torch.Tensor:
    """The camera branch's table for the last head_dim/2 channels: the first pairs of each axis."""
    t_old, h_old, _ = (d // 2 for d in _axis_dims(head_dim))
    t_new, h_new, w_new = (d // 2 for d in _axis_dims(head_dim // 2))
    return torch.cat([table[:, :t_new], table[:, t_old:t_old + h_new],
                      table[:, t_old + h_old:t_old + h_old + w_new]], dim=-1)


def as_cos_sin(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return table.real.contiguous(), table.imag.contiguous()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *, inverse: bool = False) -> torch.Tensor:
    """Rotate interleaved pairs (2i, 2i+1) of x's last dim in fp32; cos/sin broadcast to x[..., ::2]."""
    xf = x.float().unflatten(-1, (-1, 2))
    a, b = xf[..., 0], xf[..., 1]
    if inverse:
        out = torch.stack((a * cos + b * sin, b * cos - a * sin), dim=-1)
    else:
        out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)
