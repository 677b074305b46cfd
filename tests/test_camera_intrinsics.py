"""Intrinsics shapes, the fit rule, FOV conversion and guard, the crop transform, and first-frame
preprocessing (pixel-exact against diffusers' SanaWMImageProcessor)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers.pipelines.sana_wm import cam_utils as oracle
from diffusers.pipelines.sana_wm.image_processor import SanaWMImageProcessor
from PIL import Image

from sana_wm_core.camera import (Intrinsics, check_fov, crop_geometry, field_of_view_deg, fit_intrinsics,
                                 fov_to_pixels, intrinsics_from_array, intrinsics_from_fov, preprocess_image,
                                 source_pixels, transform_for_crop)
from sana_wm_core.camera.intrinsics import intrinsics_array


def _image(w: int, h: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, len(mode)), dtype=np.uint8)
    # smooth structure plus noise, so resampling differences would show
    yy, xx = np.mgrid[0:h, 0:w]
    arr[..., 0] = ((xx * 255) // max(w - 1, 1)).astype(np.uint8) // 2 + arr[..., 0] // 2
    return Image.fromarray(arr, mode=mode)


# -------------------------------------------------------------------------------------------- shapes + fit

def test_shapes_to_rows():
    k = np.array([[500.0, 0, 320], [0, 510, 240], [0, 0, 1]])
    assert intrinsics_array([500, 510, 320, 240]).tolist() == [[500, 510, 320, 240]]
    assert intrinsics_array(k).tolist() == [[500, 510, 320, 240]]
    assert intrinsics_array(np.stack([k, 2 * k])).tolist() == [[500, 510, 320, 240], [1000, 1020, 640, 480]]
    with pytest.raises(ValueError, match=r"unsupported intrinsics shape \(5,\)"):
        intrinsics_array(np.ones(5))


def test_fit_rule():
    rows = np.array([[100.0, 110, 50, 40], [200, 220, 60, 50], [300, 330, 70, 60]])
    assert np.array_equal(fit_intrinsics(rows, 3), rows.astype(np.float32))
    assert np.array_equal(fit_intrinsics(rows, 2), rows[:2].astype(np.float32))
    assert np.array_equal(fit_intrinsics(rows[:1], 5), np.repeat(rows[:1], 5, 0).astype(np.float32))
    five = fit_intrinsics(rows, 5)  # interpolated over normalised time
    assert five.dtype == np.float32 and five.shape == (5, 4)
    np.testing.assert_allclose(five[:, 0], [100, 150, 200, 250, 300])
    np.testing.assert_allclose(five[:, 3], [40, 45, 50, 55, 60])


@pytest.mark.parametrize("value", [
    [800.0, 790.0, 845.0, 464.0],
    np.array([[800.0, 0, 845], [0, 790, 464], [0, 0, 1]]),
    np.random.default_rng(1).uniform(300, 900, (30, 4)),
    np.tile(np.array([[800.0, 0, 845], [0, 790, 464], [0, 0, 1]]), (25, 1, 1)),
])
def test_fit_matches_diffusers_for_its_shapes(value):
    from types import SimpleNamespace
    from diffusers.pipelines.sana_wm.pipeline_sana_wm import SanaWMPipeline
    c2w = np.tile(np.eye(4, dtype=np.float32), (30, 1, 1))
    _, ref = SanaWMPipeline.prepare_camera_trajectory(SimpleNamespace(vae_temporal_compression_ratio=8),
                                                      c2w, None, value, 25)
    assert np.array_equal(fit_intrinsics(intrinsics_array(value), 25), ref)


# ------------------------------------------------------------------------------------------------ FOV

def test_fov_to_pixels_and_back():
    px = fov_to_pixels(60.0, None, (1280, 720))
    np.testing.assert_allclose(px, [640 / math.tan(math.radians(30)), 640 / math.tan(math.radians(30)), 640, 360])
    fx, fy = field_of_view_deg(px[None], (1280, 720))
    np.testing.assert_allclose(fx, 60.0)
    np.testing.assert_allclose(fy, math.degrees(2 * math.atan(360 / px[1])))
    px2 = fov_to_pixels(70.0, 45.0, (1000, 500))
    np.testing.assert_allclose(field_of_view_deg(px2[None], (1000, 500)), [[70.0], [45.0]])
    with pytest.raises(ValueError, match="fov_deg must be strictly between 0 and 180"):
        intrinsics_from_fov(180.0)


def test_source_pixels_rescales_other_image_sizes():
    intr = intrinsics_from_array([1000, 1000, 960, 540], image_size=(1920, 1080))
    np.testing.assert_allclose(source_pixels(intr, (960, 540)), [[500, 500, 480, 270]])
    same = intrinsics_from_array([1000, 1000, 960, 540], image_size=(1920, 1080))
    assert np.array_equal(source_pixels(same, (1920, 1080)), [[1000, 1000, 960, 540]])
    np.testing.assert_allclose(source_pixels(Intrinsics(fov_deg=90.0), (640, 480)), [[320, 320, 320, 240]])


@pytest.mark.parametrize("values, size, needle", [
    ([100.0, 100.0, 640, 360], (1280, 720), "horizontal FOV of 162.2 deg and a vertical FOV of 149.0 deg at frame 0"),
    ([4000.0, 4000.0, 640, 360], (1280, 720), "horizontal FOV of 18.2 deg and a vertical FOV of 10.3 deg"),
    ([700.0, 2000.0, 640, 360], (1280, 720), "vertical FOV of 20.4 deg"),
])
def test_fov_guard(values, size, needle):
    with pytest.raises(ValueError) as err:
        check_fov(np.array([values]), size, source="pi3x")
    msg = str(err.value)
    assert needle in msg and "(pi3x)" in msg and "between 25 and 120" in msg
    assert "Estimate Intrinsics" in msg and "trust_intrinsics" in msg


def test_fov_guard_names_first_bad_frame():
    rows = np.array([[700.0, 700, 640, 360]] * 3 + [[100.0, 100, 640, 360]])
    with pytest.raises(ValueError, match="at frame 3 "):
        check_fov(rows, (1280, 720))
    check_fov(rows[:3], (1280, 720))


# ------------------------------------------------------------------------------------------------ crop

@pytest.mark.parametrize("src", [(1920, 1080), (1024, 1024), (640, 480), (200, 120), (1281, 703), (719, 1283)])
def test_crop_geometry_and_transform_match_diffusers(src):
    img = Image.new("RGB", src)
    _, ref_src, ref_resized, ref_offset = oracle.resize_and_center_crop(img, 704, 1280)
    resized, offset = crop_geometry(src, 704, 1280)
    assert (resized, offset) == (ref_resized, ref_offset) and ref_src == src
    rows = np.random.default_rng(2).uniform(100, 1500, (9, 4)).astype(np.float32)
    ours = transform_for_crop(rows, src, resized, offset)
    assert np.array_equal(ours, oracle.transform_intrinsics_for_crop(rows, src, resized, offset))


def test_crop_transform_example_from_spec():
    resized, offset = crop_geometry((1920, 1080), 704, 1280)
    assert resized == (1280, 720) and offset == (0, 8)
    out = transform_for_crop(np.array([[1000.0, 1000, 960, 540]]), (1920, 1080), resized, offset)
    np.testing.assert_allclose(out, [[666.6667, 666.6667, 640, 352]], rtol=1e-6)


# ----------------------------------------------------------------------------------------- preprocessing

@pytest.mark.parametrize("src, target", [((200, 120), (96, 128)), ((97, 211), (64, 96)), ((300, 169), (704, 1280)),
                                         ((1280, 704), (704, 1280))])
def test_preprocess_matches_diffusers(src, target):
    img = _image(*src, seed=src[0])
    ref, _ = SanaWMImageProcessor(vae_scale_factor=32).preprocess_with_intrinsics(
        img, np.ones((1, 4), np.float32), target[0], target[1])
    ours = preprocess_image(img, *target)
    assert ours.shape == (1, 3, *target) and ours.dtype == torch.float32
    assert torch.equal(ours, ref)
    assert ours.min() >= -1 and ours.max() <= 1


def test_preprocess_accepts_arrays_and_comfy_images():
    img = _image(150, 90, seed=3)
    ref = preprocess_image(img, 64, 96)
    arr = np.asarray(img)
    assert torch.equal(preprocess_image(arr, 64, 96), ref)
    comfy = torch.from_numpy(arr.astype(np.float32) / 255.0)[None]       # ComfyUI IMAGE (1,H,W,3)
    assert torch.equal(preprocess_image(comfy, 64, 96), ref)
    rgba = np.concatenate([arr, np.full((90, 150, 1), 128, np.uint8)], axis=-1)
    assert torch.equal(preprocess_image(rgba, 64, 96), ref)
    with pytest.raises(ValueError, match="exactly one first frame"):
        preprocess_image(torch.zeros(2, 90, 150, 3), 64, 96)
    with pytest.raises(ValueError, match="NaN"):
        preprocess_image(np.full((8, 8, 3), np.nan, np.float32), 64, 96)
