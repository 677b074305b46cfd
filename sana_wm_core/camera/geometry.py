"""Rigid-pose algebra and the packed raymap layout, one implementation each.

`invert_rigid` and `relative_to_first` work on numpy arrays and torch tensors alike (same operations, so
the float32 torch path keeps matching diffusers' camera tensors bit for bit): trajectory loading inverts
world-to-camera files with them, `prepare_camera` makes poses relative to frame 0, and the preview route
shows a file's path the way the pipeline uses it.

The raymap row of one latent frame is `[c2w (16, row-major), fx, fy, cx, cy]`: `pack_raymap` writes it
and `unpack_raymap` reads it back, so both ends agree on the layout.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Poses = TypeVar("Poses", np.ndarray, torch.Tensor)

RAYMAP_POSE = slice(0, 16)       # the flattened 4x4 camera-to-world matrix
RAYMAP_INTRINSICS = slice(16, 20)  # fx, fy, cx, cy on the latent grid
RAYMAP_WIDTH = 20


def _eye(like: Poses) -> Poses:
    if isinstance(like, torch.Tensor):
        return torch.eye(4, dtype=like.dtype, device=like.device)
    return np.eye(4, dtype=like.dtype)


def _zeros_like(like: Poses) -> Poses:
    return torch.zeros_like(like) if isinstance(like, torch.Tensor) else np.zeros_like(like)


def invert_rigid(poses: Poses) -> Poses:
    """Inverse of rigid `(...,4,4)` transforms: `[R^T | -R^T t]` (numpy or torch, dtype kept)."""
    rot_t = poses[..., :3, :3].swapaxes(-1, -2)
    out = _zeros_like(poses)
    out[..., :3, :3] = rot_t
    out[..., :3, 3:] = -rot_t @ poses[..., :3, 3:]
    out[..., 3, 3] = 1.0
    return out


def relative_to_first(poses: Poses) -> Poses:
    """`(F,4,4)` poses expressed in the first camera's frame, `inv(P0) @ Pi`, with frame 0 exactly the identity.

    The inverse is taken of the (1,4,4) batch, as diffusers does: a batched and an unbatched 3x3 @ 3x1
    matmul may round differently on some CPUs, and the camera tensors must stay bit-identical to the oracle.
    """
    rest = invert_rigid(poses[:1])[0] @ poses[1:]
    first = _eye(poses)[None]
    if isinstance(poses, torch.Tensor):
        return torch.cat([first, rest], dim=0)
    return np.concatenate([first, rest], axis=0)


def relative_poses(c2w: np.ndarray) -> np.ndarray:
    """`relative_to_first` in float64 numpy (what previews, the saved JSON and `CameraInputs.c2w` use)."""
    return relative_to_first(np.asarray(c2w, dtype=np.float64))


def pack_raymap(c2w: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """`(L,4,4)` poses + `(L,4)` [fx,fy,cx,cy] -> the `(L,20)` raymap rows the DiT's camera branch reads."""
    return torch.cat([c2w.reshape(len(c2w), 16), intrinsics], dim=-1)


def unpack_raymap(raymap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(...,20)` raymap rows -> `(...,4,4)` camera-to-world and `(...,4)` [fx,fy,cx,cy]."""
    if raymap.shape[-1] != RAYMAP_WIDTH:
        raise ValueError(f"a raymap row holds {RAYMAP_WIDTH} numbers [c2w(16), fx, fy, cx, cy], "
                         f"got {raymap.shape[-1]}")
    return raymap[..., RAYMAP_POSE].unflatten(-1, (4, 4)), raymap[..., RAYMAP_INTRINSICS]
