"""First-frame preprocessing: aspect-preserving LANCZOS resize that covers the target, then a centre crop.

Matches diffusers' `SanaWMImageProcessor.preprocess_with_intrinsics` pixel for pixel; the same geometry
(`crop_geometry`) drives the intrinsics transform so image and camera stay in lockstep.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image


def crop_geometry(source_size: tuple[int, int], height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """For a (W,H) source: the (W,H) size it is resized to and the (left, top) offset of the crop."""
    src_w, src_h = int(source_size[0]), int(source_size[1])
    if src_w < 1 or src_h < 1:
        raise ValueError(f"source image size must be positive (W,H), got {source_size}")
    if height < 1 or width < 1:
        raise ValueError(f"target size must be positive, got height={height} width={width}")
    scale = max(height / src_h, width / src_w)
    res_w = max(width, int(round(src_w * scale)))
    res_h = max(height, int(round(src_h * scale)))
    return (res_w, res_h), ((res_w - width) // 2, (res_h - height) // 2)


def to_pil_rgb(image: Any) -> Image.Image:
    """A PIL image, a uint8/float HWC array, or a ComfyUI IMAGE tensor ((1,)H,W,C floats in [0,1]) as RGB PIL.

    Float inputs are mapped back to bytes with round(x*255), which is exact for images ComfyUI loaded
    from 8-bit files.
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float().numpy()
    arr = np.asarray(image)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValueError(f"image batch must hold exactly one first frame, got {arr.shape[0]} images")
        arr = arr[0]
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image must be (H,W,C) with 1, 3 or 4 channels, got shape {arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.dtype != np.uint8:
        arr = np.asarray(arr, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ValueError("image contains NaN or infinite values")
        arr = np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr[..., :3]), mode="RGB")


def resize_and_crop(image: Any, height: int = 704, width: int = 1280) -> Image.Image:
    """The reference's resize-to-cover (LANCZOS) + integer centre crop, as an RGB PIL image of (width, height)."""
    pil = to_pil_rgb(image)
    (res_w, res_h), (left, top) = crop_geometry(pil.size, height, width)
    resized = pil.resize((res_w, res_h), Image.LANCZOS)
    return resized.crop((left, top, left + width, top + height))


def preprocess_image(image: Any, height: int = 704, width: int = 1280) -> torch.Tensor:
    """The first frame as the VAE encoder wants it: float32 ``(1,3,height,width)`` in [-1, 1], RGB, NCHW.

    (The LTX-2 VAE takes ``(B,3,F,H,W)``: add the time axis with ``.unsqueeze(2)`` and cast to its dtype.)
    """
    cropped = resize_and_crop(image, height, width)
    arr = np.asarray(cropped, dtype=np.float32) / 255.0
    pixels = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
    return pixels * 2.0 - 1.0
