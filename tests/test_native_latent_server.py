"""Decode, Save Video and Refine on core LATENTs in a real ComfyUI server (tiny checkpoints, 128x96, 17 frames).

- Refine returns a core LATENT carrying the clip info: Save Video and Decode read it directly and through a
  core node that copies the dict (LatentBatchSeedBehavior), and core Save Latent takes it.
- A Stage-1 latent loaded with core Load Latent has lost the clip info: Decode needs nothing, Save Video and
  Refine take fps / camera from their optional inputs, and say which inputs to set when neither is there.
- The prompt is typed once: Refine with an empty prompt encodes the Stage-1 prompt the latent carries (its
  result equals Refine given that prompt), a filled prompt overrides it.
"""
from __future__ import annotations

import json

import pytest
import torch

import test_pipeline_parity as parity
import test_sampling_support as tiny
from sana_wm_core.video import probe_mp4
from stage1_graph import SAMPLER, VAE, stage1_graph, upload_first_frame

pytestmark = pytest.mark.server

CAMERA = "3"
LOAD = "40"
REFINER = "20"
STAGE1_FILE = "sanawm_stage1_test.latent"


@pytest.fixture(scope="module")
def image_name(comfy_server, tmp_path_factory):
    return upload_first_frame(comfy_server, tmp_path_factory.mktemp("img"), "sanawm_native_latent_frame.png")


@pytest.fixture(scope="module")
def stage1_file(comfy_server, tiny_models) -> str:
    """A 17-frame Stage-1 latent of the tiny release, written as core Save Latent writes it (samples only)."""
    from safetensors.torch import save_file

    from sana_wm_core.sampling import sample_stage1
    from tiny_stage1 import tiny_release_stage1

    base = tiny_release_stage1(tiny_models)
    samples = sample_stage1(base.dit, base.cond, steps=2, guidance_scale=5.0, seed=3, flow_shift=base.shift)
    assert tuple(samples.shape[2:]) == (3, 3, 4)
    save_file({"latent_tensor": samples.float().contiguous(), "latent_format_version_0": torch.tensor([])},
              str(comfy_server.base / "input" / STAGE1_FILE))
    return STAGE1_FILE


def _loaded(stage1_file: str) -> dict:
    """Camera path (the one the file was made with), VAE, refiner loader and core Load Latent."""
    wf = stage1_graph("unused.png")
    graph = {k: wf[k] for k in ("2", CAMERA, VAE)}
    graph["2"]["inputs"]["action"] = parity.ACTION
    graph[REFINER] = _refiner_loader()
    graph[LOAD] = {"class_type": "LoadLatent", "inputs": {"latent": stage1_file}}
    return graph


def _refiner_loader() -> dict:
    return {"class_type": "SanaWMRefinerLoader", "inputs": {
        "repo": "SANA-WM_bidirectional", "dtype": "float32", "weight_format": "default", "offload_blocks": -1,
        "keep_loaded": False, "path_or_hub_id": "", "gemma3_folder": ""}}


def _save(latent: list, prefix: str, *, fps: float = 0.0, camera: list | None = None, overlay: bool = False) -> dict:
    inputs = {"vae": [VAE, 0], "latent": latent, "filename_prefix": prefix, "overlay": overlay, "fps": fps, "crf": 25}
    return {"class_type": "SanaWMSaveVideo", "inputs": inputs | ({"camera": camera} if camera else {})}


def _decode(latent: list) -> dict:
    return {"class_type": "SanaWMDecode", "inputs": {"vae": [VAE, 0], "latent": latent, "max_frames": 321}}


def _refine(latent: list, prompt: str, *, seed: int = 42, **optional) -> dict:
    return {"class_type": "SanaWMRefine", "inputs": {"refiner": [REFINER, 0], "latent": latent, "prompt": prompt,
                                                     "seed": seed, **optional}}


def _preview(images: list) -> dict:
    return {"class_type": "PreviewImage", "inputs": {"images": images}}


def _newest(comfy_server, pattern: str):
    found = sorted((comfy_server.base / "output").glob(pattern))
    assert found, pattern
    return found[-1]


