"""UCPE camera encoding: per-token world-to-ray-local SE(3) matrices and their action on head channels.

For a latent pixel (u, v) of frame f with pinhole intrinsics and camera-to-world pose (R, t): the unit ray
d = R * normalize((u-cx)/fx, (v-cy)/fy, 1) gives a local frame z = d, x = normalize(R[:,1] x z),
y = normalize(z x x); P = [[R_l^T, -R_l^T t], [0, 1]] maps world to that frame. In attention, the first
half of every head is split into 4-vectors multiplied by P^T (queries), P^-1 (keys, values) and P
(outputs); the second half gets a sliced RoPE (conjugated on outputs). Matrices are computed once per
forward, in the camera tensor's dtype, and shared by every block.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

from ..camera.geometry import unpack_raymap
from .rope import apply_rope


def _fov_roundtrip_focal(focal: torch.Tensor, extent: int, grid_extent: int) -> torch.Tensor:
    """focal -> field of view (degrees) -> focal at the grid resolution, as the reference does (xi = 0)."""
    a = 2.0 * focal / extent
    fov = torch.rad2deg(2.0 * torch.atan(1.0 / a))
    half = torch.deg2rad(0.5 * fov)
    eps = torch.finfo(focal.dtype).eps
    return (grid_extent * 0.5) * torch.cos(half) / torch.sin(half).clamp_min(eps)


def ray_matrices(camera_conditions: torch.Tensor, fhw: tuple[int, int, int],
                 patch_size: tuple[int, int, int] = (1, 1, 1)) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, P^-1), each (B, F*H*W, 4, 4), from (B, F, 20) = [c2w row-major (16), fx, fy, cx, cy]."""
    B, F_, _ = camera_conditions.shape
    f, h, w = fhw
    if F_ != f:
        raise ValueError(f"camera_conditions has {F_} frames but the latent has {f}; pass one pose per latent frame")
    cc = camera_conditions
    dtype, dev = cc.dtype, cc.device
    c2w, intr = unpack_raymap(cc)
    fx = _fov_roundtrip_focal(intr[..., 0], w * patch_size[2], w)
    fy = _fov_roundtrip_focal(intr[..., 1], h * patch_size[1], h)
    cx = intr[..., 2] / patch_size[2]
    cy = intr[..., 3] / patch_size[1]
    us = torch.linspace(0, w - 1, w, dtype=dtype, device=dev)
    vs = torch.linspace(0, h - 1, h, dtype=dtype, device=dev)
    x = (us.view(1, 1, 1, w) - cx[..., None, None]) / fx[..., None, None]
    y = (vs.view(1, 1, h, 1) - cy[..., None, None]) / fy[..., None, None]
    x, y = torch.broadcast_tensors(x, y)
    r2 = x * x + y * y
    gamma = torch.sqrt(1 + r2) / (1 + r2)
    d_cam = torch.stack([gamma * x, gamma * y, gamma], dim=-1)  # (B, f, h, w, 3)
    R, t = c2w[..., :3, :3], c2w[..., :3, 3]
    d_world = torch.einsum("bfij,bfhwj->bfhwi", R, d_cam)
    cam_y = R[..., :, 1][:, :, None, None, :].expand_as(d_world)
    z = F.normalize(d_world, dim=-1, eps=1e-6)
    xr = F.normalize(torch.cross(cam_y, z, dim=-1), dim=-1, eps=1e-6)
    yr = F.normalize(torch.cross(z, xr, dim=-1), dim=-1, eps=1e-6)
    rot = torch.stack([xr, yr, z], dim=-2)  # rows: world -> local
    trans = -torch.einsum("bfhwij,bfj->bfhwi", rot, t)
    P = torch.zeros(B, f, h, w, 4, 4, dtype=dtype, device=dev)
    P[..., :3, :3] = rot
    P[..., :3, 3] = trans
    P[..., 3, 3] = 1.0
    bad = torch.isnan(d_world).any(-1)
    if bool(bad.any()):
        P[bad] = torch.eye(4, dtype=dtype, device=dev)
    P = P.reshape(B, f * h * w, 4, 4)
    rinv = P[..., :3, :3].transpose(-1, -2)
    P_inv = torch.zeros_like(P)
    P_inv[..., :3, :3] = rinv
    P_inv[..., :3, 3] = -torch.einsum("...ij,...j->...i", rinv, P[..., :3, 3])
    P_inv[..., 3, 3] = 1.0
    return P, P_inv


def ucpe_tokens(x: torch.Tensor, mat: torch.Tensor, table: torch.Tensor, out_tokens: torch.Tensor) -> None:
    """UCPE on token-major head vectors, written into `out_tokens`.

    x: (B, N, H, D) (any strides); mat: (B, N, 4, 4) applied to the 4-groups of the first D/2 channels
    (y = mat @ x_group); table: (N, D/4) complex RoPE for the last D/2 channels (conjugate it for the
    inverse); out_tokens: a (B, N, H, D) view of the destination (e.g. a head-major buffer, permuted).

    Token-major is what makes this cheap: each token's matrix multiplies all its heads' groups at once,
    one small GEMM per token, with no per-head copies of the matrices."""
    B, N, H, D = x.shape
    half = D // 2
    groups = x[..., :half].reshape(B * N, H * half // 4, 4)
    proj = torch.bmm(groups, mat.to(x.dtype).reshape(B * N, 4, 4).transpose(1, 2))
    out_tokens[..., :half].copy_(proj.view(B, N, H, half))
    apply_rope(x[..., half:], table[:, None], out=out_tokens[..., half:])


def rms_scale(reference_norm: torch.Tensor, transformed_norm: torch.Tensor, dim: int,
              eps: float = 1e-6) -> torch.Tensor:
    """Per-vector factor min(1, rms_ref / rms_new) from L2 norms (the reference's post-UCPE renorm)."""
    ref = (reference_norm.square() / dim + eps).sqrt()
    cur = (transformed_norm.square() / dim + eps).sqrt()
    return (ref / cur.clamp_min(eps)).clamp(max=1.0)
