"""The shipped workflows, defined once here in ComfyUI's API format.

`scripts/build_workflows.py` writes each as `workflows/<name>_api.json` (for batch queueing) and, through
the real ComfyUI frontend, as `workflows/<name>.json` (UI format, for drag and drop). Only this pack's
nodes and ComfyUI core nodes are used. The bidirectional graphs sample with core SamplerCustomAdvanced on the
SANA-WM MODEL; fast_preview (and the chunk-causal graph, which needs it) keep the pack's SANA-WM Sampler.
"""
from __future__ import annotations

PROMPT = ("A straight desert road at golden hour, long shadows, distant mountains, "
          "the camera drives forward and turns, cinematic, photorealistic.")
EXAMPLE_IMAGE = "example_input.png"
EXAMPLE_CAMERA = "example_camera.npy"
EXAMPLE_INTRINSICS = "example_intrinsics.npy"
SEED_README_ACTION = "w-80,jw-40,w-40,lw-60,w-100"


def _models(te_id: str = "11", vae_id: str = "12", model_id: str = "10") -> dict:
    return {
        model_id: {"class_type": "SanaWMModelLoader",
                   "inputs": {"model": "SANA-WM_bidirectional", "dtype": "auto", "offload": "none",
                              "path_or_hub_id": ""}},
        te_id: {"class_type": "SanaWMTextEncoderLoader",
                "inputs": {"text_encoder": "gemma-2-2b-it", "dtype": "auto", "after_encode": "offload",
                           "path_or_hub_id": ""}},
        vae_id: {"class_type": "SanaWMVAELoader",
                 "inputs": {"vae": "SANA-WM_bidirectional", "dtype": "auto", "tiling": "reference",
                            "path_or_hub_id": ""}},
    }


def _sampling(pack_sampler: bool) -> dict:
    """Node "21" samples (positive, negative, latent) of node "20": the pack's SANA-WM Sampler, or core
    SamplerCustomAdvanced with RandomNoise + CFGGuider + KSamplerSelect(euler) + SANA-WM Scheduler (the release
    schedule: the same latents as the pack's sampler, tests/test_native_model.py)."""
    if pack_sampler:
        return {"21": {"class_type": "SanaWMSampler",
                       "inputs": {"model": ["10", 0], "positive": ["20", 0], "negative": ["20", 1],
                                  "latent": ["20", 2], "seed": 42, "steps": 60, "cfg": 5.0,
                                  "sampler": "flow_euler_ltx", "flow_shift": 0.0}}}
    return {
        "21": {"class_type": "SamplerCustomAdvanced",
               "inputs": {"noise": ["22", 0], "guider": ["23", 0], "sampler": ["24", 0], "sigmas": ["25", 0],
                          "latent_image": ["20", 2]}},
        "22": {"class_type": "RandomNoise", "inputs": {"noise_seed": 42}},
        "23": {"class_type": "CFGGuider",
               "inputs": {"model": ["10", 0], "positive": ["20", 0], "negative": ["20", 1], "cfg": 5.0}},
        "24": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "25": {"class_type": "SanaWMScheduler", "inputs": {"model": ["10", 0], "steps": 60, "flow_shift": 0.0}},
    }


def _stage1(camera_ref: list, prefix: str, refine: bool, pack_sampler: bool = False) -> dict:
    wf = {
        "1": {"class_type": "LoadImage", "inputs": {"image": EXAMPLE_IMAGE}},
        **_models(),
        "20": {"class_type": "SanaWMImageToVideo",
               "inputs": {"image": ["1", 0], "camera": camera_ref, "text_encoder": ["11", 0], "vae": ["12", 0],
                          "prompt": PROMPT, "negative_prompt": "", "width": 1280, "height": 704,
                          "model": ["10", 0]}},
        **_sampling(pack_sampler),
        "40": {"class_type": "SanaWMSaveVideo",
               "inputs": {"vae": ["12", 0], "latent": ["21", 0], "filename_prefix": prefix, "overlay": True,
                          "fps": 0.0, "crf": 19, "camera": camera_ref}},
    }
    if refine:
        wf["30"] = {"class_type": "SanaWMRefinerLoader",
                    "inputs": {"repo": "SANA-WM_bidirectional", "dtype": "auto", "weight_format": "default",
                               "offload_blocks": -1, "keep_loaded": False, "path_or_hub_id": "",
                               "gemma3_folder": ""}}
        wf["31"] = {"class_type": "SanaWMRefine",
                    "inputs": {"refiner": ["30", 0], "latent": ["21", 0], "prompt": PROMPT, "seed": 42}}
        wf["40"]["inputs"]["latent"] = ["31", 0]
    return wf


def actions_workflow(refine: bool = True, num_frames: int = 321, prefix: str = "SANA-WM/actions",
                     pack_sampler: bool = False) -> dict:
    """Image + the seed README's action string; intrinsics estimated from the image (Pi3X, FOV fallback). The
    frame count and fps are set once, on the camera node; Image To Video derives them."""
    wf = _stage1(["4", 1], prefix, refine, pack_sampler)  # the camera passes through its preview
    wf["2"] = {"class_type": "SanaWMEstimateIntrinsics",
               "inputs": {"image": ["1", 0], "method": "pi3x", "fov_deg": 60.0, "fallback": True,
                          "pi3x_checkpoint": "yyfz233/Pi3X (download)", "exif_image": "none"}}
    wf["3"] = {"class_type": "SanaWMCameraFromActions",
               "inputs": {"action": SEED_README_ACTION, "translation_speed": 0.055, "rotation_speed_deg": 1.2,
                          "mapping": "classic", "num_frames": num_frames, "fps": 16.0,
                          "intrinsics": ["2", 0]}}
    wf["4"] = {"class_type": "SanaWMCameraPreview", "inputs": {"camera": ["3", 0], "every_n": 16}}
    return wf