def test_refined_core_latent_feeds_save_decode_and_core_latent_nodes(comfy, comfy_server, image_name):
    wf = stage1_graph(image_name, steps=2)
    wf |= {REFINER: _refiner_loader(), "21": _refine([SAMPLER, 0], ""),
           "22": {"class_type": "LatentBatchSeedBehavior", "inputs": {"samples": ["21", 0], "seed_behavior": "fixed"}},
           "23": _save(["22", 0], "native/refined_copy", overlay=True), "24": _decode(["21", 0]),
           "25": _preview(["24", 0]),
           "26": {"class_type": "SaveLatent", "inputs": {"samples": ["21", 0], "filename_prefix": "native/refined"}}}
    res = comfy.run(wf, timeout=300)
    assert res.status == "success", res.error
    mp4 = _newest(comfy_server, "native/refined_copy_*.mp4")
    probe = probe_mp4(mp4)
    assert probe["frames"] == 16 and probe["fps"] == 16.0        # the clip info survived the core node's copy
    doc = json.loads(mp4.with_suffix(".camera.json").read_text())
    assert doc["video"]["frames"] == 16 and len(doc["video"]["c2w"]) == 16 and doc["action"] == "w-8,jw-4,iw-4"
    assert doc["generation"]["prompt"] == tiny.PROMPT and doc["generation"]["stage"] == "refined"
    assert len(res.outputs["25"]["images"]) == 16
    assert _newest(comfy_server, "native/refined_*.latent").stat().st_size > 0


def test_loaded_stage1_latent_decodes_without_camera_or_fps(comfy, stage1_file):
    wf = _loaded(stage1_file) | {"11": _decode([LOAD, 0]), "12": _preview(["11", 0])}
    res = comfy.run(wf, timeout=300)
    assert res.status == "success", res.error
    assert len(res.outputs["12"]["images"]) == 17


def test_loaded_stage1_latent_saves_with_the_camera_or_an_fps(comfy, comfy_server, stage1_file):
    wf = _loaded(stage1_file) | {"13": _save([LOAD, 0], "native/loaded_cam", camera=[CAMERA, 0], overlay=True),
                                 "14": _save([LOAD, 0], "native/loaded_fps", fps=12.0)}
    res = comfy.run(wf, timeout=300)
    assert res.status == "success", res.error
    with_cam = _newest(comfy_server, "native/loaded_cam_*.mp4")
    assert probe_mp4(with_cam)["frames"] == 17 and probe_mp4(with_cam)["fps"] == 16.0    # the camera's fps
    doc = json.loads(with_cam.with_suffix(".camera.json").read_text())
    assert len(doc["video"]["c2w"]) == 17 and doc["action"] == parity.ACTION
    with_fps = _newest(comfy_server, "native/loaded_fps_*.mp4")
    assert probe_mp4(with_fps)["frames"] == 17 and probe_mp4(with_fps)["fps"] == 12.0
    assert "c2w" not in json.loads(with_fps.with_suffix(".camera.json").read_text())["video"]


def test_loaded_stage1_latent_without_camera_or_fps_is_refused_naming_them(comfy, comfy_server, stage1_file):
    before = set((comfy_server.base / "output").rglob("loaded_none*"))
    res = comfy.run(_loaded(stage1_file) | {"13": _save([LOAD, 0], "native/loaded_none")}, timeout=300)
    assert res.status == "error" and res.error["node_type"] == "SanaWMSaveVideo"
    msg = res.error["exception_message"]
    assert "no frame rate" in msg and "Load Latent" in msg and "'camera'" in msg and "'fps'" in msg
    assert set((comfy_server.base / "output").rglob("loaded_none*")) == before        # nothing written
    res = comfy.run(_loaded(stage1_file) | {"15": _refine([LOAD, 0], "a prompt"), "16": _save(["15", 0], "x")},
                    timeout=300)
    assert res.status == "error" and res.error["node_type"] == "SanaWMRefine"
    assert "no frame rate" in res.error["exception_message"] and "'camera'" in res.error["exception_message"]
    res = comfy.run(_loaded(stage1_file) | {"15": _refine([LOAD, 0], " ", camera=[CAMERA, 0]),
                                            "16": _save(["15", 0], "x")}, timeout=300)
    assert res.status == "error" and "prompt is empty" in res.error["exception_message"]
    assert "'prompt'" in res.error["exception_message"]


