"""Self-attention of one block: main branch (bidirectional frame-wise GDN, or softmax every n-th block)
plus the UCPE camera branch, summed, SiLU output gate, output projection.

Parameters keep the checkpoint layout of both kinds (softmax blocks carry the unused GDN gates).
Per-forward tables (RoPE, camera RoPE, ray matrices, chunk ids) arrive in a `FrameContext`.
The state of earlier frames (chunk-causal / streaming windows) arrives as a `BlockState` and the state
after this window goes back into a dict of `BlockState` fields (see `cache.py`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..runtime.kernels import KernelSettings
from .cache import BlockState, KVState
from .kernels import bidirectional_short_conv, camera_softmax_attention, frame_gdn, softmax_attention
from .ops import TorchOps, layer_class, weight_user
from .rope import apply_rope
from .ucpe import rms_scale, ucpe_tokens


@dataclass
class FrameContext:
    """Everything a block needs about the token grid, computed once per forward."""

    fhw: tuple
    rope: torch.Tensor  # (N, D/2) complex main RoPE
    cam_rope: Optional[torch.Tensor] = None  # (N, D/4) complex camera RoPE
    cam_rope_inv: Optional[torch.Tensor] = None  # its conjugate
    P: Optional[torch.Tensor] = None  # (B, N, 4, 4) world -> ray-local
    P_inv: Optional[torch.Tensor] = None
    chunk_id: Optional[list] = None  # per frame, chunk-causal variant only
    kernels: Optional[KernelSettings] = None  # the model's kernel choice (None: from the environment)
    frame_offset: int = 0  # absolute index of the window's first frame (a carried cache's next_frame)

    @property
    def tokens_per_frame(self) -> int:
        return self.fhw[1] * self.fhw[2]

    @property
    def frames(self) -> tuple:
        """Absolute indices of the window's frames."""
        return tuple(range(self.frame_offset, self.frame_offset + self.fhw[0]))


def _carry(new: Optional[dict], name: str, result):
    """Unpacks `(out, state)` into `new[name]` when the caller collects state; returns out."""
    if new is None:
        return result
    out, new[name] = result
    return out


def _kv_after(held, k_all: torch.Tensor, v_all: torch.Tensor, ctx: FrameContext):
    """The softmax K/V state after this window: the held frames, then the window's."""
    if held is None:
        return KVState(k_all, v_all, ctx.frames)
    return held.appended(k_all, v_all, ctx.frames)


