"""The loaders' precision widgets through a real ComfyUI server: the shared vocabulary, older saved values
still validating and meaning what they meant, and a clear validation error for an unknown value."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from scripts.comfy_api import ComfyError, combo_options
from stage1_graph import MODEL_LOADER, SAMPLER, stage1_graph, upload_first_frame, with_preview

pytestmark = pytest.mark.server
LOADERS = ("SanaWMModelLoader", "SanaWMTextEncoderLoader", "SanaWMVAELoader", "SanaWMRefinerLoader")


@pytest.fixture(scope="module")
def image_name(comfy_server, tmp_path_factory):
    return upload_first_frame(comfy_server, tmp_path_factory.mktemp("img"), "sanawm_precision_first_frame.png")


def _frames(comfy, res) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(comfy.view(f["filename"], f.get("subfolder", ""), f["type"]))))
            for f in res.outputs["12"]["images"]]


def test_every_loader_offers_the_same_dtype_choices(comfy):
    info = comfy.object_info()
    for name in LOADERS:
        spec = {**info[name]["input"]["required"], **info[name]["input"].get("optional", {})}
        assert combo_options(spec["dtype"]) == ["auto", "bf16", "fp16", "fp32"], name
        assert spec["dtype"][1]["default"] == "auto", name
    for name in ("SanaWMModelLoader", "SanaWMRefinerLoader"):
        spec = {**info[name]["input"]["required"], **info[name]["input"].get("optional", {})}
        assert combo_options(spec["weight_format"]) == ["default", "fp8_e4m3fn"], name


def test_older_dit_fp8_value_runs_exactly_like_the_new_pair(comfy, image_name):
    """A workflow saved with the DiT loader's former dtype "fp8_e4m3" (no weight_format widget) validates and
    computes the same frames as dtype bf16 + weight_format fp8_e4m3fn."""
    legacy = with_preview(stage1_graph(image_name, steps=2, seed=301, dtype="fp8_e4m3"))
    current = with_preview(stage1_graph(image_name, steps=2, seed=301, dtype="bf16"))
    current[MODEL_LOADER]["inputs"]["weight_format"] = "fp8_e4m3fn"
    a, b = comfy.run(legacy, timeout=300), comfy.run(current, timeout=300)
    assert a.status == "success" and b.status == "success", (a.error, b.error)
    fa, fb = _frames(comfy, a), _frames(comfy, b)
    assert len(fa) == 17 and all(np.array_equal(x, y) for x, y in zip(fa, fb))


def test_unknown_precision_values_fail_validation_naming_the_widget(comfy, image_name):
    wf = with_preview(stage1_graph(image_name, steps=2, dtype="bfloat17"))
    with pytest.raises(ComfyError) as err:
        comfy.queue(wf)
    assert "dtype 'bfloat17' is not one of auto, bf16, fp16, fp32" in json.dumps(err.value.details)
    wf = with_preview(stage1_graph(image_name, steps=2))
    wf["20"] = {"class_type": "SanaWMRefinerLoader", "inputs": {
        "repo": "SANA-WM_bidirectional", "dtype": "bfloat16", "weight_format": "int8", "offload_blocks": -1,
        "keep_loaded": False, "path_or_hub_id": "", "gemma3_folder": ""}}
    wf["21"] = {"class_type": "SanaWMRefine", "inputs": {
        "refiner": ["20", 0], "latent": [SAMPLER, 0], "prompt": "", "seed": 42, "fps": 16.0}}
    wf["11"]["inputs"]["latent"] = ["21", 0]
    with pytest.raises(ComfyError) as err:
        comfy.queue(wf)
    text = json.dumps(err.value.details)
    assert "weight_format 'int8' is not one of default, fp8_e4m3fn" in text
    assert "dtype 'bfloat16'" not in text                   # the older refiner value itself is accepted
