"""Intrinsics from a photo's EXIF: the 35 mm-equivalent focal length, when the camera wrote one.

A 35 mm-equivalent focal length f35 says the photo covers the view a full-frame (36x24 mm) camera covers at f35,
matched on the diagonal (the usual crop-factor definition). So in pixels f = f35 * image_diagonal_px / 43.27 mm,
whatever the aspect ratio or resizing, as long as the picture was not cropped.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
TAG_EXIF_IFD = 0x8769
TAG_FOCAL_35MM = 0xA405          # FocalLengthIn35mmFilm (SHORT, mm; 0 = unknown)


def focal_35mm_from_exif(source: str | Path | Image.Image) -> float | None:
    """The FocalLengthIn35mmFilm value of a file or PIL image, or None when absent, zero or unreadable."""
    try:
        if isinstance(source, Image.Image):
            exif = source.getexif()
        else:
            with Image.open(source) as img:
                exif = img.getexif()
    except (OSError, ValueError, SyntaxError):
        return None
    value = exif.get_ifd(TAG_EXIF_IFD).get(TAG_FOCAL_35MM)
    if value is None:
        value = exif.get(TAG_FOCAL_35MM)  # some writers put it in IFD0
    try:
        focal = float(value) if value is not None else 0.0
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return focal if math.isfinite(focal) and focal > 0 else None


def intrinsics_from_35mm(focal_35mm: float, size: tuple[int, int]) -> np.ndarray:
    """[fx, fy, cx, cy] in pixels of an image of (W, H): square pixels, principal point at (W/2, H/2)."""
    if not focal_35mm > 0:
        raise ValueError(f"35 mm-equivalent focal length must be > 0, got {focal_35mm}")
    w, h = float(size[0]), float(size[1])
    focal = focal_35mm * math.hypot(w, h) / FULL_FRAME_DIAGONAL_MM
    return np.array([focal, focal, w / 2.0, h / 2.0], dtype=np.float64)
