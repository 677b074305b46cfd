"""Cheap latent previews without a preview decoder: a linear latent->RGB map fitted on the first frame.

Latent frame 0 is the encoded input image, whose pixels we know, so a ridge-regressed 1x1 projection from
the C latent channels to RGB (fitted once per clip on the 32x-downsampled image) turns any latent frame into
a rough colour picture. It costs one tiny matrix product per step.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def fit_latent_rgb(image_latent: torch.Tensor, image: torch.Tensor, ridge: float = 1e-2) -> torch.Tensor:
    """(1,C,1,h,w) latent + (1,3,H,W) pixels in [-1,1] -> a (C+1,3) projection (last row = bias)."""
    lat = image_latent[0, :, 0].float()                      # (C,h,w)
    c, h, w = lat.shape
    rgb = F.interpolate(image.float(), size=(h, w), mode="area")[0]   # (3,h,w)
    x = torch.cat([lat.reshape(c, -1).T, torch.ones(h * w, 1)], 1)    # (hw, C+1)
    y = rgb.reshape(3, -1).T                                          # (hw, 3)
    a = x.T @ x + ridge * torch.eye(c + 1)
    return torch.linalg.solve(a, x.T @ y)


def preview_rgb(latents: torch.Tensor, proj: torch.Tensor, max_frames: int = 4, height: int = 128) -> torch.Tensor:
    """Up to `max_frames` evenly spaced latent frames of (B,C,L,h,w) `latents` (first clip) projected by `proj`
    and set side by side: a float (3, height, W) picture in [-1,1] (unclamped). ComfyUI's core-sampler preview
    draws the same picture (`nodes/native_preview.py`)."""
    lat = latents[0].float().cpu()                            # (C,L,h,w)
    c, L, h, w = lat.shape
    proj = proj.float().cpu()
    idx = np.unique(np.linspace(0, L - 1, min(max_frames, L)).round().astype(int))
    tiles = []
    for i in idx:
        x = torch.cat([lat[:, i].reshape(c, -1).T, torch.ones(h * w, 1)], 1)
        img = (x @ proj).T.reshape(1, 3, h, w)
        img = F.interpolate(img, size=(height, max(1, round(w * height / h))), mode="nearest")
        tiles.append(img[0])
    return torch.cat(tiles, 2)


def latent_preview(latents: torch.Tensor, proj: torch.Tensor, max_frames: int = 4,
                   height: int = 128) -> np.ndarray:
    """`preview_rgb` as a uint8 (height, W, 3) image: what the pack's own samplers and the refiner show."""
    out = preview_rgb(latents, proj, max_frames, height)
    return ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
