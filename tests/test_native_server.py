"""Core ComfyUI nodes on the SANA-WM MODEL through the real server (tiny weights, CPU, 128x96, 17 frames).

KSampler, KSamplerAdvanced, SamplerCustomAdvanced (RandomNoise + CFGGuider + KSamplerSelect + SANA-WM
Scheduler) and ModelSamplingSD3 -> KSampler each drive the loader's MODEL with SANA-WM Image To Video's
(positive, negative, latent) and end in an mp4 of the camera path's length. SamplerCustomAdvanced and
SamplerCustom with euler and the release sigmas give the pack's SANA-WM Sampler's latents (read back from core SaveLatent files). Core
SaveLatent / LoadLatent split Stage 1 from the refiner across two prompts: "run Stage 1, look, refine later".
"""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from sana_wm_core.testing import tiny_config as C
from sana_wm_core.video import probe_mp4
from stage1_graph import MODEL_LOADER, SAMPLER, VAE, stage1_graph, upload_first_frame

pytestmark = pytest.mark.server
I2V, CAMERA = "7", "3"
STEPS, SEED, CFG, FRAMES = 2, 5, 5.0, 17
LATENT_IN = {"positive": [I2V, 0], "negative": [I2V, 1], "latent_image": [I2V, 2]}


@pytest.fixture(scope="module")
def image_name(comfy_server, tmp_path_factory):
    return upload_first_frame(comfy_server, tmp_path_factory.mktemp("img"), "sanawm_native_first_frame.png")


