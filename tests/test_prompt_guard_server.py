"""Bad values in a prompt are refused at POST /prompt with HTTP 400 naming the node and the input, on the
real server with the shipped fast-preview workflow (tiny weights): numbers given as lists, Infinity or NaN;
server paths in `path_or_hub_id`; bad camera files; and a video branch that fails validation while another
output would be valid (ComfyUI answers 200 + node_errors there: the client refuses it as a failure)."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from scripts.comfy_api import ComfyError
from workflows.definitions import ASSETS, fast_preview_workflow, tiny_overrides

pytestmark = pytest.mark.server
ASSET_DIR = Path(__file__).resolve().parents[1] / "workflows" / "assets"


@pytest.fixture(scope="module")
def base_wf(comfy_server) -> dict:
    from sana_wm_core.testing.tiny import TINY_HEIGHT, TINY_WIDTH

    for name in ASSETS:
        shutil.copyfile(ASSET_DIR / name, comfy_server.base / "input" / name)
    return tiny_overrides(fast_preview_workflow(), height=TINY_HEIGHT, width=TINY_WIDTH, frames=9, steps=1)


def _refused(comfy, wf: dict) -> ComfyError:
    with pytest.raises(ComfyError) as err:
        comfy.queue(wf)
    assert err.value.status == 400, err.value
    return err.value


def _with(wf: dict, node: str, **inputs) -> dict:
    wf = copy.deepcopy(wf)
    wf[node]["inputs"].update(inputs)
    return wf


@pytest.mark.parametrize("node,name,value,needle", [
    ("21", "steps", [1, 2, 3], "input 'steps' got the list [1, 2, 3]: give an INT value, or a link"),
    ("21", "steps", ["99", 0], "input 'steps' got the list ['99', 0]"),
    ("21", "cfg", float("inf"), "input 'cfg' must be a finite number between 0.0 and 30.0, got inf"),
    ("21", "cfg", float("nan"), "input 'cfg' must be a finite number between 0.0 and 30.0, got nan"),
    ("40", "fps", float("nan"), "input 'fps' must be a finite number between 0.0 and 240.0, got nan"),
    ("3", "translation_speed", float("-inf"), "input 'translation_speed' must be a finite number"),
    ("21", "seed", {"x": 1}, "input 'seed' must be a number between 0 and"),
    ("10", "path_or_hub_id", "/etc", "path_or_hub_id '/etc' is not allowed: give a hub id"),
    ("10", "path_or_hub_id", "../../../etc", "path_or_hub_id '../../../etc' is not allowed"),
])
def test_bad_numbers_and_paths_are_refused_naming_the_input(comfy, base_wf, node, name, value, needle):
    err = _refused(comfy, _with(base_wf, node, **{name: value}))
    assert needle in str(err), str(err)
    assert f"node {node} (" in str(err)
    entry = err.details["node_errors"][node]
    assert entry["errors"][0]["extra_info"]["input_name"] == name


def test_path_probing_learns_nothing(comfy, base_wf, comfy_server):
    answers = []
    for path in ("/etc", "/no/such/folder", str(comfy_server.base / "custom_nodes")):
        err = _refused(comfy, _with(base_wf, "10", path_or_hub_id=path))
        answers.append(str(err).replace(repr(path), "<path>"))
    assert len(set(answers)) == 1, answers
    inside = str(comfy_server.base / "models" / "sana_wm" / "SANA-WM_bidirectional")
    assert comfy.run(_with(base_wf, "10", path_or_hub_id=inside), timeout=300).status == "success"


def test_bad_camera_files_are_refused_at_post(comfy, base_wf, comfy_server):
    from sana_wm_core.camera import action_string_to_c2w

    inp = comfy_server.base / "input"
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 4, 4), }"
    header += " " * (118 - len(header)) + "\n"
    (inp / "guard_tb.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    c2w = action_string_to_c2w("w-8").tolist()
    (inp / "guard_nan_fps.json").write_text(json.dumps({"c2w": c2w, "fps": float("nan")}))
    (inp / "guard_fov0.json").write_text(json.dumps({"c2w": c2w, "intrinsics": {"fov_deg": 0}}))
    for name, needle in (("guard_tb.npy", "its header declares a (100000000000, 4, 4) float64 array"),
                         ("guard_nan_fps.json", "'fps' must be a finite number in (0, 240], got nan"),
                         ("guard_fov0.json", "fov_deg must be strictly between 0 and 180 degrees")):
        wf = copy.deepcopy(base_wf)
        wf["3"] = {"class_type": "SanaWMLoadCamera", "inputs": {
            "file": name, "world_to_camera": False, "num_frames": 0, "fps": 16.0, "intrinsics": ["2", 0]}}
        err = _refused(comfy, wf)
        assert "node 3 (SanaWMLoadCamera), input 'file'" in str(err) and needle in str(err), str(err)
    assert np.isfinite(comfy.object_info("SanaWMSampler")["SanaWMSampler"]["input"]["required"]["cfg"][1]["max"])


def test_a_bad_video_branch_refuses_the_whole_shipped_workflow(comfy, base_wf):
    """The shipped workflows hold no output node besides the video: a bad image is HTTP 400, not a
    'success' that ran the camera preview alone."""
    err = _refused(comfy, _with(base_wf, "1", image="no_such_image.png"))
    assert "node 1 (LoadImage), input 'image'" in str(err) and "no_such_image.png" in str(err)
    err = _refused(comfy, _with(base_wf, "3", action="w-8,q-4"))
    assert "node 3 (SanaWMCameraFromActions), input 'action'" in str(err) and "'q-4'" in str(err)


def test_node_errors_with_http_200_are_a_failure(comfy, base_wf):
    """A prompt with one valid output and one invalid branch: ComfyUI queues the valid part (HTTP 200 +
    node_errors); the client calls that a refused job, takes it off the queue (or stops it)."""
    wf = _with(base_wf, "21", sampler="no_such_sampler")
    wf["90"] = {"class_type": "PrimitiveString", "inputs": {"value": "still valid"}}
    wf["91"] = {"class_type": "PreviewAny", "inputs": {"source": ["90", 0]}}
    with pytest.raises(ComfyError) as err:
        comfy.queue(wf)
    assert err.value.status == 200 and "HTTP 200 with node_errors" in str(err.value)
    assert "node 21 (SanaWMSampler), input 'sampler'" in str(err.value) and "no_such_sampler" in str(err.value)
    with pytest.raises(ComfyError):                                   # run() reports it the same way
        comfy.run(wf, timeout=60)
    assert comfy.run(base_wf, timeout=300).status == "success"       # the server is healthy afterwards


def test_prompts_saved_with_the_previous_node_versions_are_refused_naming_what_changed(comfy, base_wf):
    """Before the Stage-1 model became a core MODEL, SANA-WM Sampler took one `conditioning` (the single output
    of SANA-WM Image To Video, which also had `num_frames`). Such a prompt is refused at POST, before anything
    loads, with one line per changed node that says what changed and what to do."""
    old = copy.deepcopy(base_wf)
    sampler = old["21"]["inputs"]
    for name in ("positive", "negative", "latent"):
        del sampler[name]
    sampler["conditioning"] = ["20", 0]
    old["20"]["inputs"]["num_frames"] = 9
    err = _refused(comfy, old)
    text = str(err)
    assert "node 21 (SanaWMSampler): SANA-WM Sampler changed" in text, text
    assert "its single 'conditioning' input (SANAWM_CONDITIONING) is gone" in text
    assert "'positive', 'negative' (CONDITIONING) and 'latent' (LATENT)" in text
    assert "node 20 (SanaWMImageToVideo): SANA-WM Image To Video changed: it has no 'num_frames'" in text
    assert "the frame count and fps come from the camera path" in text
    entry = err.details["node_errors"]
    assert entry["21"]["errors"][0]["type"] == "sana_wm_node_changed"
    assert err.details["error"]["type"] == "prompt_outputs_failed_validation"
    old_sampler_only = copy.deepcopy(old)
    del old_sampler_only["20"]["inputs"]["num_frames"]
    assert list(_refused(comfy, old_sampler_only).details["node_errors"]) == ["21"]
