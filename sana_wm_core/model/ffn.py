"""GLUMBConvTemp feed-forward: 1x1 expand + SiLU, depthwise 3x3 per frame, GLU, 1x1 project, plus a
residual dense temporal conv over 3 frames.

Computed in the token layout (B, N, C): the 1x1 convs are matmuls, the depthwise conv runs on a
channels-last view (no permute copies), and the temporal conv is one matmul producing the three taps,
summed with frame shifts. In the chunk-causal variant the "next frame" tap is dropped at chunk ends.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .kernels.linear import linear
from .ops import TorchOps, init_uniform_, layer_class, weight_user

FFN_CHUNK_ELEMENTS = 1 << 28  # cap on elements of one 2*ffn_hidden-wide intermediate


class _ConvHolder(nn.Module):
    """Keeps `<name>.conv.weight` / `.conv.bias` key names."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv


class GLUMBConvTemp(nn.Module):
    def __init__(self, hidden: int, ffn_hidden: int, t_kernel: int = 3, operations: Any = TorchOps) -> None:
        super().__init__()
        self.ffn_hidden = ffn_hidden
        conv2d = layer_class(operations, "Conv2d")
        matmul = weight_user(conv2d, matmul=True)
        self.inverted_conv = _ConvHolder(matmul(hidden, 2 * ffn_hidden, kernel_size=1))
        init_uniform_(self.inverted_conv.conv)
        depthwise = weight_user(conv2d)(2 * ffn_hidden, 2 * ffn_hidden, kernel_size=3, padding=1,
                                        groups=2 * ffn_hidden)
        if depthwise.weight is not None:
            with torch.no_grad():
                depthwise.weight.copy_(torch.randn(depthwise.weight.shape) * 0.1)
                depthwise.bias.zero_()
        self.depth_conv = _ConvHolder(depthwise)
        self.point_conv = _ConvHolder(matmul(ffn_hidden, hidden, kernel_size=1, bias=False))
        init_uniform_(self.point_conv.conv)
        self.t_conv = matmul(hidden, hidden, kernel_size=(t_kernel, 1), bias=False)
        init_uniform_(self.t_conv)
        if self.t_conv.weight is not None:
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
        c = self.t_conv.kernel_size[0] // 2
        seen = p.view(B, f, S, C) if initial_state is None else torch.cat(
            [initial_state.to(device=p.device, dtype=p.dtype), p.view(B, f, S, C)], 1)
        return out, seen[:, seen.shape[1] - min(c, seen.shape[1]):].clone()

    def _spatial(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, f, S, C) -> (B, f, S, C): 1x1 expand + SiLU, depthwise 3x3, GLU, 1x1 project, per frame."""
        B, f, S, C = x.shape
        u = self.inverted_conv.conv.matmul(x, activation="silu")
        ch = u.shape[-1]
        u = u.view(B * f, h, w, ch).permute(0, 3, 1, 2)  # channels-last view
        u = self.depth_conv.conv.run_with_weight(u, self._depthwise).permute(0, 2, 3, 1)
        val, gate = u[..., : self.ffn_hidden], u[..., self.ffn_hidden:]
        # GLU in place in the conv output (no two more ffn_hidden-wide temporaries); the strided `val` view
        # goes to the matmul as is (row stride 2*ffn_hidden)
        val.mul_(F.silu(gate, inplace=True))
        return self.point_conv.conv.matmul(val.reshape(B, f, S, -1))

    @staticmethod
    def _depthwise(u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The per-frame depthwise 3x3 (same padding) on a (B*f, ch, h, w) view."""
        return F.conv2d(u, weight.to(u.device, u.dtype), bias.to(u.device, u.dtype),
                        padding=weight.shape[-1] // 2, groups=u.shape[1])

    def _temporal(self, p: torch.Tensor, f: int, chunk_id: Optional[Sequence[int]],
                  past: Optional[torch.Tensor] = None) -> torch.Tensor:
        """p + t_conv(p): one matmul gives all taps, summed with frame shifts. `past` (B, P, S, C) holds the
        point_conv frames before the window, read by the taps that look back across its start."""
        return self.t_conv.run_with_weight(p, lambda p, w, _b: self._taps(p, w, f, chunk_id, past))

    def _taps(self, p: torch.Tensor, weight: torch.Tensor, f: int, chunk_id: Optional[Sequence[int]],
              past: Optional[torch.Tensor]) -> torch.Tensor:
        B, N, C = p.shape
        scale = getattr(self.t_conv, "weight_scale", None)
        wt = weight.to(device=p.device, dtype=p.dtype)
        if scale is not None:
            wt = wt * scale.to(device=p.device, dtype=p.dtype)
        wt = wt[..., 0]  # (C_out, C_in, K)
        K = wt.shape[-1]
        taps = linear(p, wt.permute(2, 0, 1).reshape(K * C, C)).view(B, f, N // f, K, C)
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
