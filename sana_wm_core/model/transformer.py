"""The SANA-WM Stage-1 transformer (native PyTorch, diffusers-compatible parameter names).

forward(hidden_states, timestep, encoder_hidden_states, encoder_attention_mask=None,
        camera_conditions=None, chunk_plucker=None) -> (B, C, F, H, W) velocity,
equal to diffusers' `SanaWMTransformer3DModel(...)[0]` for the same weights and inputs.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn

from .attention import FrameContext
from .block import SanaWMBlock
from ..runtime.kernels import KernelSettings
from ..runtime.offload import BlockOffloader
from .config import SanaWMConfig, chunk_ids
from .inputs import normalize_inputs
from .layers import CaptionEmbedder, FinalLayer, Linear, PatchEmbed, RMSNorm, TimestepEmbedder
from .rope import camera_rope_table, rope_table
from .ucpe import ray_matrices

BlockCallback = Callable[[int, int], None]


class SanaWMTransformer(nn.Module):
    """Stage-1 DiT built from a `SanaWMConfig` (any size)."""

    def __init__(self, config: SanaWMConfig) -> None:
        super().__init__()
        self.config = cfg = config
        C, patch = cfg.hidden_size, cfg.patch_size
        self.t_embedder = TimestepEmbedder(C)
        self.attention_y_norm = RMSNorm(C, cfg.norm_eps) if cfg.y_norm else None
        self.t_block = nn.Sequential(nn.SiLU(), Linear(C, 6 * C))
        self.x_embedder = PatchEmbed(cfg.in_channels, C, patch)
        self.y_embedder = CaptionEmbedder(cfg.caption_channels, C)
        self.plucker_embedder = (PatchEmbed(cfg.chunk_plucker_channels, C, patch)
                                 if cfg.use_chunk_plucker_post_attn else None)
        self.raymap_embedder = PatchEmbed(3, C, patch)  # in the checkpoint, unused by this configuration
        self.blocks = nn.ModuleList(SanaWMBlock(cfg, i) for i in range(cfg.num_layers))
        self.final_layer = FinalLayer(C, cfg.in_channels * patch[0] * patch[1] * patch[2])
        self._block_callback: Optional[BlockCallback] = None
        self._offloader: Optional[BlockOffloader] = None
        self.kernels = KernelSettings.from_env()  # kernel choice, read once; assign to change it per model
        self._rope_cache: dict = {}

    # ------------------------------------------------------------------ integration hooks
    def set_block_callback(self, fn: Optional[BlockCallback]) -> None:
        """Call fn(block_index, num_blocks) before every block (ComfyUI interrupt checks, progress)."""
        self._block_callback = fn

    @property
    def offloader(self) -> Optional[BlockOffloader]:
        """The block offloader streaming this model's blocks (`enable_block_offload`), None when placed whole."""
        return self._offloader

    @offloader.setter
    def offloader(self, value: Optional[BlockOffloader]) -> None:
        self._offloader = value

    @property
    def compute_dtype(self) -> torch.dtype:
        """Activation dtype: the weights' dtype, bf16 when the weights are stored in fp8."""
        dt = self.x_embedder.proj.weight.dtype
        return torch.bfloat16 if dt.itemsize == 1 else dt

    def get_dtype(self) -> torch.dtype:  # ComfyUI's ModelPatcher.model_dtype() asks this
        return self.compute_dtype

    def memory_required(self, input_shape) -> int:
        """Rough peak activation bytes of one forward for a (B, C, F, H, W) latent (for memory planning)."""
        B, _, F_, H, W = input_shape
        n = B * F_ * H * W // (self.config.patch_size[1] * self.config.patch_size[2])
        per_token = 24 * self.config.hidden_size + 6 * self.config.ffn_hidden
        return int(n * per_token * self.compute_dtype.itemsize)

    # ------------------------------------------------------------------ per-forward tables
    def _context(self, fhw: tuple, camera_conditions: Optional[torch.Tensor], device) -> FrameContext:
        cfg = self.config
        key = (fhw, str(device))
        if key not in self._rope_cache:
            self._rope_cache.clear()
            table = rope_table(cfg.linear_head_dim, fhw, theta=cfg.rope_theta, max_len=cfg.rope_max_seq_len)
            cam = camera_rope_table(table, cfg.linear_head_dim)
            self._rope_cache[key] = tuple(t.contiguous().to(device) for t in (table, cam, cam.conj().resolve_conj()))
        rope, cam_rope, cam_rope_inv = self._rope_cache[key]
        ctx = FrameContext(fhw=fhw, rope=rope, kernels=self.kernels)
        if cfg.chunk_size is not None:
            ctx.chunk_id = chunk_ids(fhw[0], cfg.chunk_size, cfg.chunk_split_strategy)
        if camera_conditions is not None:
            ctx.P, ctx.P_inv = ray_matrices(camera_conditions, fhw, cfg.patch_size)
            ctx.cam_rope, ctx.cam_rope_inv = cam_rope, cam_rope_inv
        return ctx

    # ------------------------------------------------------------------ forward
    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                encoder_attention_mask: Optional[torch.Tensor] = None,
                camera_conditions: Optional[torch.Tensor] = None, chunk_plucker: Optional[torch.Tensor] = None,
                *, mask: Optional[torch.Tensor] = None,
                block_callback: Optional[BlockCallback] = None) -> torch.Tensor:
        """Velocity (B, C, F, H, W).

        timestep: per-frame (B, 1, F) as the pipeline passes it, or (B, F), (B,), a scalar; values are
        truncated to integers like the reference. encoder_hidden_states: (B, 1, L, D) or (B, L, D).
        encoder_attention_mask (alias `mask`): (B, L) 1 = token, 0 = padding (also (B, 1, L) / (B, 1, 1, L)).
        camera_conditions: (B, F, 20) [c2w row-major, fx, fy, cx, cy in latent pixels]; None disables the
        camera branch. chunk_plucker: (B, 48, F, H, W); None disables the Plücker injection.
        """
        cfg = self.config
        device = self._offloader.device if self._offloader is not None else hidden_states.device
        dtype = self.compute_dtype
        inp = normalize_inputs(cfg, hidden_states, timestep, encoder_hidden_states,
                               mask if mask is not None else encoder_attention_mask, camera_conditions,
                               chunk_plucker, device=device, dtype=dtype)
        B, fhw = inp.batch, inp.fhw
        if self._offloader is not None:
            self._offloader.prepare()
        x = self.x_embedder(inp.x)
        plucker_emb = None
        if inp.plucker is not None and self.plucker_embedder is not None:
            plucker_emb = self.plucker_embedder(inp.plucker)
        ctx = self._context(fhw, inp.camera, device)

        temb = self.t_embedder(inp.timestep.flatten(), dtype)  # (B*F, C)
        t0 = self.t_block(temb).view(B, fhw[0], 6, -1)
        y = self.y_embedder(inp.text)
        if self.attention_y_norm is not None:
            y = self.attention_y_norm(y)

        callback = block_callback or self._block_callback
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            if callback is not None:
                callback(i, n)
            if self._offloader is not None:
                self._offloader.before_block(i)
            x = block(x, y, t0, inp.mask, ctx, plucker_emb)
            if self._offloader is not None:
                self._offloader.after_block(i)

        out = self.final_layer(x, temb.view(B, fhw[0], -1))
        return self._unpatchify(out, fhw)

    def _unpatchify(self, x: torch.Tensor, fhw: tuple) -> torch.Tensor:
        f, h, w = fhw
        pt, ph, pw = self.config.patch_size
        B = x.shape[0]
        c = x.shape[-1] // (pt * ph * pw)
        x = x.reshape(B, f, h, w, pt, ph, pw, c).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.reshape(B, c, f * pt, h * ph, w * pw)
