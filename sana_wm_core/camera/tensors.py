"""Camera tensors for the Stage-1 DiT: per-latent raymap and chunked Plücker rays.

For latent frame i the pose of raw frame 8i (the last raw frame the causal VAE folds into it) feeds the
raymap, and the Plücker rays of the 8 raw frames max(0, 8i-7)..+7 feed the 48-channel post-attention
branch. Rays use the integer latent pixel grid (no half-pixel offset), like the reference.
"""
from __future__ import annotations

import numpy as np
import torch

from .geometry import pack_raymap, relative_to_first


def snap_num_frames(requested: int, length: int, stride: int = 8) -> int:
    """The frame count the pipeline really uses: min(requested, length) snapped to the nearest
    ``stride*k + 1`` (ties upward), never above ``length``, at least 1. ``requested <= 0`` means all."""
    if length < 1:
        raise ValueError(f"the camera path is empty (length {length}); it needs at least one pose")
    n = length if requested <= 0 else min(int(requested), int(length))
    over = (n - 1) % stride
    if over == 0:
        return n
    lower = n - over
    upper = lower + stride
    best = upper if (upper - n) <= (n - lower) else lower
    if best > length:
        best = lower
    return max(best, 1)


def plucker_rays(intrinsics: torch.Tensor, poses: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(T,height,width,6)`` Plücker coordinates [direction, origin x direction] of each pixel's ray.

    ``intrinsics`` ``(T,4)`` [fx,fy,cx,cy] on the same grid, ``poses`` ``(T,4,4)`` camera-to-world.
    """
    frames = intrinsics.shape[0]
    kw = dict(device=intrinsics.device, dtype=intrinsics.dtype)
    rows, cols = torch.meshgrid(torch.arange(height, **kw), torch.arange(width, **kw), indexing="ij")
    fx, fy, cx, cy = (intrinsics[:, j].reshape(frames, 1, 1) for j in range(4))
    cam_dirs = torch.stack([(cols[None].expand(frames, -1, -1) - cx) / fx,
                            (rows[None].expand(frames, -1, -1) - cy) / fy,
                            torch.ones(frames, height, width, **kw)], dim=-1)
    dirs = torch.einsum("tij,thwj->thwi", poses[:, :3, :3], cam_dirs)
    dirs = dirs / torch.norm(dirs, dim=-1, keepdim=True)
    origins = poses[:, :3, 3].reshape(frames, 1, 1, 3).expand_as(dirs)
    return torch.cat([dirs, torch.linalg.cross(origins, dirs, dim=-1)], dim=-1)


def prepare_camera(poses_c2w: np.ndarray, intrinsics_vec4: np.ndarray, *, target_size: tuple[int, int],
                   vae_stride: tuple[int, int, int]) -> dict[str, torch.Tensor]:
    """The DiT camera inputs, float32 on CPU, unbatched (add the batch axis, duplicate it for CFG).

    ``poses_c2w`` ``(F,4,4)`` (made relative to frame 0 here), ``intrinsics_vec4`` ``(F,4)`` in target
    pixels, ``target_size`` (H, W) in pixels, ``vae_stride`` (t, h, w). Returns ``raymap`` ``(L,20)`` and
    ``chunk_plucker`` ``(6*t, L, H//w, W//w)`` with ``L = (F-1)//t + 1``.
    """
    poses_np = np.asarray(poses_c2w)
    intr_np = np.asarray(intrinsics_vec4)
    if poses_np.ndim != 3 or poses_np.shape[1:] != (4, 4) or poses_np.shape[0] < 1:
        raise ValueError(f"poses_c2w must be (F,4,4) with F >= 1, got {poses_np.shape}")
    if intr_np.shape != (poses_np.shape[0], 4):
        raise ValueError(f"intrinsics_vec4 must be (F,4) with F = {poses_np.shape[0]} (one row per pose), "
                         f"got {intr_np.shape}")
    stride_t, stride_s = int(vae_stride[0]), int(vae_stride[-1])
    height, width = int(target_size[0]), int(target_size[1])
    lat_h, lat_w = height // stride_s, width // stride_s
    if stride_t < 1 or lat_h < 1 or lat_w < 1:
        raise ValueError(f"target_size {target_size} and vae_stride {vae_stride} give an empty latent grid")
    count = poses_np.shape[0]
    latents = (count - 1) // stride_t + 1

    poses = relative_to_first(torch.from_numpy(np.ascontiguousarray(poses_np)).float())
    intr = torch.from_numpy(np.ascontiguousarray(intr_np)).float().clone()
    intr[:, [0, 2]] *= lat_w / float(width)
    intr[:, [1, 3]] *= lat_h / float(height)

    picks = torch.arange(0, count, stride_t)[:latents]
    raymap = pack_raymap(poses[picks], intr[picks])

    chunks = []
    for last in picks.tolist():
        first = max(0, last - (stride_t - 1))
        idx = [min(j, count - 1) for j in range(first, first + stride_t)]  # pad by repeating the last pose
        rays = plucker_rays(intr[idx], poses[idx], lat_h, lat_w)            # (t,h,w,6)
        chunks.append(rays.permute(0, 3, 1, 2).reshape(stride_t * 6, lat_h, lat_w))
    return {"raymap": raymap, "chunk_plucker": torch.stack(chunks, dim=1)}
