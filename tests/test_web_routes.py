"""The camera preview routes over real HTTP: the same numbers and the same error text as the Python parser."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sana_wm_core.camera.actions import action_string_to_c2w, parse_action_string
from sana_wm_core.camera.geometry import invert_rigid, relative_poses
from sana_wm_core.camera.tensors import snap_num_frames
from scripts.comfy_api import ComfyError

pytestmark = pytest.mark.server

ACTIONS = "/sana_wm/camera/preview_actions"
FILE = "/sana_wm/camera/preview_file"


def _post_error(comfy, payload) -> tuple[int, str]:
    with pytest.raises(ComfyError) as info:
        comfy.post_json(ACTIONS, payload)
    code = int(str(info.value).split("HTTP ")[1].split(":")[0])
    return code, info.value.details["error"]


def _python_error(fn, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("mapping,ts,rot", [("classic", 0.05, 1.2), ("game", 0.025, 0.6)])
def test_good_action_string_matches_the_parser(comfy, mapping, ts, rot):
    action = "w-30, JW-12,none-4,il-9"
    body = comfy.post_json(ACTIONS, {"action": action, "translation_speed": ts, "rotation_speed_deg": rot,
                                     "mapping": mapping, "num_frames": 40})
    c2w = action_string_to_c2w(action, ts, rot, mapping)
    assert body["frames"] == len(c2w) == 56
    assert body["used_frames"] == snap_num_frames(40, 56) == 41
    assert np.abs(np.array(body["positions"]) - c2w[:, :3, 3]).max() < 1e-6
    assert np.abs(np.array(body["forward"]) - c2w[:, :3, 2]).max() < 1e-6
    assert np.abs(np.array(body["up"]) + c2w[:, :3, 1]).max() < 1e-6
    assert np.abs(np.array(body["right"]) - c2w[:, :3, 0]).max() < 1e-6
    segs = parse_action_string(action)
    assert [(s["keys"], s["frames"], s["start"]) for s in body["segments"]] == \
        [("".join(s["keys"]) or "none", s["frames"], s["start"]) for s in segs]
    assert body["segments"][1]["keys"] == "jw" and body["mapping"] == mapping


@pytest.mark.parametrize("mapping", ["classic", "game"])
def test_the_key_map_comes_from_the_one_table(comfy, mapping):
    """The timeline's labels are the parser's table, served with the path (the JS holds no copy)."""
    from sana_wm_core.camera.keymaps import KEY_MAPS, key_labels

    body = comfy.post_json(ACTIONS, {"action": "w-4", "mapping": mapping})
    assert body["key_map"] == key_labels(mapping) and set(body["key_map"]) == set(KEY_MAPS[mapping])
    yaw = {"classic": ("j", "l"), "game": ("a", "d")}[mapping]
    assert body["key_map"][yaw[0]] == "yaw left" and body["key_map"][yaw[1]] == "yaw right"
    assert body["key_map"]["w"] == "forward" and body["key_map"]["k"] == "pitch down"


def test_file_types_are_the_loaders_registry(comfy):
    from sana_wm_core.camera import TRAJECTORY_SUFFIXES

    assert comfy.get_json("/sana_wm/camera/file_types") == {"suffixes": list(TRAJECTORY_SUFFIXES)}
    assert TRAJECTORY_SUFFIXES == (".npy", ".json", ".txt")


def test_the_api_prefix_answers_too(comfy):
    body = comfy.post_json("/api" + ACTIONS, {"action": "d-4"})
    assert body["frames"] == 5 and body["used_frames"] is None


@pytest.mark.parametrize("action", ["w-10,q-5", "w-0", "w-10,,d-3", "", "w10"])
def test_bad_action_string_answers_the_parsers_message(comfy, action):
    code, message = _post_error(comfy, {"action": action, "mapping": "classic"})
    assert code == 400
    assert message == _python_error(action_string_to_c2w, action)


def test_bad_settings_are_named(comfy):
    code, message = _post_error(comfy, {"action": "w-3", "mapping": "diagonal"})
    assert code == 400 and message == _python_error(action_string_to_c2w, "w-3", mapping="diagonal")
    code, message = _post_error(comfy, {"action": "w-3", "translation_speed": "fast"})
    assert code == 400 and "translation_speed" in message and "'fast'" in message
    code, message = _post_error(comfy, {"action": "w-3", "rotation_speed_deg": -1})
    assert code == 400 and message == _python_error(action_string_to_c2w, "w-3", rotation_speed_deg=-1)


def test_camera_file_preview(comfy, comfy_server):
    c2w = action_string_to_c2w("lw-20,iw-10", 0.05, 1.2, "classic")
    c2w = np.array([[1, 0, 0, 2.0], [0, 1, 0, 0.5], [0, 0, 1, -1.0], [0, 0, 0, 1]]) @ c2w   # not at the origin
    np.save(comfy_server.base / "input" / "web_routes_path.npy", c2w)
    body = comfy.get_json(FILE + "?file=web_routes_path.npy&world_to_camera=0")
    rel = relative_poses(c2w)
    assert body["frames"] == 31 and body["kind"] == "file" and body["segments"] == []
    assert np.abs(np.array(body["positions"]) - rel[:, :3, 3]).max() < 1e-6
    assert np.abs(np.array(body["forward"]) - rel[:, :3, 2]).max() < 1e-6

    assert body["used_frames"] is None and body["fps"] == 16.0

    w2c = comfy.get_json(FILE + "?file=web_routes_path.npy&world_to_camera=1&num_frames=20&fps=24")
    assert w2c["used_frames"] == snap_num_frames(20, 31) == 17 and w2c["fps"] == 24.0
    rel_inv = relative_poses(invert_rigid(c2w))
    assert np.abs(np.array(w2c["positions"]) - rel_inv[:, :3, 3]).max() < 1e-6


@pytest.mark.parametrize("name,expect", [("no_such_file.npy", "was not found"),
                                         ("../../../etc/passwd", "outside ComfyUI's input folder"),
                                         ("", "file is empty"),
                                         ("web_routes_path.npy&num_frames=many", "num_frames must be a number")])
def test_camera_file_errors(comfy, name, expect):
    with pytest.raises(ComfyError) as info:
        comfy.get_json(FILE + "?file=" + name)
    assert "HTTP 400" in str(info.value) and expect in info.value.details["error"]


def test_broken_camera_file_answers_the_loaders_message(comfy, comfy_server):
    from sana_wm_core.camera.trajectory import load_trajectory

    bad = comfy_server.base / "input" / "web_routes_bad.json"
    bad.write_text(json.dumps([[[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]]))
    with pytest.raises(ComfyError) as info:
        comfy.get_json(FILE + "?file=web_routes_bad.json")
    assert info.value.details["error"] == _python_error(load_trajectory, bad)
