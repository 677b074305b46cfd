"""The Stage-1 nodes in a real ComfyUI server on the tiny checkpoints: loaders -> conditioning -> sampler ->
mp4 + camera JSON (+ ComfyUI's core SaveVideo taking our VIDEO output), clear errors, interrupt."""
from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from PIL import Image

import test_sampling_support as tiny
from sana_wm_core.video import probe_mp4
from stage1_graph import SAMPLER, VAE, stage1_graph, upload_first_frame, with_preview

pytestmark = pytest.mark.server


def _workflow(image_name: str, *, steps: int = 4, model_override: str = "", prompt: str = tiny.PROMPT,
              save: bool = True, **stage1) -> dict:
    wf = stage1_graph(image_name, steps=steps, model_override=model_override, prompt=prompt, **stage1)
    if save:
        wf["9"] = {"class_type": "SanaWMSaveVideo", "inputs": {
            "vae": [VAE, 0], "latent": [SAMPLER, 0], "filename_prefix": "SANA-WM/stage1", "overlay": True,
            "fps": 0.0, "crf": 25}}
        wf["10"] = {"class_type": "SaveVideo", "inputs": {
            "video": ["9", 0], "filename_prefix": "core/from_sanawm", "format": "auto", "codec": "auto"}}
        with_preview(wf)
    return wf


@pytest.fixture(scope="module")
def image_name(comfy_server, tmp_path_factory):
    return upload_first_frame(comfy_server, tmp_path_factory.mktemp("img"), "sanawm_first_frame.png")


def test_nodes_registered(comfy):
    """Tooltips on every input of every pack node: tests/test_foundation_server.py."""
    info = comfy.object_info()
    for name in ("SanaWMModelLoader", "SanaWMTextEncoderLoader", "SanaWMVAELoader", "SanaWMImageToVideo",
                 "SanaWMSampler", "SanaWMDecode", "SanaWMSaveVideo"):
        assert name in info, name
    assert "SANA-WM_bidirectional" in comfy.choices("SanaWMModelLoader", "model")


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
    res = comfy.run(_workflow(image_name, model_override="nonexistent_SANA-WM_bidirectional", save=False)
                    | {"13": {"class_type": "SanaWMSaveVideo", "inputs": {
                        "vae": ["5", 0], "latent": ["8", 0], "filename_prefix": "x", "overlay": False,
                        "fps": 0.0, "crf": 25}}}, timeout=120)
    assert res.status == "error"
    msg = res.error["exception_message"]
    assert "Looked in" in msg and "nonexistent_SANA-WM_bidirectional" in msg


def test_empty_prompt_is_refused(comfy, image_name):
    res = comfy.run(_workflow(image_name, prompt="   "), timeout=120)
    assert res.status == "error" and "prompt is empty" in res.error["exception_message"]


REQUESTED = "Requested to load SanaWMBaseModel"        # comfy.model_management.load_models_gpu's own line
RELEASED = "SANA-WM: Stage-1 DiT released to cpu by ComfyUI model management"


def _run_logged(comfy, comfy_server, wf: dict) -> tuple:
    mark = len(comfy_server.log())
    res = comfy.run(wf, timeout=300)
    assert res.status == "success", res.error
    return res, comfy_server.log()[mark:]


def test_model_management_loads_keeps_frees_and_reloads_the_dit(comfy, comfy_server, image_name):
    """ComfyUI 0.3.75 lists loaded models nowhere over HTTP (/system_stats has device totals only), so the
    server log is the observable: load_models_gpu logs 'Requested to load' only for a model it does not hold."""
    def graph(seed: int) -> dict:             # dtype fp32: a loader input no other test uses = a fresh DiT
        return with_preview(stage1_graph(image_name, steps=2, seed=seed, dtype="fp32"))

    _, log = _run_logged(comfy, comfy_server, graph(101))
    assert REQUESTED in log and "loaded completely" in log, log[-3000:]
    _, log = _run_logged(comfy, comfy_server, graph(102))
    assert REQUESTED not in log                              # kept loaded between prompts
    mark = len(comfy_server.log())
    comfy.post_json("/free", {"unload_models": True})
    deadline = time.time() + 30
    while RELEASED not in comfy_server.log()[mark:] and time.time() < deadline:
        time.sleep(0.2)
    assert RELEASED in comfy_server.log()[mark:], comfy_server.log()[mark:][-3000:]
    _, log = _run_logged(comfy, comfy_server, graph(103))
    assert REQUESTED in log                                  # freed by ComfyUI, placed again for this prompt


def test_block_offload_is_placed_by_model_management_with_the_same_result(comfy, comfy_server, image_name):
    runs = {}
    for offload in ("none", "block"):
        res, log = _run_logged(comfy, comfy_server, with_preview(stage1_graph(image_name, steps=2, seed=201,
                                                                              offload=offload)))
        runs[offload] = [np.asarray(Image.open(io.BytesIO(comfy.view(f["filename"], f.get("subfolder", ""),
                                                                      f["type"]))))
                         for f in res.outputs["12"]["images"]]      # pixels (the PNGs embed the prompt)
    assert "SANA-WM: block offload on cpu, 4 of 4 blocks resident" in log and REQUESTED in log
    assert len(runs["block"]) == 17 and all(np.array_equal(a, b) for a, b in zip(runs["block"], runs["none"]))


def test_interrupt_during_sampling_stops_within_a_step(comfy, comfy_server, image_name):
    """Cancel after the second step: ComfyUI reports the sampler as interrupted and at most one more step
    reports progress (the DiT checks the flag before every block), then the next prompt succeeds."""
    wf = with_preview(stage1_graph(image_name, steps=400, seed=7, num_frames=161, action="w-160"))
    steps: list = []
    acked: list = []

    def on_event(ev: dict) -> None:
        data = ev.get("data", {})
        if ev.get("type") == "progress" and data.get("node") == SAMPLER:
            steps.append((data["value"], time.time(), bool(acked)))
            if data["value"] >= 2 and not acked:
                comfy.interrupt()
                acked.append(time.time())
        if ev.get("type") == "execution_interrupted":
            acked.append(time.time())

    res = comfy.run(wf, timeout=300, on_event=on_event)
    assert res.status == "interrupted", (res.status, res.error)
    stop = [e["data"] for e in res.events if e.get("type") == "execution_interrupted"][0]
    assert stop["node_id"] == SAMPLER
    after = [v for v, _, late in steps if late]
    step_s = (steps[1][1] - steps[0][1]) if len(steps) > 1 else float("nan")
    print(f"\nsampling: one step ~{step_s:.3f}s, {len(after)} step(s) reported after the interrupt, stopped "
          f"{acked[-1] - acked[0]:.3f}s after it, at step {steps[-1][0]} of 400")
    assert len(after) <= 1 and steps[-1][0] < 400
    res = comfy.run(_workflow(image_name, steps=2, seed=8), timeout=300)
    assert res.status == "success", res.error
