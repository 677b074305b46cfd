"""Pi3X output heads: the transformer decoders over decoder tokens and the MoGe-style convolutional head.

Only the point branch (and the metric scale) run for intrinsics; the camera and confidence branches exist so a
strict load of the released checkpoint accounts for every tensor, and so `CameraHead` holds parameters only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Block, CrossOnlyBlock


class TokenDecoder(nn.Module):
    """Linear in, a few RoPE self-attention blocks (no layer scale, no q/k norm), linear out."""

    def __init__(self, in_width: int, width: int, depth: int, heads: int, out_width: int, mlp_ratio: float,
                 rope_base: float):
        super().__init__()
        self.projects = nn.Linear(in_width, width)
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, layer_scale=False, rope_base=rope_base)
                                    for _ in range(depth))
        self.linear_out = nn.Linear(width, out_width)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = self.projects(x)
        for blk in self.blocks:
            x = blk(x, pos)
        return self.linear_out(x)


class ContextDecoder(nn.Module):
    """A query token refined only by cross-attention to all scene tokens (Pi3X's metric-scale decoder)."""

    def __init__(self, in_width: int, width: int, depth: int, heads: int, out_width: int, mlp_ratio: float,
                 rope_base: float):
        super().__init__()
        self.projects_x = nn.Linear(in_width, width)
        self.projects_y = nn.Linear(in_width, width)
        self.blocks = nn.ModuleList(CrossOnlyBlock(width, heads, mlp_ratio, rope_base=rope_base)
                                    for _ in range(depth))
        self.linear_out = nn.Linear(width, out_width)

    def forward(self, query: torch.Tensor, context: torch.Tensor, qpos: torch.Tensor,
                cpos: torch.Tensor) -> torch.Tensor:
        x, ctx = self.projects_x(query), self.projects_y(context)
        for blk in self.blocks:
            x = blk(x, ctx, qpos, cpos)
        return self.linear_out(x)


def view_plane_uv(width: int, height: int, aspect: float, dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor:
    """(2, height, width) image-plane coordinates: pixel centres spanning +-aspect/diag in u, +-1/diag in v.

    These two channels are appended before every conv stage so the head knows the aspect ratio; a pinhole with
    rays proportional to them has its principal point exactly at the pixel-grid centre.
    """
    diag = (1.0 + aspect ** 2) ** 0.5
    su, sv = aspect / diag, 1.0 / diag
    u = torch.linspace(-su * (width - 1) / width, su * (width - 1) / width, width, dtype=dtype, device=device)
    v = torch.linspace(-sv * (height - 1) / height, sv * (height - 1) / height, height, dtype=dtype,
                       device=device)
    return torch.stack((u[None, :].expand(height, width), v[:, None].expand(height, width)), dim=0)


def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1, padding_mode="replicate")


class ResidualConv(nn.Module):
    """GroupNorm-ReLU-conv twice, plus the input (equal widths only, as Pi3X uses it)."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.layers = nn.Sequential(nn.GroupNorm(1, width), nn.ReLU(), _conv3(width, hidden),
                                    nn.GroupNorm(hidden // 32, hidden), nn.ReLU(), _conv3(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class ConvHead(nn.Module):
    """Patch tokens -> x2 upsampling stages -> bilinear to full resolution -> one small conv stack per output."""

    def __init__(self, in_channels: int, upsample: tuple[int, ...], outputs: tuple[int, ...], res_blocks: int,
                 last_channels: int, hidden_factor: int = 2):
        super().__init__()
        stages = []
        for cin, cout in zip((in_channels,) + tuple(upsample[:-1]), upsample):
            up = nn.Sequential(nn.ConvTranspose2d(cin + 2, cout, kernel_size=2, stride=2), _conv3(cout, cout))
            stages.append(nn.Sequential(up, *(ResidualConv(cout, hidden_factor * cout) for _ in range(res_blocks))))
        self.upsample_blocks = nn.ModuleList(stages)
        self.output_block = nn.ModuleList(
            nn.Sequential(_conv3(upsample[-1] + 2, last_channels), nn.ReLU(), nn.Conv2d(last_channels, n, 1))
            for n in outputs)

    def _with_uv(self, x: torch.Tensor, aspect: float) -> torch.Tensor:
        uv = view_plane_uv(x.shape[-1], x.shape[-2], aspect, x.dtype, x.device)
        return torch.cat((x, uv[None].expand(x.shape[0], -1, -1, -1)), dim=1)

    def forward(self, tokens: torch.Tensor, patch_h: int, patch_w: int, patch: int) -> list[torch.Tensor]:
        img_h, img_w = patch_h * patch, patch_w * patch
        aspect = img_w / img_h
        x = tokens.permute(0, 2, 1).unflatten(2, (patch_h, patch_w)).contiguous()
        for stage in self.upsample_blocks:
            x = stage(self._with_uv(x, aspect))
        x = F.interpolate(x, (img_h, img_w), mode="bilinear", align_corners=False)
        x = self._with_uv(x, aspect)
        return [block(x) for block in self.output_block]


class _ResLinear(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.res_conv1 = nn.Linear(width, width)
        self.res_conv2 = nn.Linear(width, width)
        self.res_conv3 = nn.Linear(width, width)


class CameraHead(nn.Module):
    """Parameters of Pi3X's pose head (kept so the checkpoint loads strictly; poses are not needed here)."""

    def __init__(self, width: int):
        super().__init__()
        self.res_conv = nn.ModuleList(_ResLinear(width) for _ in range(2))
        self.more_mlps = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.fc_t = nn.Linear(width, 3)
        self.fc_rot = nn.Linear(width, 9)