def test_loaded_stage1_latent_refines_with_the_camera_or_an_fps(comfy, comfy_server, stage1_file):
    """Refine's output carries the camera's clip info forward, so Save Video needs nothing more; an fps of
    16 given alone gives the same refined latent as the 16 fps camera."""
    wf = _loaded(stage1_file) | {
        "15": _refine([LOAD, 0], tiny.PROMPT, camera=[CAMERA, 0]), "16": _save(["15", 0], "native/loaded_refined"),
        "17": _refine([LOAD, 0], tiny.PROMPT, fps=16.0),
        "18": {"class_type": "SaveLatent", "inputs": {"samples": ["15", 0], "filename_prefix": "native/by_camera"}},
        "19": {"class_type": "SaveLatent", "inputs": {"samples": ["17", 0], "filename_prefix": "native/by_fps"}}}
    res = comfy.run(wf, timeout=300)
    assert res.status == "success", res.error
    mp4 = _newest(comfy_server, "native/loaded_refined_*.mp4")
    assert probe_mp4(mp4)["frames"] == 16 and probe_mp4(mp4)["fps"] == 16.0          # sink frame dropped
    assert len(json.loads(mp4.with_suffix(".camera.json").read_text())["video"]["c2w"]) == 16
    assert torch.equal(_latent(comfy_server, "native/by_camera_*.latent"), _latent(comfy_server, "native/by_fps_*.latent"))


def _latent(comfy_server, pattern: str) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(_newest(comfy_server, pattern)))["latent_tensor"]


def test_refiner_reuses_the_stage1_prompt_unless_its_own_is_filled(comfy, comfy_server, image_name):
    """Three refiners on one Stage-1 latent: empty prompt, the Stage-1 prompt typed again, another prompt.
    The encoded prompt is what conditions the refiner, so equal results mean the same prompt was encoded."""
    wf = stage1_graph(image_name, steps=2, seed=5)
    wf |= {REFINER: _refiner_loader()}
    for i, (prompt, name) in enumerate((("", "empty"), (tiny.PROMPT, "typed"), ("A snowy forest at dawn.", "other"))):
        wf[f"3{i}"] = _refine([SAMPLER, 0], prompt)
        wf[f"4{i}"] = {"class_type": "SaveLatent", "inputs": {"samples": [f"3{i}", 0],
                                                              "filename_prefix": f"native/prompt_{name}"}}
    res = comfy.run(wf, timeout=300)
    assert res.status == "success", res.error
    empty, typed, other = (_latent(comfy_server, f"native/prompt_{n}_*.latent") for n in ("empty", "typed", "other"))
    assert torch.equal(empty, typed)
    assert (empty - other).abs().max().item() > 0


def test_refined_latent_through_save_and_load_latent_writes_its_sink_frame(comfy, comfy_server, image_name):
    """Core Save Latent keeps only the samples, so the mark that the refined clip drops its sink frame is lost:
    Save Video then writes 17 frames where the refined clip had 16 (what the Save Video tooltip and the README
    say)."""
    import shutil

    wf = stage1_graph(image_name, steps=2)
    wf |= {REFINER: _refiner_loader(), "21": _refine([SAMPLER, 0], ""),
           "26": {"class_type": "SaveLatent", "inputs": {"samples": ["21", 0], "filename_prefix": "native/sink_kept"}}}
    res = comfy.run(wf, timeout=300)
    assert res.status == "success", res.error
    saved = _newest(comfy_server, "native/sink_kept_*.latent")
    shutil.copyfile(saved, comfy_server.base / "input" / "sanawm_refined_sink_kept.latent")
    graph = _loaded("sanawm_refined_sink_kept.latent")
    graph |= {"13": _save([LOAD, 0], "native/loaded_refined", camera=[CAMERA, 0])}
    res = comfy.run(graph, timeout=300)
    assert res.status == "success", res.error
    assert probe_mp4(_newest(comfy_server, "native/loaded_refined_*.mp4"))["frames"] == 17
