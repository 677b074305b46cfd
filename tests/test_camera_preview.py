"""The preview drawing shows the path (not a blank canvas, different paths draw differently) and the JSON
summary carries what the browser editor and the saved sidecar need."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from sana_wm_core.camera import (CameraPath, action_string_to_c2w, camera_path_json, intrinsics_from_fov,
                                 render_camera_preview)

from sana_wm_core.camera import preview

REPO = Path(__file__).resolve().parents[1]
BG = np.array(preview._rgb(preview.PALETTE["background"]))
PANEL = np.array(preview._rgb(preview.PALETTE["panel"]))


def _drawn_fraction(img: np.ndarray) -> float:
    """Share of pixels that are neither the background nor the empty panel: the path, frustums, text."""
    far = lambda ref: np.abs(img.astype(int) - ref).sum(-1) > 30   # noqa: E731
    return float((far(BG) & far(PANEL)).mean())


def test_preview_draws_path_and_frustums(artifacts):
    cam = CameraPath(c2w=action_string_to_c2w("w-40,dw-30,iw-20,aw-30"), intrinsics=intrinsics_from_fov(70.0))
    img = render_camera_preview(cam, every_n=8, size=(640, 320))
    assert img.shape == (320, 640, 3) and img.dtype == np.uint8
    assert 0.005 < _drawn_fraction(img) < 0.5
    left, right = img[:300, :320], img[:300, 320:]
    assert _drawn_fraction(left) > 0.003 and _drawn_fraction(right) > 0.003   # both panels hold a drawing
    from PIL import Image
    Image.fromarray(img).save(artifacts / "camera_preview.png")


def test_frustum_spacing_changes_the_drawing():
    cam = CameraPath(c2w=action_string_to_c2w("w-40,dw-30"))
    sparse = render_camera_preview(cam, every_n=40)
    dense = render_camera_preview(cam, every_n=2)
    assert _drawn_fraction(dense) > _drawn_fraction(sparse)
    turned = render_camera_preview(CameraPath(c2w=action_string_to_c2w("w-40,lw-30")), every_n=40)
    assert not np.array_equal(turned, sparse)


def test_single_pose_and_static_path_draw():
    one = render_camera_preview(CameraPath(c2w=np.eye(4)[None]))
    assert one.shape == (384, 768, 3) and _drawn_fraction(one) > 0.001
    static = render_camera_preview(CameraPath(c2w=np.tile(np.eye(4), (17, 1, 1))))
    assert _drawn_fraction(static) > 0.001


def test_preview_rejects_bad_arguments():
    cam = CameraPath(c2w=action_string_to_c2w("w-4"))
    with pytest.raises(ValueError, match="every_n must be >= 1"):
        render_camera_preview(cam, every_n=0)
    with pytest.raises(ValueError, match="at least 64x64"):
        render_camera_preview(cam, size=(32, 400))


def test_camera_path_json():
    c2w = action_string_to_c2w("w-5,dw-5")
    cam = CameraPath(c2w=c2w, fps=16.0, intrinsics=intrinsics_from_fov(60.0), source="action:w-5,dw-5",
                     action="w-5,dw-5")
    data = json.loads(json.dumps(camera_path_json(cam)))
    assert data["frames"] == 11 and data["fps"] == 16.0 and data["action"] == "w-5,dw-5"
    assert data["source"] == "action:w-5,dw-5"
    np.testing.assert_allclose(data["positions"], c2w[:, :3, 3])
    np.testing.assert_allclose(data["forward"], c2w[:, :3, 2])
    np.testing.assert_allclose(data["c2w"], c2w)
    assert data["intrinsics"]["fov_deg"] == 60.0 and data["intrinsics"]["values"] is None
    assert camera_path_json(CameraPath(c2w=c2w))["intrinsics"] is None


def test_preview_node_and_live_view_share_one_palette():
    """The node's image and the page's live view (web/js/sanawm_path_view.js) draw from sanawm_palette.json."""
    palette = json.loads((REPO / "web" / "js" / "sanawm_palette.json").read_text())
    assert preview.PALETTE_FILE == REPO / "web" / "js" / "sanawm_palette.json" and preview.PALETTE == palette
    js = (REPO / "web" / "js" / "sanawm_path_view.js").read_text()
    assert 'fetch(new URL("./sanawm_palette.json", import.meta.url))' in js
    for key in ("background", "panel", "grid", "text", "dim", "start", "end"):   # no second copy in the JS
        assert palette[key] not in js, key
    assert not re.search(r"hsl\(\$\{hue[^`]*\b\d+%", js), "the path's saturation/lightness must come from the palette"

    cam = CameraPath(c2w=action_string_to_c2w("w-40,lw-30"), intrinsics=intrinsics_from_fov(70.0))
    img = render_camera_preview(cam, every_n=1000, size=(640, 320))
    colours = {tuple(c) for c in img.reshape(-1, 3).tolist()}
    assert tuple(BG) == tuple(img[-1, -1]) and tuple(PANEL) in colours
    for key in ("start", "end"):   # (the text is antialiased: no pixel need carry its exact colour)
        assert preview._rgb(palette[key]) in colours, key
    # the path's two ends carry the live view's hue ramp (hsl(190, 85%, 60%) ... hsl(40, 85%, 60%))
    assert preview._colour(0.0) == (66, 211, 240) and preview._colour(1.0) == (240, 182, 66)
    assert preview._colour(0.0) in colours and preview._colour(1.0) in colours
