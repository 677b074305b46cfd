"""The single camera entry point of the Stage-1 pipeline.

`build_camera_inputs` reproduces what diffusers' `SanaWMPipeline.__call__` derives from
(trajectory, intrinsics, image size, num_frames), in the same order:
1. c2w as float32; num_frames = min(requested, length) snapped to 8k+1 (never above the length); truncate.
2. intrinsics to ``(F,4)`` float32 source pixels (shapes (4,), (3,3), (F,4), (F,3,3); a FOV becomes
   pixels with a centred principal point) and fitted to F frames; 25-120 degree FOV guard unless trusted.
3. the resize-to-cover + centre-crop transform of the intrinsics to the target size.
4. `prepare_camera`: poses relative to frame 0 (no scale normalisation), raymap and chunk Plücker rays.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .image import crop_geometry
from .intrinsics import check_fov, fit_intrinsics, source_pixels, transform_for_crop
from .geometry import relative_poses
from .tensors import prepare_camera, snap_num_frames
from .types import CameraPath

MISSING_INTRINSICS = (
    "the camera has no intrinsics, and SANA-WM needs the focal length of the input image (diffusers raises "
    "here too). Fix: connect an 'Estimate Intrinsics' node to the camera node's intrinsics input, or add "
    "'Set Camera Intrinsics' (mode fov: e.g. 60 degrees horizontal; mode pixels: fx fy cx cy of the image), "
    "or load a trajectory file that carries intrinsics.")


@dataclass
class CameraInputs:
    """Everything Stage 1 needs from the camera, for ``num_frames`` frames.

    ``c2w`` (F,4,4) float64 relative to frame 0; ``intrinsics`` (F,4) float32 in target pixels;
    ``raymap`` (L,20) and ``chunk_plucker`` (48,L,h,w) float32 CPU torch tensors, unbatched
    (``unsqueeze(0)``, duplicate for CFG, cast to the model dtype).
    """

    num_frames: int
    c2w: np.ndarray
    intrinsics: np.ndarray
    raymap: torch.Tensor
    chunk_plucker: torch.Tensor

    @property
    def latent_frames(self) -> int:
        return int(self.raymap.shape[0])


def resolve_intrinsics(camera: CameraPath, source_size: tuple[int, int], num_frames: int) -> np.ndarray:
    """``(num_frames,4)`` float32 source-pixel intrinsics of the camera, FOV-checked unless trusted."""
    intr = camera.intrinsics
    if intr is None or (intr.values is None and intr.fov_deg is None):
        raise ValueError(MISSING_INTRINSICS)
    values = fit_intrinsics(source_pixels(intr, source_size), num_frames)
    if not intr.trusted:
        check_fov(values, source_size, source=intr.source)
    return values


def build_camera_inputs(camera: CameraPath, *, source_size: tuple[int, int], num_frames: int,
                        height: int = 704, width: int = 1280,
                        vae_stride: tuple[int, int, int] = (8, 32, 32)) -> CameraInputs:
    """Camera tensors for Stage 1. ``source_size`` is (W, H) of the first-frame image before preprocessing;
    ``num_frames <= 0`` uses the whole path. Raises ValueError for a bad camera before any heavy work."""
    if not isinstance(camera, CameraPath):
        raise ValueError(f"camera must be a CameraPath (SANAWM_CAMERA), got {type(camera).__name__}")
    if height % vae_stride[1] or width % vae_stride[2]:
        raise ValueError(f"height {height} and width {width} must be multiples of the VAE stride "
                         f"{vae_stride[1]}x{vae_stride[2]}")
    c2w = np.asarray(camera.c2w, dtype=np.float32)
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"camera path must be (F,4,4), got {c2w.shape}")
    frames = snap_num_frames(num_frames, c2w.shape[0], stride=int(vae_stride[0]))
    c2w = c2w[:frames]
    src = (int(source_size[0]), int(source_size[1]))
    resized, offset = crop_geometry(src, height, width)
    intr = transform_for_crop(resolve_intrinsics(camera, src, frames), src, resized, offset)
    cam = prepare_camera(c2w, intr, target_size=(height, width), vae_stride=vae_stride)
    return CameraInputs(num_frames=frames, c2w=relative_poses(c2w), intrinsics=intr,
                        raymap=cam["raymap"], chunk_plucker=cam["chunk_plucker"])