def camera_file_workflow() -> dict:
    """Image + a (F,4,4) camera-to-world .npy + an intrinsics .npy, Stage 1 + refiner."""
    wf = _stage1(["4", 1], "SANA-WM/camera_file", refine=True)
    wf["2"] = {"class_type": "SanaWMLoadIntrinsics", "inputs": {"file": EXAMPLE_INTRINSICS}}
    wf["3"] = {"class_type": "SanaWMLoadCamera",
               "inputs": {"file": EXAMPLE_CAMERA, "world_to_camera": False, "num_frames": 321, "fps": 16.0,
                          "intrinsics": ["2", 0]}}
    wf["4"] = {"class_type": "SanaWMCameraPreview", "inputs": {"camera": ["3", 0], "every_n": 16}}
    return wf


def fast_preview_workflow() -> dict:
    """Stage 1 only at 161 frames: a quick look at the motion before a full run, on the pack's own SANA-WM
    Sampler (the one shipped workflow that uses it, besides the chunk-causal one)."""
    return actions_workflow(refine=False, num_frames=161, prefix="SANA-WM/fast_preview", pack_sampler=True)


def chunk_causal_workflow() -> dict:
    """The chunk-causal research checkpoint (SANA-WM_chunk_causal, sampler chunk_flow_euler) + the bidirectional
    refiner and VAE, on the actions graph: no frame depends on a later chunk."""
    wf = actions_workflow(refine=True, prefix="SANA-WM/chunk_causal", pack_sampler=True)
    wf["10"]["inputs"]["model"] = "SANA-WM_chunk_causal"
    wf["21"]["inputs"].update(sampler="chunk_flow_euler", chunk_interval_k=0.0)
    return wf


STREAMING_ACTION = "w-240,jw-120,w-120,lw-180,w-300"   # 960 moves: a 961-frame (60 s) path


def streaming_workflow(num_frames: int = 961) -> dict:
    """The distilled streaming release end to end, 60 s: SANA-WM Stream to Video writes the mp4 chunk by chunk
    (Stage 1 -> autoregressive refiner -> causal VAE), on the actions graph's camera and intrinsics."""
    wf = actions_workflow(refine=False, num_frames=num_frames, prefix="SANA-WM/streaming", pack_sampler=True)
    wf["3"]["inputs"]["action"] = STREAMING_ACTION
    wf["10"]["inputs"]["model"] = "SANA-WM_streaming"
    wf["12"]["inputs"]["vae"] = "SANA-WM_streaming"
    del wf["21"], wf["40"]
    wf["30"] = {"class_type": "SanaWMRefinerLoader",
                "inputs": {"repo": "SANA-WM_streaming", "dtype": "auto", "weight_format": "default",
                           "offload_blocks": -1, "keep_loaded": False, "path_or_hub_id": "", "gemma3_folder": ""}}
    wf["40"] = {"class_type": "SanaWMStreamToVideo",
                "inputs": {"model": ["10", 0], "positive": ["20", 0], "latent": ["20", 2], "vae": ["12", 0],
                           "seed": 42, "frames_per_block": 3, "cached_blocks": 2, "sink": True,
                           "filename_prefix": "SANA-WM/streaming", "crf": 19, "refiner": ["30", 0],
                           "refiner_prompt": "", "refiner_seed": 42}}   # empty = the Stage-1 prompt (the Note)
    return wf


WORKFLOWS = {
    "sana_wm_actions": actions_workflow,
    "sana_wm_camera_file": camera_file_workflow,
    "sana_wm_fast_preview": fast_preview_workflow,
    "sana_wm_chunk_causal": chunk_causal_workflow,
    "sana_wm_streaming": streaming_workflow,
}
DEFAULT = "sana_wm_actions"
TINY_STREAM_FRAMES = 49   # the tiny streaming graph's length: 7 latent frames = 2 streamed chunks
ASSETS = (EXAMPLE_IMAGE, EXAMPLE_CAMERA, EXAMPLE_INTRINSICS)


def tiny_overrides(wf: dict, *, height: int, width: int, frames: int, steps: int,
                   pi3x_checkpoint: str = "pi3x_tiny.safetensors") -> dict:
    """The same graph sized for the generated tiny checkpoints (CPU, seconds): fewer frames and steps."""
    import copy

    wf = copy.deepcopy(wf)
    if any(node["class_type"] == "SanaWMStreamToVideo" for node in wf.values()):
        frames = max(frames, TINY_STREAM_FRAMES)     # streaming makes 24k+1 frames: at least 2 chunks
    for node in wf.values():
        inp, kind = node["inputs"], node["class_type"]
        if kind == "SanaWMImageToVideo":
            inp.update(width=width, height=height)
        elif kind in ("SanaWMCameraFromActions", "SanaWMLoadCamera"):
            inp["num_frames"] = frames
        elif kind in ("SanaWMSampler", "SanaWMScheduler", "KSampler", "KSamplerAdvanced"):
            inp["steps"] = steps
        elif kind == "SanaWMRefinerLoader":
            inp["dtype"] = "fp32"
        elif kind in ("SanaWMTextEncoderLoader", "SanaWMVAELoader", "SanaWMModelLoader"):
            inp["dtype"] = "fp32" if kind == "SanaWMModelLoader" else "auto"
        elif kind == "SanaWMEstimateIntrinsics":
            inp["pi3x_checkpoint"] = pi3x_checkpoint
    return wf
