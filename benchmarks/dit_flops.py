"""Analytic FLOP count of one Stage-1 forward (2 FLOPs per multiply-add), for roofline ratios."""
from __future__ import annotations

from sana_wm_core.model import SanaWMConfig


def forward_flops(cfg: SanaWMConfig, batch: int, frames: int, height: int, width: int, text_len: int = 300) -> dict:
    """FLOPs by part for a (batch, C, frames, height, width) latent; returns a dict with 'total'."""
    C, D, hid = cfg.hidden_size, cfg.linear_head_dim, cfg.ffn_hidden
    ph, pw = cfg.patch_size[1:]
    n_frame = (height // ph) * (width // pw)
    n = batch * frames * n_frame  # tokens in the batch
    N = frames * n_frame  # tokens per sample
    dense_attn = 2 * n * C * C * (3 + 3 + 1 + 1 + 1)  # qkv, cam qkv, output gate, proj, out_proj_cam
    plucker = 2 * n * C * C
    cross = 2 * n * C * C * 2 + 2 * batch * text_len * C * 2 * C + 4 * n * text_len * C
    ffn = 2 * n * C * 2 * hid + 2 * n * 2 * hid * 9 + 2 * n * hid * C + 2 * n * C * C * cfg.t_kernel_size
    gdn = 2 * 6 * n * C * D  # main + camera: G/A builds and the output GEMM
    sdpa = 2 * 4 * batch * N * N * C  # main + camera softmax
    n_soft = len(cfg.softmax_blocks)
    n_gdn = cfg.num_layers - n_soft
    per_block = dense_attn + plucker + cross + ffn
    parts = {
        "dense GEMMs": cfg.num_layers * per_block,
        "GDN scans": n_gdn * gdn,
        "softmax SDPA": n_soft * sdpa,
        "embed/final": 2 * n * C * (cfg.in_channels * 2 + cfg.chunk_plucker_channels),
    }
    parts["total"] = sum(parts.values())
    return parts
