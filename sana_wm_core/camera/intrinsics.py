"""Pinhole intrinsics: parsing the shapes the reference accepts, FOV conversion, frame fitting, the crop
transform and the 25-120 degree field-of-view guard.

Values are ``[fx, fy, cx, cy]`` in pixels. User intrinsics are in *source-image* pixels; the crop transform
moves them to the 704x1280 target, and `prepare_camera` scales them to the latent grid.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .types import Intrinsics

FOV_MIN_DEG = 25.0
FOV_MAX_DEG = 120.0
FPS_MAX = 240.0            # the mp4 writer's limit too
INTRINSICS_SHAPES = "(4,) [fx,fy,cx,cy], (3,3) K, (F,4) or (F,3,3)"


def intrinsics_array(value: Any, *, name: str = "intrinsics") -> np.ndarray:
    """Any accepted intrinsics shape as ``(F,4)`` float64 ``[fx,fy,cx,cy]``; validates finiteness and fx,fy > 0."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: intrinsics must be numbers shaped {INTRINSICS_SHAPES}") from None
    if arr.shape == (4,):
        arr = arr[None]
    elif arr.shape == (3, 3):
        arr = arr[None]
    if arr.ndim == 3 and arr.shape[1:] == (3, 3):
        arr = np.stack([arr[:, 0, 0], arr[:, 1, 1], arr[:, 0, 2], arr[:, 1, 2]], axis=-1)
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] < 1:
        raise ValueError(f"{name}: unsupported intrinsics shape {tuple(np.shape(value))}; "
                         f"expected {INTRINSICS_SHAPES}")
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        raise ValueError(f"{name}: intrinsics frame {int(np.argmin(finite))} contains NaN or infinite values")
    positive = (arr[:, 0] > 0) & (arr[:, 1] > 0)
    if not positive.all():
        i = int(np.argmin(positive))
        raise ValueError(f"{name}: intrinsics frame {i} has focal lengths fx={arr[i, 0]}, fy={arr[i, 1]}; "
                         "both must be > 0")
    return arr


def intrinsics_from_array(value: Any, *, image_size: tuple[int, int] | None = None, source: str = "user",
                          name: str = "intrinsics", trusted: bool = False) -> Intrinsics:
    """Wrap pixel intrinsics (any accepted shape) of an image of ``image_size`` (W,H; None = the source)."""
    return Intrinsics(values=intrinsics_array(value, name=name), image_size=image_size, source=source,
                      trusted=trusted)


def intrinsics_from_fov(fov_deg: float, fov_y_deg: float | None = None, *, trusted: bool = False) -> Intrinsics:
    """Intrinsics given as a horizontal (and optionally vertical) field of view, centred principal point."""
    for label, value in (("fov_deg", fov_deg), ("fov_y_deg", fov_y_deg)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 < float(value) < 180.0):
            raise ValueError(f"{label} must be strictly between 0 and 180 degrees, a number (SANA-WM expects "
                             f"{FOV_MIN_DEG:g}-{FOV_MAX_DEG:g}), got {value!r}"[:300])
    return Intrinsics(fov_deg=float(fov_deg), fov_y_deg=None if fov_y_deg is None else float(fov_y_deg),
                      source="fov", trusted=trusted)


