"""Geometry of the reference's Pi3X estimate: the model input size, focal lengths from rays, scaling back.

All of it follows SANA-WM's `estimate_intrinsics_with_pi3x` (docs/pipeline_spec.md section 3.4) and Pi3's
centred-principal-point focal recovery, so the numbers equal the reference's for the same rays.
"""
from __future__ import annotations

import math

import numpy as np
import torch

PATCH = 14
PIXEL_LIMIT = 255_000


def pi3x_input_size(width: int, height: int, *, patch: int = PATCH, pixel_limit: int = PIXEL_LIMIT) -> tuple[int, int]:
    """(W, H) Pi3X sees: the source scaled to ~pixel_limit pixels, each side a multiple of `patch`.

    Sides are rounded to whole patches (Python's round, ties to even), then the side that is too long for the
    source aspect ratio loses a patch until the area fits. 1920x1080 -> 672x378, 640x480 -> 574x434.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    scale = math.sqrt(pixel_limit / (width * height))
    target_w, target_h = width * scale, height * scale
    cols, rows = max(1, round(target_w / patch)), max(1, round(target_h / patch))
    while (cols * patch) * (rows * patch) > pixel_limit:
        if cols / rows > target_w / target_h:
            cols -= 1
        else:
            rows -= 1
    return max(1, cols) * patch, max(1, rows) * patch


def focal_from_rays(rays: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """Least-squares fx, fy of a pinhole whose principal point is the pixel-grid centre ((W-1)/2, (H-1)/2).

    rays: (..., H, W, 3) directions (any length, z may be negative). With slopes s = d_xy / |d_z| and centred
    pixel coordinates c, each focal minimises sum (f*s - c)^2, so f = sum(s*c) / sum(s^2). Returns
    (fx, fy, cx, cy) with fx, fy shaped like the batch dimensions.
    """
    *batch, h, w, _ = rays.shape
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    rows, cols = torch.meshgrid(torch.linspace(0, h - 1, h, device=rays.device, dtype=rays.dtype),
                                torch.linspace(0, w - 1, w, device=rays.device, dtype=rays.dtype), indexing="ij")
    cols = (cols.reshape(-1) - cx).expand(*batch, h * w)
    rows = (rows.reshape(-1) - cy).expand(*batch, h * w)
    depth = rays[..., 2].abs() + 1e-10
    sx = (rays[..., 0] / depth).reshape(*batch, h * w)
    sy = (rays[..., 1] / depth).reshape(*batch, h * w)
    fx = (sx * cols).sum(dim=-1) / (sx * sx).sum(dim=-1)
    fy = (sy * rows).sum(dim=-1) / (sy * sy).sum(dim=-1)
    return fx, fy, cx, cy


def scale_to_source(fx: float, fy: float, cx: float, cy: float, model_size: tuple[int, int],
                    source_size: tuple[int, int]) -> np.ndarray:
    """[fx, fy, cx, cy] from the model's pixel grid to the source image's (x by W0/Wm, y by H0/Hm)."""
    sx = source_size[0] / model_size[0]
    sy = source_size[1] / model_size[1]
    return np.array([fx * sx, fy * sy, cx * sx, cy * sy], dtype=np.float64)
