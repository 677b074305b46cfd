"""One transformer block: per-frame adaLN-modulated self-attention, Plücker injection, text
cross-attention, modulated GLUMBConvTemp FFN."""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import FrameContext, HybridAttention
from .cache import BlockState
from .config import SanaWMConfig
from .cross_attention import CrossAttention
from .ffn import GLUMBConvTemp
from .ops import TorchOps, layer_class


class SanaWMBlock(nn.Module):
    def __init__(self, cfg: SanaWMConfig, index: int, operations: Any = TorchOps) -> None:
        super().__init__()
        C = cfg.hidden_size
        self.index = index
        self.scale_shift_table = nn.Parameter(torch.randn(6, C) / C ** 0.5)
        self.plucker_proj = layer_class(operations, "Linear")(C, C) if cfg.block_has_plucker(index) else None
        self.attn = HybridAttention(C, cfg.linear_head_dim, softmax=index in cfg.softmax_blocks,
                                    conv_kernel=cfg.conv_kernel_size, qk_norm=cfg.qk_norm, norm_eps=cfg.norm_eps,
                                    gdn_eps=cfg.gdn_eps, ucpe_renorm=cfg.ucpe_renorm, operations=operations)
        self.cross_attn = CrossAttention(C, cfg.num_attention_heads, qk_norm=cfg.cross_norm, operations=operations)
        self.mlp = GLUMBConvTemp(C, cfg.ffn_hidden, cfg.t_kernel_size, operations=operations)

    def forward(self, x: torch.Tensor, y: torch.Tensor, t0: torch.Tensor, mask: Optional[torch.Tensor],
                ctx: FrameContext, plucker_emb: Optional[torch.Tensor] = None,
                state: Optional[BlockState] = None, output_state: bool = False):
        """x: (B, N, C); y: (B, L, C); t0: (B, F, 6, C) per-frame modulation.

        state: the `BlockState` of the frames before this window; with output_state returns
        `(x, BlockState after the window)`."""
        B, N, C = x.shape
        f = ctx.fhw[0]
        mod = self.scale_shift_table.to(x.device, x.dtype)[None, None] + t0  # (B, F, 6, C)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (m.unsqueeze(2) for m in mod.unbind(2))

        # modulation and gated residuals as single addcmul passes (ln * (1 + scale) + shift, x + gate * y): on a
        # CPU these token-wide elementwise passes are a sizeable share of a block next to its GEMMs
        a = torch.addcmul(shift_msa, F.layer_norm(x, (C,), eps=1e-6).view(B, f, -1, C), 1 + scale_msa)
        new = {} if output_state else None
        attn = self.attn(a.view(B, N, C), ctx, state, new)
        x = torch.addcmul(x.view(B, f, -1, C), gate_msa, attn.view(B, f, -1, C)).view(B, N, C)
        if plucker_emb is not None and self.plucker_proj is not None:
            x += self.plucker_proj(plucker_emb)  # x is this block's own tensor from here on
        x += self.cross_attn(x, y, mask)
        m = torch.addcmul(shift_mlp, F.layer_norm(x, (C,), eps=1e-6).view(B, f, -1, C), 1 + scale_mlp)
        out = self.mlp(m.view(B, N, C), ctx.fhw, ctx.chunk_id,
                       initial_state=None if state is None else state.ffn, output_final_state=output_state)
        if output_state:
            out, new["ffn"] = out
        x = torch.addcmul(x.view(B, f, -1, C), gate_mlp, out.view(B, f, -1, C)).view(B, N, C)
        return (x, BlockState(**new)) if output_state else x
