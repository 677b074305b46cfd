"""The streaming release in a real ComfyUI server on the tiny bundle: the loader lists and loads
SANA-WM_streaming (its .pt converted once to safetensors), the sampler node runs self_forcing on it
(progress in steps of blocks) and refuses CFG or the bidirectional model before loading anything."""
from __future__ import annotations

import pytest

from sana_wm_core.testing import tiny_config as C
from stage1_graph import MODEL_LOADER, SAMPLER, stage1_graph, upload_first_frame, with_preview

pytestmark = pytest.mark.server
STREAM = "SANA-WM_streaming"


@pytest.fixture(scope="module")
def image_name(comfy_server, tmp_path_factory):
    return upload_first_frame(comfy_server, tmp_path_factory.mktemp("img"), "streaming_first_frame.png")


def _graph(image_name: str, model: str, **kw) -> dict:
    wf = with_preview(stage1_graph(image_name, num_frames=49, action="w-48", **kw))
    wf[MODEL_LOADER]["inputs"]["model"] = model
    wf[SAMPLER]["inputs"]["sampler"] = "self_forcing"
    return wf


def test_streaming_model_samples_block_by_block(comfy, image_name, tiny_models):
    assert STREAM in comfy.choices("SanaWMModelLoader", "model")
    assert "self_forcing" in comfy.choices("SanaWMSampler", "sampler")
    progress = []
    res = comfy.run(_graph(image_name, STREAM, cfg=1.0, seed=3), timeout=300,
                    on_event=lambda ev: progress.append((ev["data"]["value"], ev["data"]["max"]))
                    if ev.get("type") == "progress" and ev["data"].get("node") == SAMPLER else None)
    assert res.status == "success", res.error
    assert progress == [(i + 1, 8) for i in range(8)]          # 49 frames = 7 latents = blocks [0,4) [4,7) x 4
    assert len(res.outputs["12"]["images"]) == 49
    assert (tiny_models / C.STREAMING_REPO_DIR / "sana_dit" / "model.safetensors").is_file()


@pytest.mark.parametrize("model,cfg,fix", [
    (STREAM, 5.0, "set cfg to 1.0"),
    ("SANA-WM_bidirectional", 1.0, "load Efficient-Large-Model/SANA-WM_streaming"),
])
def test_bad_streaming_settings_are_refused_before_loading(comfy, comfy_server, image_name, model, cfg, fix):
    mark = len(comfy_server.log())
    res = comfy.run(_graph(image_name, model, cfg=cfg), timeout=300)
    assert res.status == "error" and res.error["node_id"] == SAMPLER
    assert fix in res.error["exception_message"]
    assert "Requested to load SanaWMBaseModel" not in comfy_server.log()[mark:]
