"""The SANA-WM Stage-1 transformer (native PyTorch, diffusers-compatible parameter names).

forward(hidden_states, timestep, encoder_hidden_states, encoder_attention_mask=None,
        camera_conditions=None, chunk_plucker=None) -> (B, C, F, H, W) velocity,
equal to diffusers' `SanaWMTransformer3DModel(...)[0]` for the same weights and inputs.

With `cache=` (a `DiTCache`) the inputs are a window of frames that starts at `cache.next_frame` and the
model reads the carried state of the earlier frames; `output_cache=True` also returns the state after
the window (chunk-causal and streaming samplers, see `cache.py`).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn as nn

from .attention import FrameContext
from .block import SanaWMBlock
from ..chunks import chunk_ids_from_starts
from ..runtime.kernels import KernelSettings
from ..runtime.offload import BlockOffloader
from .cache import DiTCache
from .config import SanaWMConfig, chunk_ids
from .config import chunk_starts as planned_chunk_starts
from .inputs import normalize_inputs
from .layers import CaptionEmbedder, FinalLayer, PatchEmbed, TimestepEmbedder
from .ops import TorchOps, layer_class
from .rope import camera_rope_table, rope_table
from ..runtime.host import Host
from .ucpe import ray_matrices


class SanaWMTransformer(nn.Module):
    """Stage-1 DiT built from a `SanaWMConfig` (any size).

    operations: the namespace its linear / conv / norm layers come from (`ops.py`): the torch.nn default, or
    ComfyUI's `comfy.ops.*` so ComfyUI's model management can cast, offload and patch them per layer."""

    accepts_host = True  # forward(host=) checks the host's interrupt before every block

    def __init__(self, config: SanaWMConfig, operations: Any = TorchOps) -> None:
        super().__init__()
        self.config = cfg = config
        self.operations = operations if operations is not None else TorchOps
        ops = self.operations
        C, patch = cfg.hidden_size, cfg.patch_size
        self.t_embedder = TimestepEmbedder(C, operations=ops)
        self.attention_y_norm = layer_class(ops, "RMSNorm")(C, eps=cfg.norm_eps) if cfg.y_norm else None
        self.t_block = nn.Sequential(nn.SiLU(), layer_class(ops, "Linear")(C, 6 * C))
        self.x_embedder = PatchEmbed(cfg.in_channels, C, patch, operations=ops)
        self.y_embedder = CaptionEmbedder(cfg.caption_channels, C, operations=ops)
        self.plucker_embedder = (PatchEmbed(cfg.chunk_plucker_channels, C, patch, operations=ops)
                                 if cfg.use_chunk_plucker_post_attn else None)
        self.raymap_embedder = PatchEmbed(3, C, patch, operations=ops)  # in the checkpoint, unused here
        self.blocks = nn.ModuleList(SanaWMBlock(cfg, i, operations=ops) for i in range(cfg.num_layers))
        self.final_layer = FinalLayer(C, cfg.in_channels * patch[0] * patch[1] * patch[2], operations=ops)
        self._compute_dtype: Optional[torch.dtype] = None
        self._offloader: Optional[BlockOffloader] = None
        self.kernels = KernelSettings.from_env()  # kernel choice, read once; assign to change it per model
        self._rope_cache: dict = {}

    # ------------------------------------------------------------------ integration hooks
    @property
    def offloader(self) -> Optional[BlockOffloader]:
        """The block offloader streaming this model's blocks (`enable_block_offload`), None when placed whole."""
        return self._offloader

    @offloader.setter
    def offloader(self, value: Optional[BlockOffloader]) -> None:
        self._offloader = value

    @property
    def compute_dtype(self) -> torch.dtype:
        """Activation dtype: the one assigned (weights stored in another dtype and cast per layer, as ComfyUI's
        manual_cast does), else the weights' dtype, bf16 when the weights are stored in fp8."""
        if self._compute_dtype is not None:
            return self._compute_dtype
        dt = self.x_embedder.proj.weight.dtype
        return torch.bfloat16 if dt.itemsize == 1 else dt

    @compute_dtype.setter
    def compute_dtype(self, value: Optional[torch.dtype]) -> None:
        self._compute_dtype = value

    def get_dtype(self) -> torch.dtype:  # ComfyUI's ModelPatcher.model_dtype() asks this
        return self.compute_dtype

    def memory_required(self, input_shape) -> int:
        """Rough peak activation bytes of one forward for a (B, C, F, H, W) latent (for memory planning)."""
        B, _, F_, H, W = input_shape
        n = B * F_ * H * W // (self.config.patch_size[1] * self.config.patch_size[2])
        per_token = 24 * self.config.hidden_size + 6 * self.config.ffn_hidden
        return int(n * per_token * self.compute_dtype.itemsize)

    # ------------------------------------------------------------------ per-forward tables
    def _context(self, fhw: tuple, camera_conditions: Optional[torch.Tensor], device, frame_offset: int = 0,
                 chunk_starts: Optional[Sequence[int]] = None) -> FrameContext:
        cfg = self.config
        key = (fhw, frame_offset, str(device))
        if key not in self._rope_cache:
            self._rope_cache.clear()
            table = rope_table(cfg.linear_head_dim, fhw, theta=cfg.rope_theta, max_len=cfg.rope_max_seq_len,
                               frame_offset=frame_offset)
            cam = camera_rope_table(table, cfg.linear_head_dim)
            self._rope_cache[key] = tuple(t.contiguous().to(device) for t in (table, cam, cam.conj().resolve_conj()))
        rope, cam_rope, cam_rope_inv = self._rope_cache[key]
        ctx = FrameContext(fhw=fhw, rope=rope, kernels=self.kernels, frame_offset=frame_offset)
        ctx.chunk_id = self._window_chunk_ids(fhw[0], frame_offset, chunk_starts)
        if camera_conditions is not None:
            ctx.P, ctx.P_inv = ray_matrices(camera_conditions, fhw, cfg.patch_size)
            ctx.cam_rope, ctx.cam_rope_inv = cam_rope, cam_rope_inv
        return ctx

    def _window_chunk_ids(self, f: int, offset: int, starts: Optional[Sequence[int]]) -> Optional[list]:
        """Chunk index of each window frame, from the absolute chunk starts (planned over [0, offset + f)
        when not given). None for the bidirectional model (a window is then one chunk)."""
        cfg = self.config
        if cfg.chunk_size is None:
            if starts is not None:
                raise ValueError("chunk_starts given to a bidirectional model (config.chunk_size is None); load "
                                 "a chunk-causal checkpoint or leave chunk_starts unset")
            return None
        if starts is None:
            if offset == 0:
                return chunk_ids(f, cfg.chunk_size, cfg.chunk_split_strategy)
            starts = planned_chunk_starts(offset + f, cfg.chunk_size, cfg.chunk_split_strategy)
        starts = sorted(int(s) for s in starts)
        if offset and offset not in starts:
            raise ValueError(f"a cached window must start at a chunk start; frame {offset} is not one of the "
                             f"chunk starts {starts}")
        ids = chunk_ids_from_starts(offset + f, starts)
        return ids[offset:]

    # ------------------------------------------------------------------ forward
    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                encoder_attention_mask: Optional[torch.Tensor] = None,
                camera_conditions: Optional[torch.Tensor] = None, chunk_plucker: Optional[torch.Tensor] = None,
                *, mask: Optional[torch.Tensor] = None,
                host: Optional[Host] = None, cache: Optional[DiTCache] = None,
                output_cache: bool = False, chunk_starts: Optional[Sequence[int]] = None):
        """Velocity (B, C, F, H, W).

        timestep: per-frame (B, 1, F) as the pipeline passes it, or (B, F), (B,), a scalar; values are
        truncated to integers like the reference. encoder_hidden_states: (B, 1, L, D) or (B, L, D).
        encoder_attention_mask (alias `mask`): (B, L) 1 = token, 0 = padding (also (B, 1, L) / (B, 1, 1, L)).
        camera_conditions: (B, F, 20) [c2w row-major, fx, fy, cx, cy in latent pixels]; None disables the
        camera branch. chunk_plucker: (B, 48, F, H, W); None disables the Plücker injection.
        cache: the `DiTCache` of the frames before this window (the window starts at `cache.next_frame`;
        RoPE uses absolute positions); output_cache: return `(velocity, DiTCache after the window)`.
        chunk_starts: absolute chunk start frames (chunk-causal model; default: the config's plan).
        host: a `runtime.host.Host` whose `check_interrupt()` runs before every block (a cancel lands
        within one block).
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
        offset = 0 if cache is None else int(cache.next_frame)
        if chunk_starts is None and cache is not None:
            chunk_starts = cache.chunk_starts
        ctx = self._context(fhw, inp.camera, device, offset, chunk_starts)

        temb = self.t_embedder(inp.timestep.flatten(), dtype)  # (B*F, C)
        t0 = self.t_block(temb).view(B, fhw[0], 6, -1)
        y = self.y_embedder(inp.text)
        if self.attention_y_norm is not None:
            y = self.attention_y_norm(y)

        new_states = []
        for i, block in enumerate(self.blocks):
            if host is not None:
                host.check_interrupt()
            if self._offloader is not None:
                self._offloader.before_block(i)
            if cache is None and not output_cache:
                x = block(x, y, t0, inp.mask, ctx, plucker_emb)
            else:
                x = block(x, y, t0, inp.mask, ctx, plucker_emb, None if cache is None else cache.block(i),
                          output_state=output_cache)
                if output_cache:
                    x, st = x
                    new_states.append(st)
            if self._offloader is not None:
                self._offloader.after_block(i)

        out = self._unpatchify(self.final_layer(x, temb.view(B, fhw[0], -1)), fhw)
        if not output_cache:
            return out
        starts = None if chunk_starts is None else tuple(int(s) for s in chunk_starts)
        return out, DiTCache(blocks=tuple(new_states), next_frame=offset + fhw[0], chunk_starts=starts)

    def _unpatchify(self, x: torch.Tensor, fhw: tuple) -> torch.Tensor:
        f, h, w = fhw
        pt, ph, pw = self.config.patch_size
        B = x.shape[0]
        c = x.shape[-1] // (pt * ph * pw)
        x = x.reshape(B, f, h, w, pt, ph, pw, c).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.reshape(B, c, f * pt, h * ph, w * pw)
