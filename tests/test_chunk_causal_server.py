"""The chunk-causal release in a real ComfyUI server on the tiny checkpoints: the loader lists it, the sampler
node runs chunk_flow_euler on it (progress in global steps), refuses the wrong sampler for either variant with
the fix in the message, and stops within one step when cancelled."""
from __future__ import annotations

import time

import pytest

from sana_wm_core.sampling import chunk_schedule
from sana_wm_core.testing import tiny_config as C
from stage1_graph import MODEL_LOADER, SAMPLER, stage1_graph, upload_first_frame, with_preview

pytestmark = pytest.mark.server
CHUNK = "SANA-WM_chunk_causal"


@pytest.fixture(scope="module")
def image_name(comfy_server, tmp_path_factory):
    return upload_first_frame(comfy_server, tmp_path_factory.mktemp("img"), "chunk_causal_first_frame.png")


def _graph(image_name: str, model: str, sampler: str, **kw) -> dict:
    wf = with_preview(stage1_graph(image_name, **kw))
    wf[MODEL_LOADER]["inputs"]["model"] = model
    wf[SAMPLER]["inputs"]["sampler"] = sampler
    return wf


def test_loader_and_sampler_offer_the_chunk_causal_variant(comfy):
    info = comfy.object_info()
    loader = info["SanaWMModelLoader"]
    assert CHUNK in comfy.choices("SanaWMModelLoader", "model")
    # present on disk here, so no "(download from ...)" entry stands for it
    assert not any(c.startswith(CHUNK + " (download from") for c in comfy.choices("SanaWMModelLoader", "model"))
    assert "research checkpoint that may show artifacts" in loader["description"]
    sampler = info["SanaWMSampler"]["input"]
    assert "chunk_flow_euler" in comfy.choices("SanaWMSampler", "sampler")
    assert "chunk_interval_k" in sampler["optional"]


def test_chunk_causal_model_samples_in_global_steps(comfy, image_name):
    steps = 3
    progress = []
    res = comfy.run(_graph(image_name, CHUNK, "chunk_flow_euler", steps=steps, seed=3), timeout=300,
                    on_event=lambda ev: progress.append((ev["data"]["value"], ev["data"]["max"]))
                    if ev.get("type") == "progress" and ev["data"].get("node") == SAMPLER else None)
    assert res.status == "success", res.error
    total = chunk_schedule(3, C.TINY_CHUNK_SIZE, steps, C.TINY_FLOW_SHIFT).total_steps   # 17 frames = 3 latents
    assert total > steps
    assert progress == [(g + 1, total) for g in range(total)]
    assert len(res.outputs["12"]["images"]) == 17


@pytest.mark.parametrize("model,sampler,fix", [
    ("SANA-WM_bidirectional", "chunk_flow_euler", "load Efficient-Large-Model/SANA-WM_chunk_causal"),
    (CHUNK, "flow_euler_ltx", "set sampler to chunk_flow_euler"),
    (CHUNK, "flow_euler", "set sampler to chunk_flow_euler"),
])
def test_wrong_sampler_for_the_variant_is_refused(comfy, comfy_server, image_name, model, sampler, fix):
    mark = len(comfy_server.log())
    res = comfy.run(_graph(image_name, model, sampler, steps=2), timeout=300)
    assert res.status == "error" and res.error["node_id"] == SAMPLER
    assert fix in res.error["exception_message"]
    assert "Requested to load SanaWMBaseModel" not in comfy_server.log()[mark:]   # refused before loading


def test_interrupt_stops_chunk_sampling_within_a_step(comfy, image_name):
    wf = _graph(image_name, CHUNK, "chunk_flow_euler", steps=300, seed=7, num_frames=161, action="w-160")
    steps: list = []
    acked: list = []

    def on_event(ev: dict) -> None:
        data = ev.get("data", {})
        if ev.get("type") == "progress" and data.get("node") == SAMPLER:
            steps.append((data["value"], bool(acked)))
            if data["value"] >= 2 and not acked:
                comfy.interrupt()
                acked.append(time.time())

    res = comfy.run(wf, timeout=300, on_event=on_event)
    assert res.status == "interrupted", (res.status, res.error)
    assert [e["data"] for e in res.events if e.get("type") == "execution_interrupted"][0]["node_id"] == SAMPLER
    assert len([v for v, late in steps if late]) <= 1 and steps[-1][0] < 300
