"""Transformer pieces of Pi3X: 2D rotary positions, attention, blocks and the DINOv2-style image encoder.

Attribute names follow the released checkpoint's state-dict keys (`attn.qkv`, `ls1.gamma`, `mlp.fc1`, ...), so
`load_state_dict` takes the official tensors unchanged. The numerics follow the reference op for op (including the
dtype casts of the rotary tables) so that bf16 autocast on a GPU gives the same numbers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _ln(width: int) -> nn.LayerNorm:
    return nn.LayerNorm(width, eps=1e-6)


class Mlp(nn.Module):
    """Two linear layers with an exact GELU between them."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel residual gain (`gamma`)."""

    def __init__(self, width: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((width,), 0.01))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def _rope_tables(half: int, length: int, base: float, dtype: torch.dtype, device: torch.device):
    """cos/sin tables for one axis: frequencies in fp32, angles cast to the token dtype before cos/sin."""
    inv_freq = 1.0 / (base ** (torch.arange(0, half, 2, device=device).float() / half))
    steps = torch.arange(length, device=device, dtype=inv_freq.dtype)
    angles = torch.outer(steps, inv_freq).to(dtype)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def _rotate(tokens: torch.Tensor, pos: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = tokens.shape[-1] // 2
    swapped = torch.cat((-tokens[..., half:], tokens[..., :half]), dim=-1)
    return tokens * cos[pos][:, None] + swapped * sin[pos][:, None]


def apply_rope2d(tokens: torch.Tensor, pos: torch.Tensor, base: float) -> torch.Tensor:
    """Rotates the first half of each head by the row index and the second half by the column index.

    tokens: (B, heads, N, head_dim); pos: (B, N, 2) integer (row, col) per token.
    """
    half = tokens.shape[-1] // 2
    cos, sin = _rope_tables(half, int(pos.max()) + 1, base, tokens.dtype, tokens.device)
    rows, cols = tokens.chunk(2, dim=-1)
    return torch.cat((_rotate(rows, pos[:, :, 0], cos, sin), _rotate(cols, pos[:, :, 1], cos, sin)), dim=-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention; optional per-head LayerNorm on q,k (eps 1e-5) and 2D RoPE."""

    def __init__(self, width: int, heads: int, *, qk_norm: bool = False, rope_base: float | None = None):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        if qk_norm:
            self.q_norm = nn.LayerNorm(width // heads)
            self.k_norm = nn.LayerNorm(width // heads)
        self.qk_norm = qk_norm
        self.rope_base = rope_base

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if self.qk_norm:
            q, k = self.q_norm(q).to(v.dtype), self.k_norm(k).to(v.dtype)
        if self.rope_base is not None:
            q, k = apply_rope2d(q, pos, self.rope_base), apply_rope2d(k, pos, self.rope_base)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class CrossAttention(nn.Module):
    """Queries from `x`, keys and values from `context`, 2D RoPE on both sides."""

    def __init__(self, width: int, heads: int, *, rope_base: float):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.proj = nn.Linear(width, width)
        self.rope_base = rope_base

    def forward(self, x: torch.Tensor, context: torch.Tensor, xpos: torch.Tensor,
                cpos: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        m = context.shape[1]
        hd = c // self.heads
        q = self.q_proj(x).reshape(b, n, self.heads, hd).transpose(1, 2)
        k = self.k_proj(context).reshape(b, m, self.heads, hd).transpose(1, 2)
        v = self.v_proj(context).reshape(b, m, self.heads, hd).transpose(1, 2)
        q, k = q.to(v.dtype), k.to(v.dtype)
        q, k = apply_rope2d(q, xpos, self.rope_base), apply_rope2d(k, cpos, self.rope_base)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1 x)), then x + ls2(mlp(norm2 x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, *, layer_scale: bool, qk_norm: bool = False,
                 rope_base: float | None = None):
        super().__init__()
        self.norm1 = _ln(width)
        self.attn = SelfAttention(width, heads, qk_norm=qk_norm, rope_base=rope_base)
        self.norm2 = _ln(width)
        self.mlp = Mlp(width, int(width * mlp_ratio))
        if layer_scale:
            self.ls1 = LayerScale(width)
            self.ls2 = LayerScale(width)
        self.layer_scale = layer_scale

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        a = self.attn(self.norm1(x), pos)
        x = x + (self.ls1(a) if self.layer_scale else a)
        f = self.mlp(self.norm2(x))
        return x + (self.ls2(f) if self.layer_scale else f)


class CrossOnlyBlock(nn.Module):
    """Cross-attention (to a normalised context) then MLP, no self-attention: the metric-scale decoder."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, *, rope_base: float):
        super().__init__()
        self.norm2 = _ln(width)
        self.norm_y = _ln(width)
        self.cross_attn = CrossAttention(width, heads, rope_base=rope_base)
        self.norm3 = _ln(width)
        self.mlp = Mlp(width, int(width * mlp_ratio))

    def forward(self, x: torch.Tensor, context: torch.Tensor, xpos: torch.Tensor,
                cpos: torch.Tensor) -> torch.Tensor:
        x = x + self.cross_attn(self.norm2(x), self.norm_y(context), xpos, cpos)
        return x + self.mlp(self.norm3(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens (B, patches, width)."""

    def __init__(self, in_channels: int, width: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, width, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoEncoder(nn.Module):
    """DINOv2 ViT with register tokens; returns the normalised patch tokens only.

    The learned position grid (`pos_embed`, one class slot + grid^2) is resized bicubically with antialiasing
    to the input's patch grid, as DINOv2-reg does.
    """

    def __init__(self, *, in_channels: int, width: int, depth: int, heads: int, registers: int, pos_grid: int,
                 patch: int, mlp_ratio: float):
        super().__init__()
        self.patch = patch
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, pos_grid * pos_grid + 1, width))
        self.register_tokens = nn.Parameter(torch.zeros(1, registers, width))
        self.patch_embed = PatchEmbed(in_channels, width, patch)
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, layer_scale=True) for _ in range(depth))
        self.norm = _ln(width)

    def _positions(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        grid_tokens = self.pos_embed.shape[1] - 1
        if x.shape[1] - 1 == grid_tokens and height == width:
            return self.pos_embed
        dtype = x.dtype
        table = self.pos_embed.float()
        side = int(round(grid_tokens ** 0.5))
        grid = table[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(height // self.patch, width // self.patch), mode="bicubic",
                             antialias=True)
        grid = grid.permute(0, 2, 3, 1).reshape(1, -1, table.shape[-1])
        return torch.cat((table[:, :1], grid), dim=1).to(dtype)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        x = self.patch_embed(images)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self._positions(x, height, width)
        regs = self.register_tokens.expand(x.shape[0], -1, -1)
        x = torch.cat((x[:, :1], regs, x[:, 1:]), dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 1 + self.register_tokens.shape[1]:]
