"""Stage 2 through a real ComfyUI server on the tiny checkpoints: Stage-1 sampler -> refiner loader ->
refine -> decode/save (the sink's pixel frame is dropped: 17 frames -> 16), plus clear errors."""
from __future__ import annotations

import json

import pytest

import test_sampling_support as tiny
from sana_wm_core.video import probe_mp4

pytestmark = pytest.mark.server


def _workflow(image_name: str, *, refiner_path: str = "", refine_prompt: str = "", twice: bool = False) -> dict:
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
            "model": "SANA-WM_bidirectional", "dtype": "auto", "offload": "none", "path_or_hub_id": ""}},
        "7": {"class_type": "SanaWMImageToVideo", "inputs": {
            "image": ["1", 0], "camera": ["3", 0], "text_encoder": ["4", 0], "vae": ["5", 0], "prompt": tiny.PROMPT,
            "negative_prompt": "", "num_frames": 17, "width": 128, "height": 96}},
        "8": {"class_type": "SanaWMSampler", "inputs": {
            "model": ["6", 0], "conditioning": ["7", 0], "seed": 0, "steps": 2, "cfg": 5.0,
            "sampler": "flow_euler_ltx"}},
        "20": {"class_type": "SanaWMRefinerLoader", "inputs": {
            "repo": "SANA-WM_bidirectional", "dtype": "float32", "weight_format": "default", "offload_blocks": -1,
            "keep_loaded": False, "path_or_hub_id": refiner_path, "gemma3_folder": ""}},
        "21": {"class_type": "SanaWMRefine", "inputs": {
            "refiner": ["20", 0], "latent": ["8", 0], "prompt": refine_prompt, "seed": 42, "fps": 16.0}},
        "22": {"class_type": "SanaWMSaveVideo", "inputs": {
            "vae": ["5", 0], "latent": ["21", 0], "filename_prefix": "SANA-WM/refined", "overlay": False,
            "fps": 0.0, "crf": 25}},
        "23": {"class_type": "SanaWMDecode", "inputs": {"vae": ["5", 0], "latent": ["21", 0], "max_frames": 321}},
        "24": {"class_type": "PreviewImage", "inputs": {"images": ["23", 0]}},
    }
    if twice:
        wf["25"] = {"class_type": "SanaWMRefine", "inputs": {
            "refiner": ["20", 0], "latent": ["21", 0], "prompt": "again", "seed": 1, "fps": 16.0}}
        wf["22"]["inputs"]["latent"] = ["25", 0]
    return wf


@pytest.fixture(scope="module")
def image_name(comfy_server, tmp_path_factory):
    from scripts.comfy_server import copy_into_input

    p = tmp_path_factory.mktemp("img") / "sanawm_refiner_first_frame.png"
    tiny.image().save(p)
    return copy_into_input(comfy_server.base, p)


def test_refiner_nodes_registered_with_tooltips(comfy):
    info = comfy.object_info()
    for name in ("SanaWMRefinerLoader", "SanaWMRefine"):
        assert name in info, name
        assert info[name]["category"] == "SANA-WM/refine"
        for section in ("required", "optional"):
            for inp, spec in info[name]["input"].get(section, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{name}.{inp} has no tooltip"
    assert "SANA-WM_bidirectional" in info["SanaWMRefinerLoader"]["input"]["required"]["repo"][0]
    assert info["SanaWMRefine"]["output"] == ["SANAWM_LATENT"]


def test_stage1_then_refiner_drops_the_sink_frame(comfy, comfy_server, image_name):
    res = comfy.run(_workflow(image_name), timeout=300)
    assert res.status == "success", res.error
    mp4s = sorted((comfy_server.base / "output" / "SANA-WM").glob("refined_*.mp4"))
    assert mp4s
    probe = probe_mp4(mp4s[-1])
    assert probe["frames"] == 16 and (probe["width"], probe["height"]) == (128, 96)   # 17 - sink frame
    doc = json.loads(mp4s[-1].with_suffix(".camera.json").read_text())
    assert doc["video"]["frames"] == 16
    assert len(res.outputs["24"]["images"]) == 16


def test_missing_refiner_folder_names_where_it_looked(comfy, image_name):
    res = comfy.run(_workflow(image_name, refiner_path="/nonexistent/SANA-WM_refiner"), timeout=300)
    assert res.status == "error"
    msg = res.error["exception_message"]
    assert "Looked in" in msg and "/nonexistent/SANA-WM_refiner" in msg and "huggingface-cli download" in msg


def test_refining_a_refined_latent_is_refused(comfy, image_name):
    res = comfy.run(_workflow(image_name, twice=True), timeout=300)
    assert res.status == "error" and "already refined" in res.error["exception_message"]
