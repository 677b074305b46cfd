"""Frame snapping, relative poses, prepare_camera and build_camera_inputs against the diffusers pipeline's own
helpers, run in the order `SanaWMPipeline.__call__` runs them."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers.pipelines.sana_wm import cam_utils as oracle
from diffusers.pipelines.sana_wm.image_processor import SanaWMImageProcessor
from diffusers.pipelines.sana_wm.pipeline_sana_wm import SanaWMPipeline
from PIL import Image

from sana_wm_core.camera import (CameraPath, Intrinsics, action_string_to_c2w, build_camera_inputs,
                                 fov_to_pixels, intrinsics_from_array, intrinsics_from_fov, plucker_rays,
                                 prepare_camera, preprocess_image, relative_poses, snap_num_frames)

FAKE_PIPE = SimpleNamespace(vae_temporal_compression_ratio=8)


def _random_c2w(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.tile(np.eye(4), (count, 1, 1))
    for i in range(count):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        w, x, y, z = q
        out[i, :3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                          [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                          [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
        out[i, :3, 3] = rng.normal(scale=2.0, size=3)
    return out


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


# ------------------------------------------------------------------------------------------------ snap

@pytest.mark.parametrize("requested, length, expect", [
    (161, 321, 161), (321, 321, 321), (300, 321, 297), (161, 101, 97), (104, 200, 105), (1, 5, 1), (2, 5, 1),
    (5, 5, 1), (6, 9, 9), (0, 321, 321), (0, 101, 97), (-1, 17, 17),
])
def test_snap_num_frames(requested, length, expect):
    assert snap_num_frames(requested, length) == expect
    if requested > 0:
        assert oracle.snap_num_frames(min(requested, length), 8, upper_bound=length) == expect


def test_snap_matches_diffusers_everywhere():
    for length in range(1, 60):
        for requested in range(1, 70):
            assert snap_num_frames(requested, length) == oracle.snap_num_frames(min(requested, length), 8,
                                                                                upper_bound=length)


def test_relative_poses():
    c2w = _random_c2w(5, 0)
    rel = relative_poses(c2w)
    assert np.array_equal(rel[0], np.eye(4))
    np.testing.assert_allclose(rel[1:], np.linalg.inv(c2w[0])[None] @ c2w[1:], atol=1e-12)


# --------------------------------------------------------------------------------------- prepare_camera

@pytest.mark.parametrize("count, target", [(1, (704, 1280)), (5, (96, 128)), (9, (704, 1280)),
                                           (17, (96, 160)), (41, (704, 1280)), (12, (64, 64))])
def test_prepare_camera_matches_diffusers(count, target):
    c2w = _random_c2w(count, count).astype(np.float32)
    rng = np.random.default_rng(count)
    intr = np.stack([rng.uniform(300, 900, count), rng.uniform(300, 900, count),
                     rng.uniform(0, target[1], count), rng.uniform(0, target[0], count)], -1).astype(np.float32)
    ours = prepare_camera(c2w, intr, target_size=target, vae_stride=(8, 32, 32))
    ref = oracle.prepare_camera(c2w, intr, target_size=target, vae_stride=(8, 32, 32))
    lat = (count - 1) // 8 + 1
    assert ours["raymap"].shape == (lat, 20) and ours["raymap"].dtype == torch.float32
    assert ours["chunk_plucker"].shape == (48, lat, target[0] // 32, target[1] // 32)
    assert _max_diff(ours["raymap"], ref["raymap"]) == 0.0
    assert _max_diff(ours["chunk_plucker"], ref["chunk_plucker"]) == 0.0


def test_prepare_camera_float64_input_and_other_stride():
    c2w = _random_c2w(13, 4)                                 # float64 poses, as our loaders return
    intr = np.tile([[500.0, 500, 64, 48]], (13, 1))
    ours = prepare_camera(c2w, intr, target_size=(96, 128), vae_stride=(4, 16, 16))
    ref = oracle.prepare_camera(c2w, intr, target_size=(96, 128), vae_stride=(4, 16, 16))
    assert ours["chunk_plucker"].shape == (24, 4, 6, 8)
    assert torch.equal(ours["raymap"], ref["raymap"]) and torch.equal(ours["chunk_plucker"], ref["chunk_plucker"])


def test_plucker_example_from_spec():
    pose = torch.eye(4)[None].clone()
    pose[0, 2, 3] = 0.25
    k = torch.tensor([[20.833334, 20.833334, 20.0, 11.0]])
    rays = plucker_rays(k, pose, 22, 40)
    np.testing.assert_allclose(rays[0, 0, 0].numpy(), [-0.6471754, -0.3559465, 0.6741411, 0.0889866, -0.1617938, 0],
                               atol=1e-6)
    np.testing.assert_allclose(rays[0, 11, 20].numpy(), [0, 0, 1, 0, 0, 0], atol=1e-7)


def test_prepare_camera_rejects_mismatch():
    with pytest.raises(ValueError, match=r"intrinsics_vec4 must be \(F,4\) with F = 9"):
        prepare_camera(_random_c2w(9, 0), np.ones((8, 4)), target_size=(704, 1280), vae_stride=(8, 32, 32))
    with pytest.raises(ValueError, match="poses_c2w must be"):
        prepare_camera(np.ones((9, 3, 4)), np.ones((9, 4)), target_size=(704, 1280), vae_stride=(8, 32, 32))


# ---------------------------------------------------------------------------------- build_camera_inputs

def _diffusers_camera(image: Image.Image, c2w=None, action=None, intrinsics=None, num_frames=161,
                      height=704, width=1280):
    """The camera part of SanaWMPipeline.__call__, using its own methods in its own order."""
    c2w_t, intr = SanaWMPipeline.prepare_camera_trajectory(FAKE_PIPE, c2w, action, intrinsics, num_frames)
    pixels, intr = SanaWMImageProcessor(vae_scale_factor=32).preprocess_with_intrinsics(image, intr, height, width)
    cam = oracle.prepare_camera(c2w_t, intr, target_size=(height, width), vae_stride=(8, 32, 32))
    return c2w_t, intr, pixels, cam


K33 = np.array([[800.0, 0, 845], [0, 790, 464], [0, 0, 1]])
CASES = [
    # (name, action, c2w seed+len, intrinsics, num_frames, source size, target)
    ("action-vec4", "w-80,jw-40,w-40", None, [800.0, 800.0, 845.0, 464.0], 161, (1690, 928), (704, 1280)),
    ("action-K", "w-20,iw-13,lk-9", None, K33, 33, (1690, 928), (704, 1280)),
    ("c2w-F4", None, (50, 3), np.random.default_rng(5).uniform(700, 900, (50, 4)), 45,
     (1600, 1000), (704, 1280)),
    ("c2w-F33", None, (30, 4), np.tile(K33, (30, 1, 1)), 300, (1690, 928), (96, 128)),
    ("short-path", "w-12", None, [150.0, 150.0, 100.0, 60.0], 161, (200, 120), (96, 128)),
    ("portrait", "dw-17,none-8", None, [600.0, 610.0, 360.0, 640.0], 26, (720, 1280), (704, 1280)),
]


@pytest.mark.parametrize("name, action, c2w_spec, intr, num_frames, src, target", CASES, ids=[c[0] for c in CASES])
def test_build_camera_inputs_matches_diffusers_pipeline(name, action, c2w_spec, intr, num_frames, src, target):
    image = Image.new("RGB", src, (120, 80, 40))
    # random paths start away from the origin, so making poses relative to frame 0 matters
    c2w = None if c2w_spec is None else _random_c2w(c2w_spec[0], c2w_spec[1])
    ref_c2w, ref_intr, ref_pixels, ref_cam = _diffusers_camera(image, c2w, action, intr, num_frames, *target)
    path = action_string_to_c2w(action) if action is not None else c2w
    camera = CameraPath(c2w=path, intrinsics=intrinsics_from_array(intr, trusted=False))
    ours = build_camera_inputs(camera, source_size=src, num_frames=num_frames, height=target[0], width=target[1])
    assert ours.num_frames == ref_c2w.shape[0]
    assert np.array_equal(ours.intrinsics, ref_intr)
    assert torch.equal(ours.raymap, ref_cam["raymap"])
    assert torch.equal(ours.chunk_plucker, ref_cam["chunk_plucker"])
    assert ours.latent_frames == (ours.num_frames - 1) // 8 + 1
    np.testing.assert_allclose(ours.c2w, relative_poses(ref_c2w.astype(np.float64)), atol=1e-12)
    assert torch.equal(preprocess_image(image, *target), ref_pixels)


def test_build_with_fov_intrinsics_equals_diffusers_with_those_pixels():
    src = (1920, 1080)
    camera = CameraPath(c2w=action_string_to_c2w("w-30,dw-10"), intrinsics=intrinsics_from_fov(70.0))
    ours = build_camera_inputs(camera, source_size=src, num_frames=41)
    px = fov_to_pixels(70.0, None, src)
    assert px[0] == pytest.approx(960 / math.tan(math.radians(35)))
    _, ref_intr, _, ref_cam = _diffusers_camera(Image.new("RGB", src), action="w-30,dw-10", intrinsics=px,
                                                num_frames=41)
    assert ours.num_frames == 41
    assert np.array_equal(ours.intrinsics, ref_intr)
    assert torch.equal(ours.chunk_plucker, ref_cam["chunk_plucker"])


def test_build_interpolates_short_intrinsics_sequences():
    camera = CameraPath(c2w=action_string_to_c2w("w-16"), intrinsics=intrinsics_from_array(
        [[700.0, 700, 640, 360], [900.0, 900, 640, 360]]))
    ours = build_camera_inputs(camera, source_size=(1280, 720), num_frames=17)
    # 1280x720 needs no resize (only an 8 px crop), so fx is the interpolated source value
    np.testing.assert_allclose(ours.intrinsics[[0, 8, 16], 0], [700, 800, 900], rtol=1e-6)


def test_build_with_intrinsics_of_another_image_size():
    """Pixels given for a 3840x2160 original, source image is the 1920x1080 downscale: same camera."""
    c2w = action_string_to_c2w("w-8")
    a = build_camera_inputs(CameraPath(c2w=c2w, intrinsics=intrinsics_from_array(
        [2000.0, 2000, 1920, 1080], image_size=(3840, 2160))), source_size=(1920, 1080), num_frames=9)
    b = build_camera_inputs(CameraPath(c2w=c2w, intrinsics=intrinsics_from_array([1000.0, 1000, 960, 540])),
                            source_size=(1920, 1080), num_frames=9)
    assert np.array_equal(a.intrinsics, b.intrinsics) and torch.equal(a.chunk_plucker, b.chunk_plucker)


def test_build_whole_path_when_num_frames_is_zero():
    camera = CameraPath(c2w=action_string_to_c2w("w-100"), intrinsics=intrinsics_from_fov(60.0))
    assert build_camera_inputs(camera, source_size=(1280, 720), num_frames=0).num_frames == 97


def test_build_errors():
    c2w = action_string_to_c2w("w-8")
    with pytest.raises(ValueError) as err:
        build_camera_inputs(CameraPath(c2w=c2w), source_size=(1280, 720), num_frames=9)
    assert "no intrinsics" in str(err.value) and "Estimate Intrinsics" in str(err.value)
    assert "Set Camera Intrinsics" in str(err.value)
    wide = CameraPath(c2w=c2w, intrinsics=intrinsics_from_array([200.0, 200, 640, 360]))
    with pytest.raises(ValueError, match="horizontal FOV of 145.3 deg"):
        build_camera_inputs(wide, source_size=(1280, 720), num_frames=9)
    trusted = CameraPath(c2w=c2w, intrinsics=Intrinsics(values=np.array([[200.0, 200, 640, 360]]), trusted=True))
    assert build_camera_inputs(trusted, source_size=(1280, 720), num_frames=9).num_frames == 9
    with pytest.raises(ValueError, match="multiples of the VAE stride"):
        build_camera_inputs(trusted, source_size=(1280, 720), num_frames=9, height=700)
    with pytest.raises(ValueError, match="must be a CameraPath"):
        build_camera_inputs(c2w, source_size=(1280, 720), num_frames=9)
