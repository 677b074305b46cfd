"""The Pi3X network, assembled from `layers` and `heads` under the released checkpoint's module names.

`Pi3XNetwork(config, runtime_only=True)` builds just what `local_points` needs (encoder, decoder, point and
metric branches); `runtime_only=False` adds the camera, confidence and multimodal branches so the full key set
of a checkpoint can be enumerated (on the meta device, allocating nothing).
"""
from __future__ import annotations

import torch
from torch import nn

from .config import Pi3XConfig
from .heads import CameraHead, ContextDecoder, ConvHead, TokenDecoder
from .layers import Block, DinoEncoder, PatchEmbed

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MULTIMODAL_PREFIXES = ("depth_encoder.", "depth_emb", "ray_embed.", "pose_inject_blk.")
CONSTANT_BUFFERS = ("image_mean", "image_std")


def constant_buffer(key: str) -> torch.Tensor:
    """The fixed ImageNet statistics Pi3X normalises its input with, shaped (1,3,1,1)."""
    values = IMAGENET_MEAN if key == "image_mean" else IMAGENET_STD
    return torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1)


class Pi3XNetwork(nn.Module):
    """Image(s) in [0,1] -> per-pixel camera-frame points; see `forward`."""

    def __init__(self, config: Pi3XConfig, *, runtime_only: bool = True):
        super().__init__()
        c = config.validate()
        self.config = c
        self.encoder = DinoEncoder(in_channels=3, width=c.dim, depth=c.encoder_depth, heads=c.encoder_heads,
                                   registers=c.encoder_registers, pos_grid=c.encoder_pos_grid, patch=c.patch_size,
                                   mlp_ratio=c.mlp_ratio)
        self.decoder = nn.ModuleList(
            Block(c.dim, c.decoder_heads, c.mlp_ratio, layer_scale=True, qk_norm=True, rope_base=c.rope_freq)
            for _ in range(c.decoder_depth))
        self.register_token = nn.Parameter(torch.zeros(1, 1, c.decoder_registers, c.dim))
        self.point_decoder = self._token_decoder(c.point_channels)
        self.point_head = ConvHead(c.point_channels, c.upsample_channels, (2, 1), c.res_blocks,
                                   c.last_conv_channels)
        self.metric_token = nn.Parameter(torch.zeros(1, 1, 2 * c.dim))
        self.metric_decoder = ContextDecoder(2 * c.dim, c.metric_width, c.head_depth, c.metric_heads,
                                             c.metric_channels, c.mlp_ratio, c.rope_freq)
        self.metric_head = nn.Linear(c.metric_channels, 1)
        self.register_buffer("image_mean", constant_buffer("image_mean"))
        self.register_buffer("image_std", constant_buffer("image_std"))
        if not runtime_only:
            self._add_unused_branches(c)

    def _token_decoder(self, out_width: int) -> TokenDecoder:
        c = self.config
        return TokenDecoder(2 * c.dim, c.head_width, c.head_depth, c.head_heads, out_width, c.mlp_ratio,
                            c.rope_freq)

    def _add_unused_branches(self, c: Pi3XConfig) -> None:
        self.camera_decoder = self._token_decoder(c.camera_channels)
        self.camera_head = CameraHead(c.camera_channels)
        self.conf_decoder = self._token_decoder(c.point_channels)
        self.conf_head = ConvHead(c.point_channels, c.upsample_channels, (1,), c.res_blocks, c.last_conv_channels)
        if c.multimodal:
            self.depth_encoder = DinoEncoder(in_channels=2, width=c.dim, depth=c.encoder_depth,
                                             heads=c.encoder_heads, registers=c.encoder_registers,
                                             pos_grid=c.encoder_pos_grid, patch=c.patch_size, mlp_ratio=c.mlp_ratio)
            self.depth_emb = nn.Parameter(torch.zeros(1, 1, c.dim))
            self.ray_embed = PatchEmbed(2, c.dim, c.patch_size)
            self.pose_inject_blk = nn.ModuleList(
                Block(c.dim, c.decoder_heads, c.mlp_ratio, layer_scale=True, qk_norm=True)
                for _ in range(c.pose_inject_blocks))

    def _token_positions(self, views: int, patch_h: int, patch_w: int, device: torch.device) -> torch.Tensor:
        """(views, registers + patches, 2) (row, col): registers at (0,0), patch (r,c) at (r+1, c+1)."""
        rows = torch.arange(patch_h, device=device)
        cols = torch.arange(patch_w, device=device)
        grid = torch.cartesian_prod(rows, cols) + 1
        special = torch.zeros(self.config.decoder_registers, 2, dtype=grid.dtype, device=device)
        return torch.cat((special, grid), dim=0)[None].expand(views, -1, -1).clone()

    def _decode(self, tokens: torch.Tensor, batch: int, views: int, pos: torch.Tensor) -> torch.Tensor:
        """Alternates per-view and all-views attention; returns the last two blocks' outputs side by side."""
        regs = self.register_token.repeat(batch, views, 1, 1).reshape(batch * views, -1, tokens.shape[-1])
        x = torch.cat((regs, tokens), dim=1)
        length = x.shape[1]
        before_last = x
        for i, blk in enumerate(self.decoder):
            if i % 2 == 0:
                x = blk(x.reshape(batch * views, length, -1), pos.reshape(batch * views, length, -1))
            else:
                x = blk(x.reshape(batch, views * length, -1), pos.reshape(batch, views * length, -1))
            if i == len(self.decoder) - 2:
                before_last = x.reshape(batch * views, length, -1)
        return torch.cat((before_last, x.reshape(batch * views, length, -1)), dim=-1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B, N, 3, H, W) in [0,1], H and W multiples of the patch size.

        Returns `local_points` (B,N,H,W,3): camera-frame points in metric scale (xy*z, z), plus the raw `xy`
        ray slopes, depth `z` and the scalar `metric` per batch item. Heads run in fp32 with autocast off, like
        the reference; the trunk follows whatever autocast the caller set.
        """
        c = self.config
        b, n, _, h, w = images.shape
        if h % c.patch_size or w % c.patch_size:
            raise ValueError(f"Pi3X input {w}x{h} must be a multiple of {c.patch_size} on both sides")
        ph, pw = h // c.patch_size, w // c.patch_size
        x = (images - self.image_mean) / self.image_std
        tokens = self.encoder(x.reshape(b * n, 3, h, w))
        pos = self._token_positions(b * n, ph, pw, images.device)
        hidden = self._decode(tokens, b, n, pos)
        point_tokens = self.point_decoder(hidden, pos)
        length = hidden.shape[1]
        scene_pos = pos.reshape(b, n * length, -1)
        metric_tokens = self.metric_decoder(self.metric_token.repeat(b, 1, 1), hidden.reshape(b, n * length, -1),
                                            scene_pos[:, :1], scene_pos)
        regs = c.decoder_registers
        with torch.autocast(device_type=images.device.type, enabled=False):
            xy, z = self.point_head(point_tokens[:, regs:].float(), ph, pw, c.patch_size)
            xy = xy.permute(0, 2, 3, 1).reshape(b, n, h, w, 2)
            z = torch.exp(z.clamp(max=15.0)).permute(0, 2, 3, 1).reshape(b, n, h, w, 1)
            metric = self.metric_head(metric_tokens.float()).reshape(b).exp()
            local = torch.cat((xy * z, z), dim=-1) * metric.view(b, 1, 1, 1, 1)
        return {"local_points": local, "xy": xy, "z": z, "metric": metric}
