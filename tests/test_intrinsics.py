"""Intrinsics geometry: the reference's Pi3X size rule, focal recovery from rays, EXIF, FOV, the guard."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from sana_wm_core.camera import CameraPath, action_string_to_c2w, build_camera_inputs
from sana_wm_core.pi3x import (MethodUnavailable, estimate_intrinsics, focal_35mm_from_exif, focal_from_rays,
                               image_from_tensor, intrinsics_from_35mm, pi3x_input_size, scale_to_source)


def _pinhole_rays(fx: float, fy: float, w: int, h: int, depth_seed: int = 0) -> torch.Tensor:
    """Rays of a pinhole with principal point at the grid centre, arbitrary lengths (like Pi3X's points)."""
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    d = torch.stack(((u - (w - 1) / 2) / fx, (v - (h - 1) / 2) / fy, torch.ones_like(u)), dim=-1)
    depth = 0.5 + torch.rand(h, w, 1, generator=torch.Generator().manual_seed(depth_seed), dtype=torch.float64)
    return d * depth


@pytest.mark.parametrize("fx,fy,w,h", [(550.0, 530.0, 672, 378), (300.0, 300.0, 504, 504), (123.4, 456.7, 70, 42)])
def test_focal_recovery_returns_known_k_exactly(fx, fy, w, h):
    rays = _pinhole_rays(fx, fy, w, h)
    got_fx, got_fy, cx, cy = focal_from_rays(rays[None, None])
    assert got_fx.shape == (1, 1)
    assert abs(got_fx.item() - fx) < 1e-9 * fx and abs(got_fy.item() - fy) < 1e-9 * fy
    assert (cx, cy) == ((w - 1) / 2, (h - 1) / 2)
    flipped = -rays  # points behind the camera: slopes use |z|, so x/|z| flips sign and so does f
    assert abs(focal_from_rays(flipped)[0].item() + fx) < 1e-6


@pytest.mark.parametrize("size,expected", [((1920, 1080), (672, 378)), ((1280, 720), (672, 378)),
                                           ((1024, 1024), (504, 504)), ((640, 480), (574, 434))])
def test_pi3x_input_size_matches_reference_examples(size, expected):
    assert pi3x_input_size(*size) == expected


def test_pi3x_input_size_rule_holds_for_many_shapes():
    for w, h in [(1, 1), (13, 5000), (5000, 13), (704, 1280), (333, 777), (4032, 3024), (100, 100)]:
        mw, mh = pi3x_input_size(w, h)
        assert mw % 14 == 0 and mh % 14 == 0 and mw >= 14 and mh >= 14
        assert mw * mh <= 255_000
    with pytest.raises(ValueError, match="positive"):
        pi3x_input_size(0, 10)


def test_scale_to_source_is_per_axis():
    vals = scale_to_source(550.0, 530.0, 335.5, 188.5, (672, 378), (1920, 1080))
    np.testing.assert_allclose(vals, [550 * 1920 / 672, 530 * 1080 / 378, 335.5 * 1920 / 672, 188.5 * 1080 / 378])


def _jpeg_with_exif(path, size=(300, 200), focal_35mm=None):
    img = Image.new("RGB", size, (120, 80, 40))
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    if focal_35mm is not None:
        exif.get_ifd(0x8769)[0xA405] = focal_35mm
    img.save(path, "JPEG", exif=exif.tobytes())
    return path


def test_exif_35mm_focal_is_read_and_converted(tmp_path):
    path = _jpeg_with_exif(tmp_path / "a.jpg", (300, 200), focal_35mm=18)
    assert focal_35mm_from_exif(path) == 18.0
    assert focal_35mm_from_exif(Image.open(path)) == 18.0
    fx, fy, cx, cy = intrinsics_from_35mm(18.0, (300, 200))
    # a 3:2 frame matches the 36x24 mm full frame exactly: width <-> 36 mm, so FOV_x = 2 atan(36 / 36) = 90 deg
    assert math.degrees(2 * math.atan(300 / (2 * fx))) == pytest.approx(90.0, abs=1e-9)
    assert (fx, cx, cy) == (fy, 150.0, 100.0)


def test_exif_absent_or_zero_gives_none(tmp_path):
    assert focal_35mm_from_exif(_jpeg_with_exif(tmp_path / "none.jpg")) is None
    assert focal_35mm_from_exif(_jpeg_with_exif(tmp_path / "zero.jpg", focal_35mm=0)) is None
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    assert focal_35mm_from_exif(tmp_path / "bad.jpg") is None


def test_estimate_with_exif_and_fov(tmp_path):
    img = Image.new("RGB", (300, 200))
    path = _jpeg_with_exif(tmp_path / "b.jpg", focal_35mm=24)
    est = estimate_intrinsics(img, "exif", exif_source=path, fallback=False)
    assert est.source == "exif" and est.notes == ()
    np.testing.assert_allclose(est.values, intrinsics_from_35mm(24, (300, 200)))
    assert est.intrinsics.values.shape == (1, 4) and est.intrinsics.image_size == (300, 200)
    assert est.intrinsics.source == "exif"
    assert "source: exif" in est.summary() and "FOV: horizontal" in est.summary()

    fov = estimate_intrinsics(img, "fov", fov_deg=60.0)
    assert fov.source == "fov"
    assert fov.fov_x_deg == pytest.approx(60.0, abs=1e-9)
    assert fov.values[0] == pytest.approx(150.0 / math.tan(math.radians(30.0)))


def test_exif_missing_falls_back_to_fov_or_raises(tmp_path):
    img = Image.new("RGB", (300, 200))
    plain = _jpeg_with_exif(tmp_path / "plain.jpg")
    est = estimate_intrinsics(img, "exif", exif_source=plain, fov_deg=70.0, fallback=True)
    assert est.source == "fov" and "exif skipped" in est.notes[0] and "35 mm" in est.notes[0]
    with pytest.raises(MethodUnavailable, match="no EXIF 35 mm-equivalent"):
        estimate_intrinsics(img, "exif", exif_source=plain, fallback=False)
    with pytest.raises(MethodUnavailable, match="no image file"):
        estimate_intrinsics(img, "exif", exif_source=None, fallback=False)


def test_fov_guard_and_bad_arguments():
    img = Image.new("RGB", (320, 240))
    for bad in (25.0, 20.0, 120.0, 150.0):
        with pytest.raises(ValueError, match="fov_deg must be strictly between 25 and 120"):
            estimate_intrinsics(img, "fov", fov_deg=bad)
    wide = Image.new("RGB", (1000, 200))  # 5:1 -> a 40 deg horizontal FOV is ~8.5 deg vertically
    with pytest.raises(ValueError, match="vertical FOV"):
        estimate_intrinsics(wide, "fov", fov_deg=40.0)
    with pytest.raises(ValueError, match="method must be one of"):
        estimate_intrinsics(img, "magic")
    with pytest.raises(ValueError, match="needs a Pi3X checkpoint"):
        estimate_intrinsics(img, "pi3x", checkpoint=None, fallback=False)
    # bad fov_deg is caught before any model would load, even when method is pi3x (it is the last fallback)
    with pytest.raises(ValueError, match="fov_deg"):
        estimate_intrinsics(img, "pi3x", fov_deg=10.0, checkpoint=lambda: pytest.fail("must not load"))


def test_image_from_tensor_recovers_bytes_and_rejects_bad_shapes():
    rgb = np.random.RandomState(0).randint(0, 256, (1, 9, 7, 3)).astype(np.uint8)
    tensor = torch.from_numpy(rgb.astype(np.float32) / 255.0)
    assert np.array_equal(np.asarray(image_from_tensor(tensor)), rgb[0])
    with pytest.raises(ValueError, match="IMAGE"):
        image_from_tensor(torch.zeros(9, 7, 3))


def test_estimate_feeds_the_camera_tensors():
    img = Image.new("RGB", (1920, 1080))
    est = estimate_intrinsics(img, "fov", fov_deg=60.0)
    cam = CameraPath(c2w=action_string_to_c2w("w-16"), intrinsics=est.intrinsics)
    inputs = build_camera_inputs(cam, source_size=img.size, num_frames=17)
    fx = 960.0 / math.tan(math.radians(30.0))
    # 1920x1080 -> 1280x720, crop top 8; then /32 on the latent grid: raymap carries [fx, fy, cx, cy] latent
    expected = np.array([fx * 2 / 3, fx * 2 / 3, 640.0, 360.0 - 8.0]) / 32.0
    np.testing.assert_allclose(inputs.raymap[0, 16:].numpy(), expected, rtol=1e-5)
