"""The one rigid-pose implementation (numpy and torch alike) and the packed raymap layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sana_wm_core.camera import action_string_to_c2w, prepare_camera
from sana_wm_core.camera.geometry import (RAYMAP_WIDTH, invert_rigid, pack_raymap, relative_poses,
                                          relative_to_first, unpack_raymap)


def _path() -> np.ndarray:
    c2w = action_string_to_c2w("w-6,jw-5,iw-4,dl-3")
    c2w[:, :3, 3] += [0.3, -0.2, 1.5]                      # frame 0 is not the identity
    return c2w


def test_invert_rigid_is_the_inverse_in_numpy_and_torch():
    c2w = _path()
    inv = invert_rigid(c2w)
    np.testing.assert_allclose(inv @ c2w, np.broadcast_to(np.eye(4), c2w.shape), atol=1e-12)
    np.testing.assert_allclose(inv, np.linalg.inv(c2w), atol=1e-12)
    t = torch.from_numpy(c2w)
    inv_t = invert_rigid(t)
    assert isinstance(inv_t, torch.Tensor) and inv_t.dtype == torch.float64
    np.testing.assert_allclose(inv_t.numpy(), inv, atol=1e-15)
    assert invert_rigid(c2w[0]).shape == (4, 4)


def test_relative_to_first_numpy_and_torch_agree():
    c2w = _path()
    rel = relative_poses(c2w)
    assert rel.dtype == np.float64 and np.array_equal(rel[0], np.eye(4))
    np.testing.assert_allclose(rel, np.linalg.inv(c2w[0])[None] @ c2w, atol=1e-12)
    rel32 = relative_to_first(torch.from_numpy(c2w).float())
    assert rel32.dtype == torch.float32 and torch.equal(rel32[0], torch.eye(4))
    np.testing.assert_allclose(rel32.numpy(), rel, atol=1e-5)


def test_raymap_packs_and_unpacks_the_same_layout():
    c2w = _path()[:9]
    intr = np.tile([[70.0, 71.0, 64.0, 48.0]], (9, 1))
    cam = prepare_camera(c2w, intr, target_size=(96, 128), vae_stride=(8, 32, 32))
    raymap = cam["raymap"]
    assert raymap.shape == (2, RAYMAP_WIDTH)
    poses, k = unpack_raymap(raymap)
    np.testing.assert_allclose(poses.numpy(), relative_poses(c2w)[[0, 8]], atol=1e-5)
    np.testing.assert_allclose(k.numpy(), intr[[0, 8]] * [4 / 128, 3 / 96, 4 / 128, 3 / 96], rtol=1e-6)
    assert torch.equal(pack_raymap(poses, k), raymap)
    with pytest.raises(ValueError, match="20 numbers"):
        unpack_raymap(torch.zeros(2, 19))
