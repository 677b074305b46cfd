"""The Stage-1 API graph the server tests share (a helper module: it holds no tests).

Nodes "1".."8": LoadImage -> camera from actions -> intrinsics; Gemma-2, LTX-2 VAE and DiT loaders;
image-to-video (positive, negative, LATENT; the frame count is the camera node's num_frames); the Stage-1
sampler (node "8", output 0 is the core LATENT). Tests add
their own output / refine nodes on top. Everything runs on the tiny checkpoints at 128x96.
"""
from __future__ import annotations

from pathlib import Path

import test_sampling_support as tiny

SAMPLER = "8"
VAE = "5"
MODEL_LOADER = "6"


def stage1_graph(image_name: str, *, steps: int = 4, seed: int = 0, cfg: float = 5.0, num_frames: int = 17,
                 action: str = "w-8,jw-4,iw-4", prompt: str = tiny.PROMPT, offload: str = "none",
                 dtype: str = "auto", model_override: str = "") -> dict:
    """A fresh API-format dict (callers may edit it). The camera keeps `num_frames` poses (0 = the whole path);
    `action` bounds the frame count: 'w-160' allows 161."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "2": {"class_type": "SanaWMCameraFromActions", "inputs": {
            "action": action, "translation_speed": 0.05, "rotation_speed_deg": 1.2,
            "mapping": "classic", "num_frames": num_frames, "fps": 16.0}},
        "3": {"class_type": "SanaWMSetIntrinsics", "inputs": {
            "camera": ["2", 0], "mode": "pixels", "fov_deg": 60.0, "fov_y_deg": 0.0, "fx": 150.0, "fy": 150.0,
            "cx": 100.0, "cy": 60.0, "image_width": 0, "image_height": 0, "trust_intrinsics": False}},
        "4": {"class_type": "SanaWMTextEncoderLoader", "inputs": {
            "text_encoder": "gemma-2-2b-it", "dtype": "auto", "after_encode": "offload"}},
        VAE: {"class_type": "SanaWMVAELoader", "inputs": {
            "vae": "SANA-WM_bidirectional", "dtype": "auto", "tiling": "reference"}},
        MODEL_LOADER: {"class_type": "SanaWMModelLoader", "inputs": {
            "model": "SANA-WM_bidirectional", "dtype": dtype, "offload": offload,
            "path_or_hub_id": model_override}},
        "7": {"class_type": "SanaWMImageToVideo", "inputs": {
            "image": ["1", 0], "camera": ["3", 0], "text_encoder": ["4", 0], "vae": [VAE, 0], "prompt": prompt,
            "negative_prompt": "", "width": 128, "height": 96}},
        SAMPLER: {"class_type": "SanaWMSampler", "inputs": {
            "model": [MODEL_LOADER, 0], "positive": ["7", 0], "negative": ["7", 1], "latent": ["7", 2],
            "seed": seed, "steps": steps, "cfg": cfg, "sampler": "flow_euler_ltx"}},
    }


def with_preview(wf: dict, latent: list | None = None) -> dict:
    """Adds the cheapest output: decode (node "11") -> PreviewImage (node "12") of `latent` (default Stage 1)."""
    wf["11"] = {"class_type": "SanaWMDecode", "inputs": {"vae": [VAE, 0], "latent": latent or [SAMPLER, 0],
                                                          "max_frames": 321}}
    wf["12"] = {"class_type": "PreviewImage", "inputs": {"images": ["11", 0]}}
    return wf


def upload_first_frame(comfy_server, folder: Path, name: str) -> str:
    """Writes the tiny tests' first frame into the server's input folder; returns the LoadImage name."""
    from scripts.comfy_server import copy_into_input

    p = Path(folder) / name
    tiny.image().save(p)
    return copy_into_input(comfy_server.base, p)
