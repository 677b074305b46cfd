"""mp4 writing (H.264, frame count, fps read back with PyAV), the HUD overlay and the camera JSON."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sana_wm_core.camera import CameraPath, action_string_to_c2w
from sana_wm_core.video import (Motion, Mp4Writer, OverlayPainter, draw_hud, motions_from_action,
                                motions_from_poses, probe_mp4, save_clip, write_mp4)


def _frames(n: int, h: int = 96, w: int = 128) -> np.ndarray:
    t = np.arange(n)[:, None, None, None]
    y = np.arange(h)[None, :, None, None]
    x = np.arange(w)[None, None, :, None]
    return ((x * 2 + y + t * 9 + np.arange(3) * 60) % 256).astype(np.uint8)


def test_mp4_is_h264_with_right_count_and_fps(tmp_path):
    frames = _frames(17)
    info = write_mp4(tmp_path / "a.mp4", (frames[i:i + 5] for i in range(0, 17, 5)), fps=16)
    assert info.frames == 17 and (info.width, info.height) == (128, 96)
    p = probe_mp4(tmp_path / "a.mp4")
    assert p["codec"] == "h264" and p["frames"] == 17 and p["fps"] == 16.0
    assert (p["width"], p["height"]) == (128, 96) and p["pix_fmt"] == "yuv420p"
    import av

    with av.open(str(tmp_path / "a.mp4")) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(first.astype(int) - frames[0].astype(int)).mean() < 12   # lossy, but the same picture


def test_writer_bad_inputs(tmp_path):
    w = Mp4Writer(tmp_path / "b.mp4", 16)
    with pytest.raises(ValueError, match="uint8"):
        w.write(np.zeros((2, 96, 128, 3), np.float32))
    with pytest.raises(ValueError, match="even"):
        w.write(np.zeros((1, 95, 128, 3), np.uint8))
    with pytest.raises(ValueError, match="fps"):
        Mp4Writer(tmp_path / "c.mp4", 0)
    with pytest.raises(ValueError, match="no frames"):
        Mp4Writer(tmp_path / "d.mp4", 16).close()


def test_failed_stream_leaves_no_partial_file(tmp_path):
    def chunks():
        yield _frames(3)
        raise RuntimeError("decoder died")

    with pytest.raises(RuntimeError):
        write_mp4(tmp_path / "e.mp4", chunks(), 16)
    assert not (tmp_path / "e.mp4").exists()


def test_motions_from_action_and_poses_agree():
    action = "w-8,jw-4,iw-4,none-2,sd-3"
    c2w = action_string_to_c2w(action)                     # classic map
    n = c2w.shape[0]
    from_keys = motions_from_action(action, n, "classic")
    from_poses = motions_from_poses(c2w)
    assert len(from_keys) == len(from_poses) == n == 22
    assert from_keys[1] == Motion(1, 0, 0.0, 0.0)
    assert from_keys[9] == Motion(1, 0, -1.0, 0.0)         # j = yaw left in the classic map
    assert from_keys[13] == Motion(1, 0, 0.0, 1.0)         # i = pitch up
    assert from_keys[18] == Motion(0, 0, 0.0, 0.0)
    assert from_keys[20] == Motion(-1, 1, 0.0, 0.0)
    for a, b in zip(from_keys, from_poses):
        assert (a.forward, a.strafe) == (b.forward, b.strafe)
        assert np.sign(a.yaw) == np.sign(round(b.yaw, 6)) and np.sign(a.pitch) == np.sign(round(b.pitch, 6))
    game = motions_from_action("a-2", 3, "game")
    assert game[1] == Motion(0, 0, -1.0, 0.0)              # a = yaw left in the game map


def test_hud_draws_in_corners_only():
    frame = np.full((96, 128, 3), 90, np.uint8)
    idle = draw_hud(frame, Motion())
    moving = draw_hud(frame, Motion(1, -1, 0.5, -0.5))
    assert not np.array_equal(idle, frame)
    assert not np.array_equal(idle, moving)
    assert np.array_equal(moving[20:60, 40:90], frame[20:60, 40:90])       # the picture's centre is untouched


def test_save_clip_with_overlay_and_json(tmp_path):
    action = "w-8,jw-4,iw-4"
    cam = CameraPath(c2w=action_string_to_c2w(action), fps=16.0, source=f"action:{action}", action=action,
                     mapping="classic")
    frames = _frames(16)
    info, js = save_clip(iter([frames[:7], frames[7:]]), tmp_path / "clip.mp4", fps=16, camera=cam,
                         video_c2w=cam.c2w[1:17], n_frames=16, overlay=True, first_pose=1,
                         extra={"seed": 3})
    assert probe_mp4(info.path)["frames"] == 16
    doc = json.loads(js.read_text())
    assert js.name == "clip.camera.json"
    assert doc["video"]["frames"] == 16 and doc["video"]["fps"] == 16.0 and len(doc["video"]["c2w"]) == 16
    assert doc["action"] == action and doc["frames"] == 17 and doc["generation"] == {"seed": 3}
    painter = OverlayPainter.for_camera(cam, 16, first_pose=1)
    assert painter.motions[0] == Motion(1, 0, 0.0, 0.0) and len(painter.motions) == 16
    with pytest.raises(ValueError, match="overlay needs the camera"):
        save_clip(iter([frames]), tmp_path / "x.mp4", overlay=True)


@pytest.mark.parametrize("mapping", ["classic", "game"])
def test_overlay_and_parser_read_the_same_key_map(mapping):
    """Each key lights the HUD (from the action) the way the parser moved the camera (read off the poses)."""
    from sana_wm_core.camera.keymaps import ALLOWED_KEYS, key_labels

    labels = key_labels(mapping)
    for key in ALLOWED_KEYS:
        action = f"{key}-6"
        typed = motions_from_action(action, 7, mapping)[3]
        seen = motions_from_poses(action_string_to_c2w(action, 0.05, 1.2, mapping), 7)[3]
        got = tuple(np.sign([typed.forward, typed.strafe, typed.yaw, typed.pitch]))
        assert got == tuple(np.sign([seen.forward, seen.strafe, seen.yaw, seen.pitch])), (mapping, key)
        axis = {"forward": 0, "back": 0, "strafe": 1, "yaw": 2, "pitch": 3}[labels[key].split()[0]]
        assert got[axis] != 0 and sum(g != 0 for g in got) == 1, (mapping, key, got)
