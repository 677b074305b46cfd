"""GLUMBConvTemp feed-forward: 1x1 expand + SiLU, depthwise 3x3 per frame, GLU, 1x1 project, plus a
residual dense temporal conv over 3 frames.

Computed in the token layout (B, N, C): the 1x1 convs are matmuls, the depthwise conv runs on a
channels-last view (no permute copies), and the temporal conv is one matmul producing the three taps,
summed with frame shifts. In the chunk-causal variant the "next frame" tap is dropped at chunk ends.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import Linear

FFN_CHUNK_ELEMENTS = 1 << 28  # cap on elements of one 2*ffn_hidden-wide intermediate


class _ConvHolder(nn.Module):
    """Keeps `<name>.conv.weight` / `.conv.bias` key names."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv


class _DepthwiseConv(nn.Module):
    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, 1, kernel, kernel) * 0.1)
        self.bias = nn.Parameter(torch.zeros(channels))


class GLUMBConvTemp(nn.Module):
    def __init__(self, hidden: int, ffn_hidden: int, t_kernel: int = 3) -> None:
        super().__init__()
        self.ffn_hidden = ffn_hidden
        self.inverted_conv = _ConvHolder(Linear(hidden, 2 * ffn_hidden, kernel=(1, 1)))
        self.depth_conv = _ConvHolder(_DepthwiseConv(2 * ffn_hidden, 3))
        self.point_conv = _ConvHolder(Linear(ffn_hidden, hidden, bias=False, kernel=(1, 1)))
        self.t_conv = Linear(hidden, hidden, bias=False, kernel=(t_kernel, 1))
        nn.init.normal_(self.t_conv.weight, std=0.02)

    def forward(self, x: torch.Tensor, fhw: tuple[int, int, int],
                chunk_id: Optional[Sequence[int]] = None, *, initial_state: Optional[torch.Tensor] = None,
                output_final_state: bool = False):
        """initial_state: (B, P, S, C) the last point_conv frames before this window (the temporal conv's
        past taps read them); with output_final_state returns `(out, state)`, state = the last K//2
        point_conv frames seen (see `_temporal`)."""
        B, N, C = x.shape
        f, h, w = fhw
        S = h * w
        # The 2*ffn_hidden-wide intermediates dominate activation memory (5.7 GB per bf16 copy at 961 frames
        # with CFG): run the per-frame spatial part over groups of frames so only a slice is alive at once.
        frames_per_call = max(1, FFN_CHUNK_ELEMENTS // (B * S * 2 * self.ffn_hidden))
        xf = x.view(B, f, S, C)
        if frames_per_call >= f:
            p = self._spatial(xf, h, w)
        else:
            p = torch.empty_like(xf)
            for s in range(0, f, frames_per_call):
                p[:, s:s + frames_per_call] = self._spatial(xf[:, s:s + frames_per_call], h, w)
        p = p.view(B, N, C)
        out = self._temporal(p, f, chunk_id, initial_state)
        if not output_final_state:
            return out
        c = self.t_conv.weight.shape[2] // 2
        seen = p.view(B, f, S, C) if initial_state is None else torch.cat(
            [initial_state.to(device=p.device, dtype=p.dtype), p.view(B, f, S, C)], 1)
        return out, seen[:, seen.shape[1] - min(c, seen.shape[1]):].clone()

    def _spatial(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, f, S, C) -> (B, f, S, C): 1x1 expand + SiLU, depthwise 3x3, GLU, 1x1 project, per frame."""
        B, f, S, C = x.shape
        u = F.silu(self.inverted_conv.conv(x), inplace=True)
        ch = u.shape[-1]
        u = u.view(B * f, h, w, ch).permute(0, 3, 1, 2)  # channels-last view
        dw = self.depth_conv.conv
        u = F.conv2d(u, dw.weight.to(u.device, u.dtype), dw.bias.to(u.device, u.dtype),
                     padding=dw.weight.shape[-1] // 2, groups=ch)
        u = u.permute(0, 2, 3, 1)
        val, gate = u[..., : self.ffn_hidden], u[..., self.ffn_hidden:]
        # GLU in place in the conv output (no two more ffn_hidden-wide temporaries); the strided `val` view
        # goes to the matmul as is (row stride 2*ffn_hidden)
        val.mul_(F.silu(gate, inplace=True))
        return self.point_conv.conv(val.reshape(B, f, S, -1))

    def _temporal(self, p: torch.Tensor, f: int, chunk_id: Optional[Sequence[int]],
                  past: Optional[torch.Tensor] = None) -> torch.Tensor:
        """p + t_conv(p): one matmul gives all taps, summed with frame shifts. `past` (B, P, S, C) holds the
        point_conv frames before the window, read by the taps that look back across its start."""
        B, N, C = p.shape
        wt = self.t_conv.compute_weight(p)[..., 0]  # (C_out, C_in, K)
        K = wt.shape[-1]
        taps = F.linear(p, wt.permute(2, 0, 1).reshape(K * C, C)).view(B, f, N // f, K, C)
        c = K // 2
        out = taps[:, :, :, c]  # accumulate the other taps into the centre tap's slot, in place
        out += p.view(B, f, N // f, C)  # the residual: out = p + t_conv(p)
        for k in range(K):
            d = k - c  # tap k reads frame t + d
            if d < 0 and past is not None and past.shape[1] > 0:  # window frames t < -d read carried frames
                n = min(-d, past.shape[1])
                prev = F.linear(past[:, -n:].to(p.device, p.dtype), wt[:, :, k])  # (B, n, S, C)
                out[:, max(0, -d - n):min(f, -d)] += prev[:, :max(0, min(f, -d) - max(0, -d - n))]
            if d == 0 or abs(d) >= f:
                continue
            if d < 0:
                out[:, -d:] += taps[:, :d, :, k]
            else:
                fut = taps[:, d:, :, k]
                if chunk_id is not None:
                    same = torch.tensor([chunk_id[t] == chunk_id[t + d] for t in range(f - d)], device=p.device)
                    fut = fut * same.view(1, f - d, 1, 1).to(p.dtype)
                out[:, :-d] += fut
        return out.reshape(B, N, C)
