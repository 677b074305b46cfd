"""Stage 2 through a real ComfyUI server on the tiny checkpoints: Stage-1 sampler -> refiner loader ->
refine -> decode/save (the sink's pixel frame is dropped: 17 frames -> 16), plus clear errors."""
from __future__ import annotations

import json
import time

import pytest

from sana_wm_core.video import probe_mp4
from stage1_graph import SAMPLER, VAE, stage1_graph, upload_first_frame

pytestmark = pytest.mark.server


def _workflow(image_name: str, *, refiner_path: str = "", refine_prompt: str = "", twice: bool = False,
              **stage1) -> dict:
    wf = stage1_graph(image_name, **({"steps": 2} | stage1))
    wf |= {
        "20": {"class_type": "SanaWMRefinerLoader", "inputs": {
            "repo": "SANA-WM_bidirectional", "dtype": "float32", "weight_format": "default", "offload_blocks": -1,
            "keep_loaded": False, "path_or_hub_id": refiner_path, "gemma3_folder": ""}},
        "21": {"class_type": "SanaWMRefine", "inputs": {
            "refiner": ["20", 0], "latent": [SAMPLER, 0], "prompt": refine_prompt, "seed": 42, "fps": 16.0}},
        "22": {"class_type": "SanaWMSaveVideo", "inputs": {
            "vae": [VAE, 0], "latent": ["21", 0], "filename_prefix": "SANA-WM/refined", "overlay": False,
            "fps": 0.0, "crf": 25}},
        "23": {"class_type": "SanaWMDecode", "inputs": {"vae": [VAE, 0], "latent": ["21", 0], "max_frames": 321}},
        "24": {"class_type": "PreviewImage", "inputs": {"images": ["23", 0]}},
    }
    if twice:
        wf["25"] = {"class_type": "SanaWMRefine", "inputs": {
            "refiner": ["20", 0], "latent": ["21", 0], "prompt": "again", "seed": 1, "fps": 16.0}}
        wf["22"]["inputs"]["latent"] = ["25", 0]
    return wf


@pytest.fixture(scope="module")
def image_name(comfy_server, tmp_path_factory):
    return upload_first_frame(comfy_server, tmp_path_factory.mktemp("img"), "sanawm_refiner_first_frame.png")


def test_refiner_nodes_registered(comfy):
    """Tooltips on every input of every pack node: tests/test_foundation_server.py."""
    info = comfy.object_info()
    for name in ("SanaWMRefinerLoader", "SanaWMRefine"):
        assert name in info, name
        assert info[name]["category"] == "SANA-WM/refine"
    # only folders that hold a refiner are offered (the diffusers layout has a Stage-1 transformer/ only)
    assert comfy.choices("SanaWMRefinerLoader", "repo") == ["SANA-WM_bidirectional", "SANA-WM_streaming"]
    assert info["SanaWMRefine"]["output"] == ["LATENT"]          # a core LATENT carrying the clip info forward
    for name in ("SanaWMRefine", "SanaWMDecode", "SanaWMSaveVideo"):     # a core LATENT (no SANAWM_LATENT)
        assert info[name]["input"]["required"]["latent"][0] == "LATENT", name


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
    res = comfy.run(_workflow(image_name, refiner_path="nonexistent_SANA-WM_refiner"), timeout=300)
    assert res.status == "error"
    msg = res.error["exception_message"]
    assert "Looked in" in msg and "nonexistent_SANA-WM_refiner" in msg and "huggingface-cli download" in msg


def test_refining_a_refined_latent_is_refused(comfy, image_name):
    res = comfy.run(_workflow(image_name, twice=True), timeout=300)
    assert res.status == "error" and "already refined" in res.error["exception_message"]


def test_interrupt_during_refinement_then_next_prompt_succeeds(comfy, comfy_server, image_name):
    """161 frames = 21 latent frames = 7 refiner chunks: Cancel after the first chunk stops the chunk loop
    (ComfyUI reports the refine node as interrupted, with chunks left), and the server runs the next prompt."""
    wf = _workflow(image_name, steps=1, num_frames=161, action="w-160", seed=11)
    chunks: list = []
    sent: list = []

    def on_event(ev: dict) -> None:
        data = ev.get("data", {})
        if ev.get("type") == "progress" and data.get("node") == "21":
            chunks.append((data["value"], data["max"]))
            if not sent:
                comfy.interrupt()
                sent.append(time.time())
        if ev.get("type") == "execution_interrupted":
            sent.append(time.time())

    res = comfy.run(wf, timeout=600, on_event=on_event)
    assert res.status == "interrupted", (res.status, res.error)
    stop = [e["data"] for e in res.events if e.get("type") == "execution_interrupted"][0]
    assert stop["node_id"] == "21" and stop["node_type"] == "SanaWMRefine"
    done, total = max(chunks)
    print(f"\nrefine: interrupt sent after chunk {chunks[0][0]} of {total}, last chunk reported {done}, "
          f"stopped {sent[-1] - sent[0]:.2f}s after the interrupt")
    assert total == 7 and done < total
    assert "Processing interrupted" in comfy_server.log()
    res = comfy.run(_workflow(image_name, seed=12), timeout=300)          # 17 frames, a new seed: really runs
    assert res.status == "success", res.error
    assert len(res.outputs["24"]["images"]) == 16