class HybridAttention(nn.Module):
    def __init__(self, hidden: int, head_dim: int, *, softmax: bool, conv_kernel: int = 4, qk_norm: bool = True,
                 norm_eps: float = 1e-5, gdn_eps: float = 1e-8, ucpe_renorm: bool = True,
                 operations: Any = TorchOps) -> None:
        super().__init__()
        self.softmax = softmax
        self.heads, self.head_dim = hidden // head_dim, head_dim
        self.gdn_eps, self.ucpe_renorm = gdn_eps, ucpe_renorm
        H = self.heads
        Linear, RMSNorm = layer_class(operations, "Linear"), layer_class(operations, "RMSNorm")
        short_conv = weight_user(layer_class(operations, "Conv1d"))

        def conv() -> Optional[nn.Module]:
            """Holds a depthwise temporal conv weight (C, 1, K) under the checkpoint name `<name>.weight`."""
            if softmax or conv_kernel <= 0:
                return None
            m = short_conv(hidden, hidden, conv_kernel, groups=hidden, bias=False)
            if m.weight is not None:
                with torch.no_grad():
                    m.weight.copy_(torch.randn(m.weight.shape) * 0.1)
            return m

        self.qkv = Linear(hidden, 3 * hidden, bias=False)
        self.proj = Linear(hidden, hidden)
        self.q_norm = RMSNorm(hidden, eps=norm_eps) if qk_norm else None
        self.k_norm = RMSNorm(hidden, eps=norm_eps) if qk_norm else None
        self.beta_proj = Linear(hidden, H)
        self.gate_proj = Linear(hidden, H)
        self.A_log = nn.Parameter(torch.log(torch.empty(H).uniform_(1, 16)))
        self.dt_bias = nn.Parameter(torch.full((H,), -3.0))
        self.register_buffer("recall_gate", torch.zeros(1))
        self.output_gate = Linear(hidden, hidden)
        self.conv_k = conv()
        self.q_proj_cam = Linear(hidden, hidden)
        self.k_proj_cam = Linear(hidden, hidden)
        self.v_proj_cam = Linear(hidden, hidden)
        self.out_proj_cam = Linear(hidden, hidden)
        self.q_norm_cam = RMSNorm(hidden, eps=norm_eps) if qk_norm else None
        self.k_norm_cam = RMSNorm(hidden, eps=norm_eps) if qk_norm else None
        self.conv_k_cam = conv()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _norm(norm: Optional[nn.Module], x: torch.Tensor) -> torch.Tensor:
        return x if norm is None else norm(x)

    def _to_scan(self, x: torch.Tensor, f: int) -> torch.Tensor:
        """(B, N, C) -> contiguous (B, H, F, S, D)."""
        B, N, _ = x.shape
        return x.reshape(B, f, N // f, self.heads, self.head_dim).permute(0, 3, 1, 2, 4).contiguous()

    @staticmethod
    def _from_scan(x: torch.Tensor) -> torch.Tensor:
        B, H, f, S, D = x.shape
        return x.permute(0, 2, 3, 1, 4).reshape(B, f * S, H * D)

    def _to_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> contiguous (B, H, N, D)."""
        B, N, _ = x.shape
        return x.reshape(B, N, self.heads, self.head_dim).transpose(1, 2).contiguous()

    def _gates(self, x: torch.Tensor, f: int) -> tuple[torch.Tensor, torch.Tensor]:
        """beta (B, H, F, S) per token and decay (B, H, F) per frame, shared by both branches."""
        B, N, C = x.shape
        beta = torch.sigmoid(self.beta_proj(x)).view(B, f, N // f, self.heads).permute(0, 3, 1, 2)
        g = self.gate_proj(x.reshape(B, f, N // f, C).mean(dim=2)).float()
        rate = self.A_log.float().to(x.device).exp()
        decay = torch.exp(-rate * F.softplus(g + self.dt_bias.float().to(x.device)))
        return beta, decay.transpose(1, 2)

    # ------------------------------------------------------------------ branches
    def _main_gdn(self, q, k, v, beta, decay, ctx: FrameContext, st: BlockState,
                  new: Optional[dict]) -> torch.Tensor:
        f = ctx.fhw[0]
        S = ctx.tokens_per_frame
        keep = new is not None
        if self.conv_k is not None:
            k = _carry(new, "conv_k", self.conv_k.run_with_weight(k, lambda k, w, _b: bidirectional_short_conv(
                k, w, f, ctx.chunk_id, initial_state=st.conv_k, output_final_state=keep)))
        q = torch.relu_(self._norm(self.q_norm, q))
        k = torch.relu_(self._norm(self.k_norm, k)).mul_((self.head_dim ** -0.5) * (S ** -0.5))
        q, k, v = self._to_scan(q, f), self._to_scan(k, f), self._to_scan(v, f)
        rope = ctx.rope.view(f, S, -1)
        out = _carry(new, "gdn", frame_gdn(apply_rope(q, rope), apply_rope(k, rope), v, beta, decay, q_den=q,
                                           k_den=k, eps=self.gdn_eps, chunk_id=ctx.chunk_id,
                                           initial_state=st.gdn, output_final_state=keep, kernels=ctx.kernels))
        return self._from_scan(out).to(v.dtype)

    def _main_softmax(self, q, k, v, ctx: FrameContext, st: BlockState, new: Optional[dict]) -> torch.Tensor:
        q = apply_rope(self._to_heads(self._norm(self.q_norm, q)), ctx.rope)
        k = apply_rope(self._to_heads(self._norm(self.k_norm, k)), ctx.rope)
        out = softmax_attention(q, k, self._to_heads(v), chunk_id=ctx.chunk_id,
                                tokens_per_frame=ctx.tokens_per_frame,
                                initial_state=None if st.kv is None else (st.kv.k, st.kv.v),
                                output_final_state=new is not None, kernels=ctx.kernels)
        if new is not None:
            out, (k_all, v_all) = out
            new["kv"] = _kv_after(st.kv, k_all, v_all, ctx)
        B, H, N, D = out.shape
        return out.transpose(1, 2).reshape(B, N, H * D)

    def _camera(self, x, beta, decay, ctx: FrameContext, st: BlockState, new: Optional[dict]) -> torch.Tensor:
        """UCPE camera branch: projections, (GDN: short conv, ReLU, key scale), ray-space transform,
        optional RMS renorm, bidirectional numerator-only GDN or softmax, inverse transform."""
        f = ctx.fhw[0]
        S = ctx.tokens_per_frame
        B, N, C = x.shape
        H, D = self.heads, self.head_dim
        q, k, v = self.q_proj_cam(x), self.k_proj_cam(x), self.v_proj_cam(x)
        keep = new is not None
        if self.conv_k_cam is not None:
            k = _carry(new, "conv_k_cam", self.conv_k_cam.run_with_weight(k, lambda k, w, _b: bidirectional_short_conv(
                k, w, f, ctx.chunk_id, initial_state=st.conv_k_cam, output_final_state=keep)))
        q, k = self._norm(self.q_norm_cam, q), self._norm(self.k_norm_cam, k)
        if not self.softmax:
            q = torch.relu_(q)
            k = torch.relu_(k).mul_((D ** -0.5) * (S ** -0.5))
        P_T = ctx.P.transpose(-1, -2)

        def encode(t: torch.Tensor, mat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """(transformed in the branch layout, its pre-transform per-head L2 norm)."""
            t4 = t.view(B, N, H, D)
            if self.softmax:
                dst = torch.empty(B, H, N, D, dtype=t.dtype, device=t.device)
                tok = dst.transpose(1, 2)
            else:
                dst = torch.empty(B, H, f, S, D, dtype=t.dtype, device=t.device)
                tok = dst.permute(0, 2, 3, 1, 4).view(B, N, H, D)
            ucpe_tokens(t4, mat, ctx.cam_rope, tok)
            norm = torch.linalg.vector_norm(t4, dim=-1, keepdim=True)  # (B, N, H, 1)
            norm = norm.transpose(1, 2) if self.softmax else norm.view(B, f, S, H, 1).permute(0, 3, 1, 2, 4)
            return dst, norm

        qu, q_norm = encode(q, P_T)
        ku, k_norm = encode(k, ctx.P_inv)
        vu, v_norm = encode(v, ctx.P_inv)
        ku_norm = torch.linalg.vector_norm(ku, dim=-1, keepdim=True)
        if self.ucpe_renorm:
            qu.mul_(rms_scale(q_norm, torch.linalg.vector_norm(qu, dim=-1, keepdim=True), D))
            k_scale = rms_scale(k_norm, ku_norm, D)
            ku.mul_(k_scale)
            ku_norm = ku_norm * k_scale
            vu.mul_(rms_scale(v_norm, torch.linalg.vector_norm(vu, dim=-1, keepdim=True), D))
        if self.softmax:
            out = camera_softmax_attention(qu, ku, vu, chunk_id=ctx.chunk_id, tokens_per_frame=S,
                                           initial_state=None if st.kv_cam is None else (st.kv_cam.k, st.kv_cam.v),
                                           output_final_state=keep, kernels=ctx.kernels)
            if keep:
                out, (k_all, v_all) = out
                new["kv_cam"] = _kv_after(st.kv_cam, k_all, v_all, ctx)
            out_tok = out.transpose(1, 2)
        else:
            inflation = (ku_norm.clamp_min(1e-6) / k_norm.clamp_min(1e-6)).square().squeeze(-1).mean(dim=-1)
            beta_cam = beta / inflation.clamp_min(1.0).unsqueeze(-1)  # (B, H, F, S)
            out = _carry(new, "gdn_cam", frame_gdn(qu, ku, vu, beta_cam, decay, chunk_id=ctx.chunk_id,
                                                   initial_state=st.gdn_cam, output_final_state=keep,
                                                   kernels=ctx.kernels)).to(v.dtype)
            out_tok = out.permute(0, 2, 3, 1, 4).reshape(B, N, H, D)
        res = torch.empty(B, N, H, D, dtype=out.dtype, device=out.device)
        ucpe_tokens(out_tok, ctx.P, ctx.cam_rope_inv, res)
        return res.view(B, N, C)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, ctx: FrameContext, state: Optional[BlockState] = None,
                new_state: Optional[dict] = None) -> torch.Tensor:
        """state: this block's carried `BlockState` (None = nothing before the window); new_state: a dict
        that receives the attention's `BlockState` fields after the window (None = do not collect)."""
        st = state if state is not None else BlockState()
        new = new_state
        B, N, C = x.shape
        f = ctx.fhw[0]
        q, k, v = self.qkv(x).view(B, N, 3, C).unbind(2)
        beta = decay = None
        if self.softmax:
            out = self._main_softmax(q, k, v, ctx, st, new)
        else:
            beta, decay = self._gates(x, f)
            out = self._main_gdn(q, k, v, beta, decay, ctx, st, new)
        if ctx.P is not None:
            out += self.out_proj_cam(self._camera(x, beta, decay, ctx, st, new))  # out is this call's own tensor
        gate = F.silu(self.output_gate(x).float(), inplace=True)
        out = out.mul_(gate) if out.dtype == gate.dtype else out * gate
        return self.proj(out.to(x.dtype))