def _core_sampling(kind: str) -> dict:
    """Node SAMPLER (and helpers "30".."35") sampling Image To Video's outputs with a core node."""
    model = [MODEL_LOADER, 0]
    if kind == "ModelSamplingSD3":
        return {"30": {"class_type": "ModelSamplingSD3", "inputs": {"model": model, "shift": 5.0}},
                SAMPLER: {"class_type": "KSampler", "inputs": {
                    "model": ["30", 0], "seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler",
                    "scheduler": "simple", "denoise": 1.0, **LATENT_IN}}}
    if kind == "KSampler":
        return {SAMPLER: {"class_type": "KSampler", "inputs": {
            "model": model, "seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1.0, **LATENT_IN}}}
    if kind == "KSamplerAdvanced":
        return {SAMPLER: {"class_type": "KSamplerAdvanced", "inputs": {
            "model": model, "add_noise": "enable", "noise_seed": SEED, "steps": STEPS, "cfg": CFG,
            "sampler_name": "dpmpp_2m", "scheduler": "beta", "start_at_step": 0, "end_at_step": 10000,
            "return_with_leftover_noise": "disable", **LATENT_IN}}}
    helpers = {
        "33": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "34": {"class_type": "SanaWMScheduler", "inputs": {"model": model, "steps": STEPS, "flow_shift": 0.0}},
    }
    if kind == "SamplerCustom":
        return {SAMPLER: {"class_type": "SamplerCustom", "inputs": {
            "model": model, "add_noise": True, "noise_seed": SEED, "cfg": CFG, "positive": [I2V, 0],
            "negative": [I2V, 1], "sampler": ["33", 0], "sigmas": ["34", 0], "latent_image": [I2V, 2]}}, **helpers}
    assert kind == "SamplerCustomAdvanced"
    return {
        SAMPLER: {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["31", 0], "guider": ["32", 0], "sampler": ["33", 0], "sigmas": ["34", 0],
            "latent_image": [I2V, 2]}},
        "31": {"class_type": "RandomNoise", "inputs": {"noise_seed": SEED}},
        "32": {"class_type": "CFGGuider", "inputs": {"model": model, "positive": [I2V, 0], "negative": [I2V, 1],
                                                     "cfg": CFG}},
        **helpers,
    }


def _graph(image_name: str, kind: str) -> dict:
    wf = stage1_graph(image_name, steps=STEPS, seed=SEED, cfg=CFG, num_frames=FRAMES)
    if kind != "SanaWMSampler":
        del wf[SAMPLER]
        wf |= _core_sampling(kind)
    return wf


def _save_video(prefix: str, latent: list, **extra) -> dict:
    return {"class_type": "SanaWMSaveVideo", "inputs": {
        "vae": [VAE, 0], "latent": latent, "filename_prefix": prefix, "overlay": False, "fps": 0.0, "crf": 25,
        **extra}}


def _newest(folder, pattern: str):
    found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
    assert found, (pattern, list(folder.rglob("*"))[:20])
    return found[-1]


def _saved_latent(comfy_server, res, node: str) -> torch.Tensor:
    entry = res.outputs[node]["latents"][0]
    path = comfy_server.base / "output" / entry.get("subfolder", "") / entry["filename"]
    return load_file(str(path))["latent_tensor"]


def _shift_variants() -> dict:
    """Beside ModelSamplingSD3(5.0) -> KSampler: the same KSampler on ModelSamplingSD3 at the release's own shift
    ("36") and on the plain MODEL ("37"), each saved ("43", "44")."""
    base = _core_sampling("ModelSamplingSD3")[SAMPLER]
    out = {"35": {"class_type": "ModelSamplingSD3", "inputs": {"model": [MODEL_LOADER, 0],
                                                                "shift": float(C.TINY_FLOW_SHIFT)}}}
    for node, model, save in (("36", ["35", 0], "43"), ("37", [MODEL_LOADER, 0], "44")):
        out[node] = {"class_type": "KSampler", "inputs": {**base["inputs"], "model": model}}
        out[save] = {"class_type": "SaveLatent", "inputs": {"samples": [node, 0], "filename_prefix": f"shift_{node}"}}
    return out


@pytest.mark.parametrize("kind", ["KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced", "ModelSamplingSD3"])
def test_core_sampler_nodes_drive_the_sanawm_model_to_a_video_of_the_path_length(comfy, comfy_server,
                                                                                 image_name, kind):
    """Each core sampler path ends in an mp4 of the path's length and keeps the image-pinned first latent frame
    (SaveLatent of its output vs of Image To Video's latent). ModelSamplingSD3 changes the result: at shift 5.0
    KSampler's latent differs from the same KSampler on the plain MODEL, at the release's own shift it equals it."""
    wf = _graph(image_name, kind)
    wf[I2V]["inputs"]["negative_prompt"] = f"blurry, {kind}"   # Image To Video runs (and reports) every time
    wf["40"] = _save_video(f"SANA-WM/core_{kind}", [SAMPLER, 0])
    wf["41"] = {"class_type": "SaveLatent", "inputs": {"samples": [SAMPLER, 0], "filename_prefix": f"core_{kind}"}}
    wf["42"] = {"class_type": "SaveLatent", "inputs": {"samples": [I2V, 2], "filename_prefix": f"core_in_{kind}"}}
    if kind == "ModelSamplingSD3":
        wf |= _shift_variants()
    res = comfy.run(wf, timeout=300)
    assert res.status == "success", res.error
    out, start = _saved_latent(comfy_server, res, "41"), _saved_latent(comfy_server, res, "42")
    image = start[:, :, :1]
    err = float((out[:, :, :1] - image).abs().max() / image.abs().max())
    assert out.shape == start.shape and err < 1e-6, (kind, err)           # the pinned frame is the image latent
    assert not torch.equal(out[:, :, 1:], start[:, :, 1:]), kind
    if kind == "ModelSamplingSD3":
        same_shift, plain = _saved_latent(comfy_server, res, "43"), _saved_latent(comfy_server, res, "44")
        moved = float((out - plain).abs().max() / plain.abs().max())
        print(f"\nserver: KSampler after ModelSamplingSD3(5.0) vs on the plain MODEL: max rel diff {moved:.2e}")
        assert moved > 1e-3 and torch.equal(same_shift, plain), moved
    p = probe_mp4(_newest(comfy_server.base / "output" / "SANA-WM", f"core_{kind}_*.mp4"))
    assert p["frames"] == FRAMES and p["fps"] == 16.0 and (p["width"], p["height"]) == (128, 96), p
    steps = [e["data"]["value"] for e in res.events
             if e.get("type") == "progress" and e.get("data", {}).get("node") == SAMPLER]
    assert steps and steps[-1] == STEPS, steps
    text = res.outputs[I2V]["text"][0]                       # the derived count, shown on Image To Video
    assert text.startswith(f"{FRAMES} frames at 16 fps") and "snapped" not in text and "using" not in text


def _preview_pictures(res, node: str) -> list:
    """The binary websocket previews sent while `node` ran, as RGB arrays; each must be a JPEG preview frame."""
    pictures = []
    for frame in res.previews.get(node, []):
        kind, fmt = int.from_bytes(frame[:4], "big"), int.from_bytes(frame[4:8], "big")
        assert (kind, fmt) == (1, 1), (kind, fmt)                     # PREVIEW_IMAGE, JPEG
        pictures.append(np.asarray(Image.open(io.BytesIO(frame[8:])).convert("RGB"), dtype=np.float32))
    return pictures


def test_core_samplers_send_the_pack_samplers_latent_previews_over_the_websocket(comfy, image_name):
    """`--preview-method auto` (as `make serve`): KSampler and SamplerCustomAdvanced send one JPEG per step,
    drawn with the clip's fitted map like SANA-WM Sampler's: same size, the same first (image-pinned) frame
    tile, and with euler on the release sigmas the same last picture (both show the final latent)."""
    shown = {}
    for kind in ("SanaWMSampler", "KSampler", "SamplerCustomAdvanced"):
        wf = _graph(image_name, kind)
        wf[I2V]["inputs"]["negative_prompt"] = f"blurry, previews {kind}"     # no cached sampler output
        wf["41"] = {"class_type": "SaveLatent", "inputs": {"samples": [SAMPLER, 0],
                                                            "filename_prefix": f"previews_{kind}"}}
        res = comfy.run(wf, timeout=300)
        assert res.status == "success", res.error
        shown[kind] = _preview_pictures(res, SAMPLER)
        assert len(shown[kind]) == STEPS, (kind, {k: len(v) for k, v in res.previews.items()})
    ours = shown["SanaWMSampler"][-1]
    tile = ours.shape[1] // 3                                      # 17 frames = 3 latent frames side by side
    for kind in ("KSampler", "SamplerCustomAdvanced"):
        core = shown[kind][-1]
        assert core.shape == ours.shape, (kind, core.shape, ours.shape)
        first = float(np.abs(core[:, :tile] - ours[:, :tile]).mean())
        print(f"\nserver: {kind} preview {core.shape}, first tile vs SANA-WM Sampler {first:.2f}, std {core.std():.1f}")
        assert first < 3.0, (kind, first)                          # JPEG noise only
        assert core.std() > 1.0, kind                              # a picture, not the flat no-map grey
    last = float(np.abs(shown["SamplerCustomAdvanced"][-1] - ours).mean())
    print(f"server: SamplerCustomAdvanced last preview vs SANA-WM Sampler's: mean abs diff {last:.2f}")
    assert last < 3.0, last


def test_sampler_custom_advanced_with_the_scheduler_equals_the_pack_sampler_through_save_latent(
        comfy, comfy_server, image_name):
    latents = {}
    for kind in ("SanaWMSampler", "SamplerCustomAdvanced", "SamplerCustom"):
        wf = _graph(image_name, kind)
        wf["41"] = {"class_type": "SaveLatent", "inputs": {"samples": [SAMPLER, 0],
                                                            "filename_prefix": f"native_exact_{kind}"}}
        res = comfy.run(wf, timeout=300)
        assert res.status == "success", res.error
        latents[kind] = _saved_latent(comfy_server, res, "41")
    ours = latents["SanaWMSampler"]
    for kind in ("SamplerCustomAdvanced", "SamplerCustom"):
        core = latents[kind]
        assert ours.shape == core.shape and ours.shape[2] == 3          # 17 frames = 3 latent frames
        rel = float((core - ours).abs().max() / ours.abs().max())
        print(f"\nserver: {kind}(euler, SANA-WM Scheduler) vs SANA-WM Sampler: max rel diff {rel:.2e}")
        assert rel < 1e-5, kind


def test_snapped_frame_count_is_shown_on_image_to_video(comfy, image_name):
    wf = _graph(image_name, "SanaWMSampler")
    wf["2"]["inputs"]["num_frames"] = 0
    wf["2"]["inputs"]["action"] = "w-20"                     # 21 poses: not 8k+1, 17 are used
    wf["40"] = _save_video("SANA-WM/snapped", [SAMPLER, 0])
    res = comfy.run(wf, timeout=300)
    assert res.status == "success", res.error
    text = res.outputs[I2V]["text"][0]
    assert text.startswith("17 frames at 16 fps") and "the camera path has 21 poses" in text and "using 17" in text


def test_stage1_then_save_latent_then_load_latent_and_refine_in_a_second_prompt(comfy, comfy_server,
                                                                                 image_name):
    """Prompt 1 ends at core SaveLatent; prompt 2 starts from core LoadLatent, which keeps only the samples: the
    refiner takes the camera (fps) and the prompt from its own inputs, Save Video the camera."""
    wf = _graph(image_name, "SamplerCustomAdvanced")
    wf["41"] = {"class_type": "SaveLatent", "inputs": {"samples": [SAMPLER, 0], "filename_prefix": "stage1_look"}}
    res = comfy.run(wf, timeout=300)
    assert res.status == "success", res.error
    entry = res.outputs["41"]["latents"][0]
    saved = comfy_server.base / "output" / entry.get("subfolder", "") / entry["filename"]
    shutil.copyfile(saved, comfy_server.base / "input" / "stage1_look.latent")

    later = {k: v for k, v in stage1_graph(image_name, num_frames=FRAMES).items() if k in ("1", "2", CAMERA, VAE)}
    later |= {
        "50": {"class_type": "LoadLatent", "inputs": {"latent": "stage1_look.latent"}},
        "51": {"class_type": "SanaWMRefinerLoader", "inputs": {
            "repo": "SANA-WM_bidirectional", "dtype": "float32", "weight_format": "default", "offload_blocks": -1,
            "keep_loaded": False, "path_or_hub_id": "", "gemma3_folder": ""}},
        "52": {"class_type": "SanaWMRefine", "inputs": {
            "refiner": ["51", 0], "latent": ["50", 0], "prompt": "a desert road, refined", "seed": 42,
            "camera": [CAMERA, 0]}},
        "53": _save_video("SANA-WM/refined_later", ["52", 0], camera=[CAMERA, 0]),
    }
    res = comfy.run(later, timeout=300)
    assert res.status == "success", res.error
    p = probe_mp4(_newest(comfy_server.base / "output" / "SANA-WM", "refined_later_*.mp4"))
    assert p["frames"] == FRAMES - 1 and p["fps"] == 16.0 and (p["width"], p["height"]) == (128, 96), p
