"""Camera nodes in a real ComfyUI server: every node runs in a workflow, the preview PNG comes back through
/view, bad action strings and bad files fail with the parser's text, and the next prompt still succeeds."""
from __future__ import annotations

import io
import json
import math
import uuid

import numpy as np
import pytest
from PIL import Image

from sana_wm_core.camera import action_string_to_c2w, invert_rigid
from scripts.comfy_api import ComfyError

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def comfy_server(tmp_path_factory):
    """Camera nodes need no weights: this module's server has an empty models/ folder, so these tests do not
    depend on the tiny checkpoint builders (conftest's `comfy` client fixture runs against it)."""
    from scripts.comfy_server import ComfyServer

    srv = ComfyServer(tmp_path_factory.mktemp("comfy_camera")).start()
    yield srv
    alive = srv.alive()
    srv.stop()
    assert alive, "ComfyUI died during the camera node tests:\n" + srv.log()[-5000:]

NODES = ("SanaWMCameraFromActions", "SanaWMLoadCamera", "SanaWMSetIntrinsics", "SanaWMCameraPreview")


def _actions(action: str = "w-20,dw-12,iw-8", **kw) -> dict:
    inputs = dict(action=action, translation_speed=0.05, rotation_speed_deg=1.2, mapping="classic",
                  num_frames=0, fps=16.0)
    inputs.update(kw)
    return {"class_type": "SanaWMCameraFromActions", "inputs": inputs}


def _set_intrinsics(camera_link: list, **kw) -> dict:
    inputs = dict(camera=camera_link, mode="fov", fov_deg=60.0, fov_y_deg=0.0, fx=1000.0, fy=1000.0, cx=640.0,
                  cy=360.0, image_width=0, image_height=0, trust_intrinsics=False)
    inputs.update(kw)
    return {"class_type": "SanaWMSetIntrinsics", "inputs": inputs}


def _with_output(wf: dict) -> dict:
    """Camera Preview is not an output node (a prompt must not run for its preview alone): a preview that
    ends a test graph passes its camera on to core PreviewAny, the output node that makes it run."""
    used = {tuple(v) for n in wf.values() for v in n["inputs"].values() if isinstance(v, list)}
    for nid in [k for k, n in wf.items() if n["class_type"] == "SanaWMCameraPreview"]:
        if (nid, 1) not in used:
            wf[f"{nid}0"] = {"class_type": "PreviewAny", "inputs": {"source": [nid, 1]}}
    return wf


def _preview(camera_link: list, every_n: int = 8) -> dict:
    return {"class_type": "SanaWMCameraPreview", "inputs": {"camera": camera_link, "every_n": every_n}}


def _preview_png(comfy, result) -> np.ndarray:
    assert result.status == "success", result.error
    files = result.files("images")
    assert len(files) == 1 and files[0]["type"] == "temp"
    img = Image.open(io.BytesIO(comfy.view(**files[0])))
    assert img.format == "PNG" and img.size == (768, 384)
    arr = np.asarray(img.convert("RGB")).astype(int)
    drawn = (np.abs(arr - [24, 26, 30]).sum(-1) > 30).mean()
    assert 0.003 < drawn < 0.5, f"preview looks blank ({drawn:.4f} of pixels drawn)"
    return arr


def test_nodes_registered(comfy):
    """Tooltips on every input of every pack node: tests/test_foundation_server.py."""
    info = comfy.object_info()
    for name in NODES:
        assert name in info, f"{name} not registered"
        assert info[name]["category"].startswith("SANA-WM/")
    assert info["SanaWMCameraPreview"]["output_node"] is False   # a bad video branch is refused whole (HTTP 400)
    assert info["SanaWMCameraPreview"]["output"] == ["IMAGE", "SANAWM_CAMERA"]
    assert info["SanaWMCameraFromActions"]["output"] == ["SANAWM_CAMERA"]


def test_actions_intrinsics_preview_workflow(comfy, artifacts):
    wf = {"1": _actions(), "2": _set_intrinsics(["1", 0]), "3": _preview(["2", 0])}
    arr = _preview_png(comfy, comfy.run(_with_output(wf)))
    Image.fromarray(arr.astype(np.uint8)).save(artifacts / "camera_preview_node.png")
    # a different path gives a different drawing (the preview reflects the input)
    other = _preview_png(comfy, comfy.run(_with_output({"1": _actions("s-30,lw-30", mapping="game"),
                                                        "3": _preview(["1", 0])})))
    assert not np.array_equal(arr, other)


