"""Checks and normalises the forward inputs before any heavy work, naming the input and the fix."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..camera.geometry import RAYMAP_WIDTH
from .config import SanaWMConfig


@dataclass
class ForwardInputs:
    x: torch.Tensor  # (B, C, F, H, W) compute dtype
    timestep: torch.Tensor  # (B, F) float32, integer-truncated
    text: torch.Tensor  # (B, L, D)
    mask: Optional[torch.Tensor]  # (B, L)
    camera: Optional[torch.Tensor]  # (B, F, 20) in its own dtype
    plucker: Optional[torch.Tensor]  # (B, 48, F, H, W)
    batch: int
    fhw: tuple


def _per_frame_timestep(t, B: int, F_: int, device) -> torch.Tensor:
    t = torch.as_tensor(t, device=device)
    if t.ndim == 3:
        if t.shape[1] != 1:
            raise ValueError(f"timestep of shape {tuple(t.shape)}: a 3-D timestep must be (B, 1, F)")
        t = t[:, 0]
    if t.ndim == 0:
        t = t.reshape(1, 1)
    elif t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] not in (1, B) or t.shape[1] not in (1, F_):
        raise ValueError(f"timestep of shape {tuple(t.shape)} does not fit batch {B} x {F_} latent frames; "
                         f"pass (B, 1, F), (B, F), (B,) or a scalar")
    return t.expand(B, F_).long().float()


def normalize_inputs(cfg: SanaWMConfig, hidden_states, timestep, encoder_hidden_states, mask, camera_conditions,
                     chunk_plucker, *, device, dtype) -> ForwardInputs:
    if hidden_states.ndim != 5 or hidden_states.shape[1] != cfg.in_channels:
        raise ValueError(f"hidden_states must be (B, {cfg.in_channels}, F, H, W) latents, got "
                         f"{tuple(hidden_states.shape)}")
    B, _, F_, H, W = hidden_states.shape
    pt, ph, pw = cfg.patch_size
    if F_ % pt or H % ph or W % pw:
        raise ValueError(f"latent size {(F_, H, W)} must be divisible by patch_size {cfg.patch_size}")
    fhw = (F_ // pt, H // ph, W // pw)
    if max(fhw) > cfg.rope_max_seq_len:
        raise ValueError(f"latent grid {fhw} exceeds the RoPE table ({cfg.rope_max_seq_len} positions per axis)")
    x = hidden_states.to(device=device, dtype=dtype)
    t = _per_frame_timestep(timestep, B, fhw[0], device)

    y = encoder_hidden_states
    if y.ndim == 4:
        if y.shape[1] != 1:
            raise ValueError(f"encoder_hidden_states must be (B, 1, L, D) or (B, L, D), got {tuple(y.shape)}")
        y = y[:, 0]
    if y.ndim != 3 or y.shape[-1] != cfg.caption_channels or y.shape[0] not in (1, B):
        raise ValueError(f"encoder_hidden_states must be (B, L, {cfg.caption_channels}) text states for batch {B}, "
                         f"got {tuple(encoder_hidden_states.shape)}")
    y = y.to(device=device, dtype=dtype).expand(B, -1, -1)

    m = None
    if mask is not None:
        m = mask
        while m.ndim > 2 and m.shape[1] == 1:
            m = m[:, 0]
        if m.ndim != 2 or m.shape[-1] != y.shape[1] or B % m.shape[0]:
            raise ValueError(f"encoder_attention_mask must be (B, {y.shape[1]}) with 1 for tokens and 0 for padding, "
                             f"got {tuple(mask.shape)}")
        m = m.to(device).repeat(B // m.shape[0], 1)

    cam = None
    if camera_conditions is not None:
        cam = camera_conditions
        if cam.ndim != 3 or cam.shape[0] not in (1, B) or cam.shape[1] != fhw[0] or cam.shape[2] != RAYMAP_WIDTH:
            raise ValueError(f"camera_conditions must be (B, {fhw[0]}, {RAYMAP_WIDTH}) = flattened c2w + fx, fy, cx, cy per latent "
                             f"frame, got {tuple(cam.shape)}")
        cam = cam.to(device).expand(B, -1, -1)
        if not cam.is_floating_point():
            cam = cam.float()

    pl = None
    if chunk_plucker is not None:
        want = (cfg.chunk_plucker_channels, F_, H, W)
        if chunk_plucker.ndim != 5 or tuple(chunk_plucker.shape[1:]) != want or chunk_plucker.shape[0] not in (1, B):
            raise ValueError(f"chunk_plucker must be (B, {', '.join(map(str, want))}), got {tuple(chunk_plucker.shape)}")
        pl = chunk_plucker.to(device=device, dtype=dtype).expand(B, -1, -1, -1, -1)
    return ForwardInputs(x, t, y, m, cam, pl, B, fhw)
