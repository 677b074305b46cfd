"""Stage-1 conditioning as core ComfyUI values: positive / negative CONDITIONING and a LATENT with a noise mask.

The prompt embedding is the conditioning tensor (1,T,D) and its padding mask, the camera tensors ride in
the conditioning's options (read back by `SanaWMBaseModel.extra_conds`), and the LATENT holds the first-frame
latent at frame 0 with `noise_mask` 0 there (pinned), 1 elsewhere, like core LTX-Video's image-to-video. The
clip's camera path, fps and frame count travel in the LATENT under `CLIP_KEY`, for decode / refine / save.
"""
from __future__ import annotations

from typing import Any

import torch

from .native_model import PLUCKER_KEY, RAYMAP_KEY

CLIP_KEY = "sanawm_clip"


def _conditioning(embeds: torch.Tensor, mask: torch.Tensor, camera: dict) -> list:
    tokens = embeds.reshape(embeds.shape[0], embeds.shape[-2], embeds.shape[-1])
    return [[tokens, {"attention_mask": mask, **camera}]]


def core_conditioning(cond: Any) -> tuple[list, list, dict]:
    """(positive, negative, latent) for core samplers from a `Stage1Conditioning` (negative prompt required)."""
    if cond.negative_embeds is None:
        raise ValueError("the conditioning has no negative prompt embedding; build it with guidance")
    camera = {RAYMAP_KEY: cond.raymap.unsqueeze(0), PLUCKER_KEY: cond.chunk_plucker.unsqueeze(0)}
    positive = _conditioning(cond.prompt_embeds, cond.prompt_mask, camera)
    negative = _conditioning(cond.negative_embeds, cond.negative_mask, camera)
    shape = cond.latent_shape
    samples = torch.zeros(shape, dtype=torch.float32)
    samples[:, :, :1] = cond.image_latent.to(torch.float32)
    noise_mask = torch.ones((shape[0], 1, shape[2], 1, 1), dtype=torch.float32)
    noise_mask[:, :, :1] = 0.0                         # frame 0 is the image: timestep 0, never re-noised
    return positive, negative, {"samples": samples, "noise_mask": noise_mask, CLIP_KEY: clip_info(cond)}


def clip_info(cond: Any) -> dict:
    """What decode / refine / save need about the clip, as plain values (survives a copy of the LATENT dict)."""
    return {"num_frames": int(cond.num_frames), "fps": float(cond.fps), "c2w": cond.c2w, "camera": cond.camera,
            "prompt": cond.prompt, "height": int(cond.height), "width": int(cond.width)}