def test_load_camera_from_each_file_type(comfy, comfy_server):
    path = action_string_to_c2w("w-30,dw-20,aw-10", 0.05, 1.2)
    tag = uuid.uuid4().hex[:8]
    np.save(comfy_server.base / "input" / f"cam_{tag}.npy", path)
    src = comfy_server.base / f"cam_{tag}.json"
    src.write_text(json.dumps({"c2w": invert_rigid(path).tolist(), "intrinsics": [700, 700, 640, 360]}))
    json_name = comfy.upload_image(src, name=f"cam_{tag}.json")
    txt = comfy_server.base / f"cam_{tag}.txt"
    fx = 0.5 / math.tan(math.radians(30))   # normalised focal length of a 60 degree lens: the preview default
    rows = [[i, fx, fx, 0.5, 0.5, 0, 0, *m[:3].ravel()] for i, m in enumerate(invert_rigid(path))]
    lines = ["https://example.com/clip"] + [" ".join(repr(float(v)) for v in row) for row in rows]
    txt.write_text("\n".join(lines))
    txt_name = comfy.upload_image(txt, name=f"cam_{tag}.txt")
    listed = comfy.choices("SanaWMLoadCamera", "file")
    assert {f"cam_{tag}.npy", json_name, txt_name} <= set(listed)
    drawings = []
    for name, w2c in ((f"cam_{tag}.npy", False), (json_name, True), (txt_name, False)):
        wf = {"1": {"class_type": "SanaWMLoadCamera",
                    "inputs": {"file": name, "world_to_camera": w2c, "num_frames": 0, "fps": 16.0}},
              "2": _preview(["1", 0])}
        drawings.append(_preview_png(comfy, comfy.run(_with_output(wf))))
    # the same path from three formats draws the same picture
    assert np.array_equal(drawings[0], drawings[1]) and np.array_equal(drawings[0], drawings[2])


def test_bad_action_string_fails_validation_then_next_prompt_runs(comfy):
    with pytest.raises(ComfyError) as err:
        comfy.queue(_with_output({"1": _actions("w-30,x-5"), "2": _preview(["1", 0])}))
    text = json.dumps(err.value.details)
    assert "action segment 2 ('x-5'): unknown keys ['x']" in text
    with pytest.raises(ComfyError) as err:
        comfy.queue(_with_output({"1": _actions("w-0"), "2": _preview(["1", 0])}))
    assert "the frame count '0' must be a positive whole number" in json.dumps(err.value.details)
    assert comfy.run(_with_output({"1": _actions("w-9"), "2": _preview(["1", 0])})).status == "success"


def test_bad_action_through_a_link_fails_at_run_time_with_the_message(comfy):
    wf = {"0": {"class_type": "PrimitiveString", "inputs": {"value": "w-10,w3"}},
          "1": _actions(["0", 0]), "2": _preview(["1", 0])}
    res = comfy.run(_with_output(wf))
    assert res.status == "error"
    assert res.error["node_type"] == "SanaWMCameraFromActions"
    assert res.error["exception_type"].endswith("ValueError")
    assert "action segment 2 ('w3'): missing '-'" in res.error["exception_message"]
    wf["0"]["inputs"]["value"] = "w-10,d-3"
    assert comfy.run(_with_output(wf)).status == "success"


def test_bad_and_missing_files_fail_validation(comfy, comfy_server):
    bad = action_string_to_c2w("w-12")
    bad[5, :3, :3] *= 2.0
    name = f"bad_{uuid.uuid4().hex[:8]}.npy"
    np.save(comfy_server.base / "input" / name, bad)
    wf = {"1": {"class_type": "SanaWMLoadCamera",
                "inputs": {"file": name, "world_to_camera": False, "num_frames": 0, "fps": 16.0}},
          "2": _preview(["1", 0])}
    with pytest.raises(ComfyError) as err:
        comfy.queue(_with_output(wf))
    assert f"{name}: frame 5 is not a rigid camera pose" in json.dumps(err.value.details)
    wf["1"]["inputs"]["file"] = "../../etc/passwd.npy"
    with pytest.raises(ComfyError) as err:
        comfy.queue(_with_output(wf))
    assert "outside ComfyUI's input folder" in json.dumps(err.value.details)


def test_set_intrinsics_errors_are_reported(comfy):
    wf = {"1": _actions("w-9"), "2": _set_intrinsics(["1", 0], mode="pixels", image_width=1280, image_height=0),
          "3": _preview(["2", 0])}
    res = comfy.run(_with_output(wf))
    assert res.status == "error"
    assert "image_width and image_height must both be 0" in res.error["exception_message"]
    wf["2"]["inputs"]["image_height"] = 720
    assert comfy.run(_with_output(wf)).status == "success"
