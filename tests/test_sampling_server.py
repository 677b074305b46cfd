"""The Stage-1 nodes in a real ComfyUI server on the tiny checkpoints: loaders -> conditioning -> sampler ->
mp4 + camera JSON (+ ComfyUI's core SaveVideo taking our VIDEO output), clear errors, interrupt."""
from __future__ import annotations

import json
import threading
import time

import pytest

import test_sampling_support as tiny
from sana_wm_core.video import probe_mp4

pytestmark = pytest.mark.server


def _workflow(image_name: str, *, steps: int = 4, model_override: str = "", prompt: str = tiny.PROMPT,
              save: bool = True) -> dict:
    wf = {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "2": {"class_type": "SanaWMCameraFromActions", "inputs": {
            "action": "w-8,jw-4,iw-4", "translation_speed": 0.05, "rotation_speed_deg": 1.2,
            "mapping": "classic", "num_frames": 0, "fps": 16.0}},
        "3": {"class_type": "SanaWMSetIntrinsics", "inputs": {
            "camera": ["2", 0], "mode": "pixels", "fov_deg": 60.0, "fov_y_deg": 0.0, "fx": 150.0, "fy": 150.0,
            "cx": 100.0, "cy": 60.0, "image_width": 0, "image_height": 0, "trust_intrinsics": False}},
        "4": {"class_type": "SanaWMTextEncoderLoader", "inputs": {
            "text_encoder": "gemma-2-2b-it", "dtype": "auto", "after_encode": "offload"}},
        "5": {"class_type": "SanaWMVAELoader", "inputs": {
            "vae": "SANA-WM_bidirectional", "dtype": "auto", "tiling": "reference"}},
        "6": {"class_type": "SanaWMModelLoader", "inputs": {
            "model": "SANA-WM_bidirectional", "dtype": "auto", "offload": "none",
            "path_or_hub_id": model_override}},
        "7": {"class_type": "SanaWMImageToVideo", "inputs": {
            "image": ["1", 0], "camera": ["3", 0], "text_encoder": ["4", 0], "vae": ["5", 0], "prompt": prompt,
            "negative_prompt": "", "num_frames": 17, "width": 128, "height": 96}},
        "8": {"class_type": "SanaWMSampler", "inputs": {
            "model": ["6", 0], "conditioning": ["7", 0], "seed": 0, "steps": steps, "cfg": 5.0,
            "sampler": "flow_euler_ltx"}},
    }
    if save:
        wf["9"] = {"class_type": "SanaWMSaveVideo", "inputs": {
            "vae": ["5", 0], "latent": ["8", 0], "filename_prefix": "SANA-WM/stage1", "overlay": True,
            "fps": 0.0, "crf": 25}}
        wf["10"] = {"class_type": "SaveVideo", "inputs": {
            "video": ["9", 0], "filename_prefix": "core/from_sanawm", "format": "auto", "codec": "auto"}}
        wf["11"] = {"class_type": "SanaWMDecode", "inputs": {"vae": ["5", 0], "latent": ["8", 0], "max_frames": 321}}
        wf["12"] = {"class_type": "PreviewImage", "inputs": {"images": ["11", 0]}}
    return wf


@pytest.fixture(scope="module")
def image_name(comfy_server, tmp_path_factory):
    from scripts.comfy_server import copy_into_input

    p = tmp_path_factory.mktemp("img") / "sanawm_first_frame.png"
    tiny.image().save(p)
    return copy_into_input(comfy_server.base, p)


def test_nodes_registered_with_tooltips(comfy):
    info = comfy.object_info()
    for name in ("SanaWMModelLoader", "SanaWMTextEncoderLoader", "SanaWMVAELoader", "SanaWMImageToVideo",
                 "SanaWMSampler", "SanaWMDecode", "SanaWMSaveVideo"):
        assert name in info, name
        for section in ("required", "optional"):
            for inp, spec in info[name]["input"].get(section, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{name}.{inp} has no tooltip"
    assert "SANA-WM_bidirectional" in info["SanaWMModelLoader"]["input"]["required"]["model"][0]


def test_stage1_workflow_writes_mp4_json_and_video(comfy, comfy_server, image_name):
    t0 = time.time()
    res = comfy.run(_workflow(image_name), timeout=300)
    assert res.status == "success", res.error
    print(f"\nstage-1 workflow on tiny weights: {time.time() - t0:.1f}s")
    out = comfy_server.base / "output"
    mp4s = sorted((out / "SANA-WM").glob("stage1_*.mp4"))
    assert mp4s, list(out.rglob("*"))
    p = probe_mp4(mp4s[-1])
    assert p["codec"] == "h264" and p["frames"] == 17 and p["fps"] == 16.0 and (p["width"], p["height"]) == (128, 96)
    doc = json.loads(mp4s[-1].with_suffix(".camera.json").read_text())
    assert doc["video"]["frames"] == 17 and doc["action"] == "w-8,jw-4,iw-4"
    assert doc["generation"]["seed"] == 0 and doc["generation"]["steps"] == 4
    videos = [f for f in res.files() if f["filename"].endswith(".mp4")]
    assert any(f["filename"] == mp4s[-1].name for f in videos)
    assert list((out / "core").glob("from_sanawm*"))          # ComfyUI's SaveVideo took our VIDEO output
    previews = res.outputs["12"]["images"]
    assert len(previews) == 17                                  # SanaWMDecode -> 17 IMAGE frames


def test_missing_model_folder_names_where_it_looked(comfy, image_name):
    res = comfy.run(_workflow(image_name, model_override="/nonexistent/SANA-WM_bidirectional", save=False)
                    | {"13": {"class_type": "SanaWMSaveVideo", "inputs": {
                        "vae": ["5", 0], "latent": ["8", 0], "filename_prefix": "x", "overlay": False,
                        "fps": 0.0, "crf": 25}}}, timeout=120)
    assert res.status == "error"
    msg = res.error["exception_message"]
    assert "Looked in" in msg and "/nonexistent/SANA-WM_bidirectional" in msg


def test_empty_prompt_is_refused(comfy, image_name):
    res = comfy.run(_workflow(image_name, prompt="   "), timeout=120)
    assert res.status == "error" and "prompt is empty" in res.error["exception_message"]


def test_interrupt_then_next_prompt_succeeds(comfy, image_name):
    wf = _workflow(image_name, steps=400)
    wf["8"]["inputs"]["seed"] = 7                              # not cached: really samples
    timer = threading.Timer(4.0, comfy.interrupt)
    timer.start()
    try:
        res = comfy.run(wf, timeout=300)
    finally:
        timer.cancel()
    assert res.status == "interrupted", (res.status, res.error)
    wf = _workflow(image_name, steps=2)
    wf["8"]["inputs"]["seed"] = 8
    assert comfy.run(wf, timeout=300).status == "success"
