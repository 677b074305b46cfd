"""Camera intrinsics for the input image: Pi3X (the reference's method), EXIF, or a typed field of view.

`estimate_intrinsics` runs the chosen method and, with `fallback`, steps down pi3x -> exif -> fov when a method
cannot give an answer (no weights offline, no EXIF focal, an estimate outside the 25-120 degree guard), saying
which source it used and why. Every result passes the same FOV guard as user intrinsics.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..camera.image import to_pil_rgb
from ..camera.intrinsics import FOV_MAX_DEG, FOV_MIN_DEG, check_fov, fov_degrees, fov_to_pixels
from ..camera.types import Intrinsics
from .checkpoint import load_pi3x, release
from .exif import focal_35mm_from_exif, intrinsics_from_35mm
from .focal import focal_from_rays, pi3x_input_size, scale_to_source
from .network import Pi3XNetwork

log = logging.getLogger("sana_wm")
METHODS = ("pi3x", "exif", "fov")


class MethodUnavailable(ValueError):
    """A method cannot answer for this image (no EXIF focal, an implausible estimate): the next one may."""


@dataclass(frozen=True)
class IntrinsicsEstimate:
    """The chosen intrinsics plus what a user needs to judge them."""

    intrinsics: Intrinsics
    values: np.ndarray                 # (4,) [fx, fy, cx, cy] in source pixels
    image_size: tuple[int, int]        # (W, H) of the source image
    fov_x_deg: float
    fov_y_deg: float
    source: str                        # "pi3x" | "exif" | "fov"
    notes: tuple[str, ...] = ()        # why earlier methods were skipped

    def summary(self) -> str:
        fx, fy, cx, cy = (float(v) for v in self.values)
        w, h = self.image_size
        lines = [f"source: {self.source}",
                 f"fx = {fx:.2f} px, fy = {fy:.2f} px (cx = {cx:.2f}, cy = {cy:.2f}) for {w}x{h}",
                 f"FOV: horizontal {self.fov_x_deg:.2f} deg, vertical {self.fov_y_deg:.2f} deg"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def image_from_tensor(image: torch.Tensor) -> Image.Image:
    """The first frame of a ComfyUI IMAGE (B,H,W,C floats in [0,1]) as an 8-bit RGB PIL image.

    The conversion is `camera.image.to_pil_rgb` (LoadImage stores byte/255, so rounding recovers the file's
    exact pixels, as the reference reads them); this only insists on an IMAGE batch and takes its first frame.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[0] < 1 or image.shape[-1] not in (1, 3, 4):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image: expected a ComfyUI IMAGE (B,H,W,C), got {shape}")
    return to_pil_rgb(image[:1])


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on GPUs of compute capability 8+, fp16 below, none (fp32) on CPU."""
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def pi3x_intrinsics(image: Image.Image, net: Pi3XNetwork, device: torch.device | str = "cpu") -> np.ndarray:
    """The reference's Pi3X path on a loaded network: [fx, fy, cx, cy] in source pixels (not yet FOV-checked).

    LANCZOS resize to `pi3x_input_size`, [0,1] tensor, local points -> unit rays -> centred least-squares focal
    lengths on the model grid -> scaled back to the source size.
    """
    device = torch.device(device)
    src = image.convert("RGB")
    model_size = pi3x_input_size(*src.size)
    resized = src.resize(model_size, Image.Resampling.LANCZOS)
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)
    batch = pixels[None, None].to(device)
    dtype = autocast_dtype(device)
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=dtype or torch.float32,
                                         enabled=dtype is not None):
        points = net(batch)["local_points"]
    rays = torch.nn.functional.normalize(points.float(), dim=-1)
    fx, fy, cx, cy = focal_from_rays(rays)
    return scale_to_source(float(fx.reshape(-1)[0]), float(fy.reshape(-1)[0]), cx, cy, model_size, src.size)


def estimate_with_pi3x(image: Image.Image, checkpoint: Path, device: torch.device | str = "cpu") -> np.ndarray:
    """Loads Pi3X from `checkpoint`, estimates, frees it, then applies the 25-120 degree guard."""
    net = load_pi3x(checkpoint, device=device)
    try:
        values = pi3x_intrinsics(image, net, device)
    finally:
        release(net)
    fov_x, fov_y = fov_degrees(values, image.size)
    log.info("SANA-WM Pi3X intrinsics: fx=%.1f fy=%.1f cx=%.1f cy=%.1f (FOV H=%.1f V=%.1f deg)",
             *values, fov_x, fov_y)
    try:
        check_fov(values[None], image.size, source="pi3x")
    except ValueError:
        raise MethodUnavailable(f"the Pi3X estimate gives a field of view of H={fov_x:.1f} deg, V={fov_y:.1f} deg, outside "
                         f"({FOV_MIN_DEG:g}, {FOV_MAX_DEG:g}) deg: estimation likely failed for this image. Fix: use "
                         "method 'exif' or 'fov' (or enable fallback), or give trusted intrinsics.") from None
    return values


def _checked_fov(fov_deg: float, size: tuple[int, int]) -> np.ndarray:
    if not (FOV_MIN_DEG < float(fov_deg) < FOV_MAX_DEG):
        raise ValueError(f"fov_deg must be strictly between {FOV_MIN_DEG:g} and {FOV_MAX_DEG:g} degrees (the "
                         f"range SANA-WM accepts), got {fov_deg}")
    values = fov_to_pixels(float(fov_deg), None, size)
    try:
        check_fov(values[None], size, source="fov")
    except ValueError:
        fx, fy = fov_degrees(values, size)
        raise ValueError(f"fov_deg={fov_deg} on this {size[0]}x{size[1]} image gives a vertical FOV of {fy:.1f} "
                         f"deg (square pixels), outside ({FOV_MIN_DEG:g}, {FOV_MAX_DEG:g}); Fix: use a larger "
                         "fov_deg for such a wide image.") from None
    return values


def _from_exif(exif_source, size: tuple[int, int]) -> np.ndarray:
    if exif_source is None:
        raise MethodUnavailable("no image file was given to read EXIF from (ComfyUI IMAGE tensors carry no EXIF)")
    focal = focal_35mm_from_exif(exif_source)
    name = getattr(exif_source, "filename", None) or str(exif_source)
    if focal is None:
        raise MethodUnavailable(f"{Path(name).name} has no EXIF 35 mm-equivalent focal length")
    values = intrinsics_from_35mm(focal, size)
    try:
        check_fov(values[None], size, source="exif")
    except ValueError:
        fx, fy = fov_degrees(values, size)
        raise MethodUnavailable(f"EXIF focal {focal:g} mm (35 mm equiv.) gives FOV H={fx:.1f}, V={fy:.1f} deg, outside "
                          f"({FOV_MIN_DEG:g}, {FOV_MAX_DEG:g})") from None
    return values


def estimate_intrinsics(image: Image.Image, method: str = "pi3x", *, fov_deg: float = 60.0,
                        exif_source: str | Path | Image.Image | None = None,
                        checkpoint: Callable[[], Path] | None = None, device: torch.device | str = "cpu",
                        fallback: bool = True) -> IntrinsicsEstimate:
    """Intrinsics of `image` by `method`; with `fallback`, pi3x -> exif -> fov until one succeeds.

    `checkpoint` is called only when Pi3X actually runs (it may download). Bad arguments raise ValueError before
    any model loads; a method that fails without fallback raises its own error.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    size = image.size
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"image: empty image {size[0]}x{size[1]}")
    if method == "fov" or fallback:
        _checked_fov(fov_deg, size)
    if method == "pi3x" and checkpoint is None:
        raise ValueError("method 'pi3x' needs a Pi3X checkpoint")
    order = METHODS[METHODS.index(method):] if fallback else (method,)
    notes: list[str] = []
    for step in order:
        try:
            if step == "pi3x":
                values = estimate_with_pi3x(image, checkpoint(), device)
            elif step == "exif":
                values = _from_exif(exif_source, size)
            else:
                values = _checked_fov(fov_deg, size)
        except (FileNotFoundError, MethodUnavailable) as exc:
            if not fallback or step == order[-1]:
                raise
            notes.append(f"{step} skipped: {exc}")
            continue
        fov_x, fov_y = fov_degrees(values, size)
        intr = Intrinsics(values=values[None].astype(np.float64), image_size=(int(size[0]), int(size[1])),
                          source=step)
        return IntrinsicsEstimate(intr, values, (int(size[0]), int(size[1])), fov_x, fov_y, step, tuple(notes))
    raise MethodUnavailable("no intrinsics method succeeded: " + "; ".join(notes))
