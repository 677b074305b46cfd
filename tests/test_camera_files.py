"""Trajectory and intrinsics files: every format loads to the same camera, bad files name the file and frame."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sana_wm_core.camera import (action_string_to_c2w, camera_path_json, invert_rigid, load_intrinsics_file,
                                 load_trajectory, validate_c2w)
from sana_wm_core.camera.intrinsics import source_pixels

PATH = action_string_to_c2w("w-6,dw-5,ik-3,iw-4", 0.05, 1.2)   # 19 rigid poses with yaw and pitch


def test_npy_roundtrip(tmp_path):
    np.save(tmp_path / "cam.npy", PATH.astype(np.float32))
    cam = load_trajectory(tmp_path / "cam.npy")
    assert cam.c2w.dtype == np.float64 and cam.c2w.shape == (19, 4, 4)
    assert np.array_equal(cam.c2w, PATH.astype(np.float32).astype(np.float64))
    assert cam.source == "file:cam.npy" and cam.intrinsics is None and cam.fps == 16.0


def test_world_to_camera_is_inverted(tmp_path):
    np.save(tmp_path / "w2c.npy", invert_rigid(PATH))
    cam = load_trajectory(tmp_path / "w2c.npy", world_to_camera=True)
    np.testing.assert_allclose(cam.c2w, PATH, atol=1e-12)


def test_json_list_and_object(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps(PATH.tolist()))
    assert np.array_equal(load_trajectory(tmp_path / "list.json").c2w, PATH)
    obj = {"c2w": PATH.tolist(), "intrinsics": [500, 510, 320, 240], "fps": 24}
    (tmp_path / "obj.json").write_text(json.dumps(obj))
    cam = load_trajectory(tmp_path / "obj.json")
    assert cam.fps == 24.0
    assert np.array_equal(cam.intrinsics.values, [[500, 510, 320, 240]])
    assert cam.intrinsics.image_size is None and cam.intrinsics.source == "file:obj.json"


def test_our_camera_json_loads_back(tmp_path):
    from sana_wm_core.camera import CameraPath, intrinsics_from_array
    cam = CameraPath(c2w=PATH, fps=12.0, intrinsics=intrinsics_from_array(np.eye(3) * 400 + [[0, 0, 320],
                     [0, 0, 240], [0, 0, -399]], image_size=(640, 480), trusted=True), source="action:x")
    (tmp_path / "saved.json").write_text(json.dumps(camera_path_json(cam)))
    back = load_trajectory(tmp_path / "saved.json")
    assert np.array_equal(back.c2w, PATH) and back.fps == 12.0
    assert back.intrinsics.image_size == (640, 480) and back.intrinsics.trusted
    assert np.array_equal(back.intrinsics.values, [[400, 400, 320, 240]])


def _re10k_text(w2c: np.ndarray, url: bool = True) -> str:
    lines = ["https://www.youtube.com/watch?v=abc"] if url else []
    for i, m in enumerate(w2c):
        nums = [1000 * i, 0.5, 0.9, 0.5, 0.5, 0, 0] + m[:3].reshape(-1).tolist()
        lines.append(" ".join(repr(float(v)) for v in nums))
    return "\n".join(lines) + "\n"


def test_realestate10k_txt(tmp_path):
    (tmp_path / "clip.txt").write_text(_re10k_text(invert_rigid(PATH)))
    cam = load_trajectory(tmp_path / "clip.txt")
    np.testing.assert_allclose(cam.c2w, PATH, atol=1e-12)
    assert cam.intrinsics.image_size == (1, 1)
    # normalised intrinsics become pixels of the source image
    np.testing.assert_allclose(source_pixels(cam.intrinsics, (1280, 720))[0], [640, 648, 640, 360])
    assert cam.meta["timestamps"][:2] == [0.0, 1000.0]
    (tmp_path / "nourl.txt").write_text(_re10k_text(invert_rigid(PATH), url=False))
    np.testing.assert_allclose(load_trajectory(tmp_path / "nourl.txt").c2w, PATH, atol=1e-12)


def _bad(poses: np.ndarray, frame: int, how: str) -> np.ndarray:
    out = poses.copy()
    if how == "nan":
        out[frame, 0, 3] = np.nan
    elif how == "scale":
        out[frame, :3, :3] *= 1.01
    elif how == "mirror":
        out[frame, :3, 0] *= -1
    elif how == "lastrow":
        out[frame, 3, 0] = 0.5
    return out


@pytest.mark.parametrize("how, needle", [
    ("nan", "frame 7 contains NaN"),
    ("scale", "frame 7 is not a rigid camera pose: its 3x3 rotation is not orthonormal"),
    ("mirror", "frame 7 is not a rigid camera pose: its rotation has determinant -1"),
    ("lastrow", "frame 7 is not a rigid camera pose: its last row"),
])
def test_bad_poses_name_file_and_frame(tmp_path, how, needle):
    np.save(tmp_path / "bad.npy", _bad(PATH, 7, how))
    with pytest.raises(ValueError) as err:
        load_trajectory(tmp_path / "bad.npy")
    assert str(err.value).startswith("bad.npy: ") and needle in str(err.value)
    (tmp_path / "bad.json").write_text(json.dumps({"c2w": _bad(PATH, 7, how).tolist()}))  # NaN as JSON NaN
    with pytest.raises(ValueError, match="bad.json: frame 7"):
        load_trajectory(tmp_path / "bad.json")


def test_small_numeric_noise_is_tolerated():
    noisy = PATH + np.random.default_rng(0).normal(0, 1e-5, PATH.shape) * np.array([1, 1, 1, 1])[None, None]
    noisy[:, 3] = [0, 0, 0, 1]
    validate_c2w(noisy)


@pytest.mark.parametrize("name, content, needle", [
    ("shape.npy", np.zeros((5, 3, 4)), "shape (F,4,4) with F >= 1, got (5, 3, 4)"),
    ("empty.npy", np.zeros((0, 4, 4)), "got (0, 4, 4)"),
    ("obj.npy", np.array([{"a": 1}], dtype=object), "not a plain numeric .npy"),
    ("bad.json", "{not json", "not valid JSON"),
    ("nokey.json", {"poses": []}, "must hold 'c2w'"),
    ("ragged.json", [[[1, 0], [0, 1]], [[1]]], "'c2w' must be a list of 4x4"),
    ("short.txt", "0 0.5 0.5 0.5 0.5 0 0 1 0 0 0\n", "line 1 has 11 values"),
    ("text.txt", "x " * 19 + "\n", "line 1 holds a value that is not a number"),
    ("blank.txt", "https://example.com/v\n", "no camera lines"),
    ("cam.csv", "1,2", "unsupported camera file type '.csv'"),
])
def test_bad_files(tmp_path, name, content, needle):
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, content, allow_pickle=True)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))
    with pytest.raises(ValueError) as err:
        load_trajectory(path)
    assert needle in str(err.value) and name in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_trajectory(tmp_path / "nope.npy")


@pytest.mark.parametrize("value, expect", [
    (np.array([500.0, 510, 320, 240]), [[500, 510, 320, 240]]),
    (np.array([[500.0, 0, 320], [0, 510, 240], [0, 0, 1]]), [[500, 510, 320, 240]]),
    (np.tile([500.0, 510, 320, 240], (3, 1)), [[500, 510, 320, 240]] * 3),
    (np.tile(np.array([[500.0, 0, 320], [0, 510, 240], [0, 0, 1]]), (2, 1, 1)), [[500, 510, 320, 240]] * 2),
])
def test_intrinsics_files(tmp_path, value, expect):
    np.save(tmp_path / "k.npy", value)
    intr = load_intrinsics_file(tmp_path / "k.npy")
    assert np.array_equal(intr.values, expect) and intr.source == "file:k.npy" and intr.image_size is None


@pytest.mark.parametrize("value, needle", [
    (np.zeros((2, 3)), "unsupported intrinsics shape (2, 3)"),
    (np.array([500.0, np.inf, 320, 240]), "frame 0 contains NaN or infinite"),
    (np.array([[500.0, 510, 320, 240], [0, 510, 320, 240]]), "frame 1 has focal lengths fx=0.0"),
])
def test_bad_intrinsics_files(tmp_path, value, needle):
    np.save(tmp_path / "k.npy", value)
    with pytest.raises(ValueError) as err:
        load_intrinsics_file(tmp_path / "k.npy")
    assert needle in str(err.value) and "k.npy" in str(err.value)