def load_intrinsics_file(path: str | Path) -> Intrinsics:
    """Intrinsics from a ``.npy`` (or a ``.json`` list) in source-image pixels, shaped like the reference accepts."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"intrinsics file {str(path)!r} does not exist")
    from .file_values import check_file_size, load_npy

    if path.suffix.lower() == ".npy":
        value = load_npy(path)
    elif path.suffix.lower() == ".json":
        import json
        check_file_size(path)
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path.name}: not valid JSON ({exc})") from None
    else:
        raise ValueError(f"{path.name}: intrinsics files must be .npy or .json")
    return intrinsics_from_array(value, source=f"file:{path.name}", name=path.name)


def fov_to_pixels(fov_deg: float, fov_y_deg: float | None, source_size: tuple[int, int]) -> np.ndarray:
    """``(4,)`` pixels for an image of (W,H): fx from the horizontal FOV, fy from the vertical one (square
    pixels when absent), principal point at the image centre (W/2, H/2)."""
    for label, value in (("fov_deg", fov_deg), ("fov_y_deg", fov_y_deg)):
        if value is not None and not (0.0 < float(value) < 180.0):   # tan() of 0 or 180 divides by zero
            raise ValueError(f"{label} must be strictly between 0 and 180 degrees (SANA-WM expects "
                             f"{FOV_MIN_DEG:g}-{FOV_MAX_DEG:g}), got {value}")
    w, h = float(source_size[0]), float(source_size[1])
    fx = (w / 2.0) / math.tan(math.radians(float(fov_deg)) / 2.0)
    fy = fx if fov_y_deg is None else (h / 2.0) / math.tan(math.radians(float(fov_y_deg)) / 2.0)
    return np.array([fx, fy, w / 2.0, h / 2.0], dtype=np.float64)


def source_pixels(intr: Intrinsics, source_size: tuple[int, int]) -> np.ndarray:
    """``(F,4)`` float64 intrinsics in pixels of the source image (rescaled from ``image_size`` if it differs)."""
    if intr.values is None:
        if intr.fov_deg is None:
            raise ValueError("intrinsics carry neither pixel values nor a field of view")
        return fov_to_pixels(intr.fov_deg, intr.fov_y_deg, source_size)[None]
    vals = intrinsics_array(intr.values, name=f"intrinsics ({intr.source})")
    if intr.image_size is None or tuple(intr.image_size) == tuple(source_size):
        return vals
    sx = source_size[0] / float(intr.image_size[0])
    sy = source_size[1] / float(intr.image_size[1])
    return vals * np.array([sx, sy, sx, sy])


def fit_intrinsics(values: np.ndarray, num_frames: int) -> np.ndarray:
    """``(F,4)`` -> ``(num_frames,4)`` float32 by the reference's rule: equal copies, longer truncates, one row
    broadcasts, a shorter sequence is linearly interpolated over normalised time."""
    vals = np.asarray(values, dtype=np.float32)
    count = vals.shape[0]
    if count == num_frames:
        return vals.copy()
    if count > num_frames:
        return vals[:num_frames].copy()
    if count == 1:
        return np.broadcast_to(vals, (num_frames, 4)).copy()
    src_t = np.linspace(0.0, 1.0, count)
    dst_t = np.linspace(0.0, 1.0, num_frames)
    cols = [np.interp(dst_t, src_t, vals[:, j]) for j in range(4)]
    return np.stack(cols, axis=-1).astype(np.float32)


def field_of_view_deg(values: np.ndarray, source_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal and vertical FOV in degrees per frame for ``(F,4)`` source-pixel intrinsics: 2 atan(W / 2fx).

    The one focal -> FOV formula (`fov_to_pixels` is its inverse); `fov_degrees` is it for one row.
    """
    vals = np.asarray(values, dtype=np.float64)
    fov_x = np.degrees(2.0 * np.arctan(source_size[0] / (2.0 * vals[:, 0])))
    fov_y = np.degrees(2.0 * np.arctan(source_size[1] / (2.0 * vals[:, 1])))
    return fov_x, fov_y


def fov_degrees(values: np.ndarray, size: tuple[int, int]) -> tuple[float, float]:
    """`field_of_view_deg` of one ``[fx, fy, ...]`` row for an image of (W, H), as two floats."""
    fov_x, fov_y = field_of_view_deg(np.asarray(values, dtype=np.float64).reshape(1, -1), size)
    return float(fov_x[0]), float(fov_y[0])


def check_fov(values: np.ndarray, source_size: tuple[int, int], *, source: str = "user") -> None:
    """Reject intrinsics whose FOV leaves (25, 120) degrees on either axis (the reference's sanity bound)."""
    fov_x, fov_y = field_of_view_deg(values, source_size)
    ok = (fov_x > FOV_MIN_DEG) & (fov_x < FOV_MAX_DEG) & (fov_y > FOV_MIN_DEG) & (fov_y < FOV_MAX_DEG)
    if ok.all():
        return
    i = int(np.argmin(ok))
    raise ValueError(
        f"camera intrinsics ({source}) give a horizontal FOV of {fov_x[i]:.1f} deg and a vertical FOV of "
        f"{fov_y[i]:.1f} deg at frame {i} for the {source_size[0]}x{source_size[1]} source image; SANA-WM "
        f"expects both strictly between {FOV_MIN_DEG:g} and {FOV_MAX_DEG:g} degrees, so these are probably "
        "wrong (pixels of another image size, or a failed estimate). Fix: set them with 'Set Camera "
        "Intrinsics' (pixels of the image they refer to, or a FOV), or connect 'Estimate Intrinsics'; if you "
        "trust them, enable trust_intrinsics on 'Set Camera Intrinsics' (Intrinsics(trusted=True)) to skip "
        "this check.")


def transform_for_crop(values: np.ndarray, source_size: tuple[int, int], resized_size: tuple[int, int],
                       offset: tuple[int, int]) -> np.ndarray:
    """Move ``(F,4)`` source-pixel intrinsics through a resize to ``resized_size`` and a crop at ``offset``."""
    sx = resized_size[0] / source_size[0]
    sy = resized_size[1] / source_size[1]
    out = values.copy()
    out[..., 0] *= sx
    out[..., 2] = out[..., 2] * sx - offset[0]
    out[..., 1] *= sy
    out[..., 3] = out[..., 3] * sy - offset[1]
    return out
