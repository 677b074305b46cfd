"""Stage-1 conditioning as core ComfyUI values: positive / negative CONDITIONING and a LATENT with a noise mask.

The prompt embedding is the conditioning tensor (1,T,D) and its padding mask, the camera tensors and the
clip's latent->RGB preview map ride in the conditioning's options (read back by `SanaWMBaseModel.extra_conds`),
and the LATENT holds the first-frame latent at frame 0 with `noise_mask` 0 there (pinned), 1 elsewhere, like
core LTX-Video's image-to-video. The clip's camera path, fps and frame count travel in the LATENT under
`CLIP_KEY`, for decode / refine / save.
"""
from __future__ import annotations

from typing import Any

import torch

from .native_model import PLUCKER_KEY, RAYMAP_KEY
from .native_preview import PREVIEW_KEY

CLIP_KEY = "sanawm_clip"


def _conditioning(embeds: torch.Tensor, mask: torch.Tensor, camera: dict) -> list:
    tokens = embeds.reshape(embeds.shape[0], embeds.shape[-2], embeds.shape[-1])
    return [[tokens, {"attention_mask": mask, **camera}]]


def core_conditioning(cond: Any) -> tuple[list, list, dict]:
    """(positive, negative, latent) for core samplers from a `Stage1Conditioning` (negative prompt required)."""
    if cond.negative_embeds is None:
        raise ValueError("the conditioning has no negative prompt embedding; build it with guidance")
    camera = {RAYMAP_KEY: cond.raymap.unsqueeze(0), PLUCKER_KEY: cond.chunk_plucker.unsqueeze(0)}
    if cond.preview_proj is not None:               # core samplers' previews draw with it (native_preview.py)
        camera[PREVIEW_KEY] = cond.preview_proj
    positive = _conditioning(cond.prompt_embeds, cond.prompt_mask, camera)
    negative = _conditioning(cond.negative_embeds, cond.negative_mask, camera)
    shape = cond.latent_shape
    samples = torch.zeros(shape, dtype=torch.float32)
    samples[:, :, :1] = cond.image_latent.to(torch.float32)
    noise_mask = torch.ones((shape[0], 1, shape[2], 1, 1), dtype=torch.float32)
    noise_mask[:, :, :1] = 0.0                         # frame 0 is the image: timestep 0, never re-noised
    return positive, negative, {"samples": samples, "noise_mask": noise_mask, CLIP_KEY: clip_info(cond)}


def clip_info(cond: Any) -> dict:
    """What decode / refine / save need about the clip, as plain values (survives a copy of the LATENT dict);
    `preview_proj`, `chi_prompt` and `temporal_stride` let the pack's own sampler rebuild the conditioning."""
    return {"num_frames": int(cond.num_frames), "fps": float(cond.fps), "c2w": cond.c2w, "camera": cond.camera,
            "prompt": cond.prompt, "height": int(cond.height), "width": int(cond.width),
            "temporal_stride": int(cond.temporal_stride), "preview_proj": cond.preview_proj,
            "chi_prompt": tuple(cond.chi_prompt)}


def _one(conditioning: Any, name: str) -> tuple[torch.Tensor, dict]:
    if not isinstance(conditioning, list) or len(conditioning) != 1 or len(conditioning[0]) != 2:
        count = len(conditioning) if isinstance(conditioning, list) else type(conditioning).__name__
        raise ValueError(f"{name} must be the single CONDITIONING entry SANA-WM Image To Video outputs (got "
                         f"{count} entries): connect its '{name}' output directly, without combine nodes")
    tokens, opts = conditioning[0]
    if RAYMAP_KEY not in opts or PLUCKER_KEY not in opts or "attention_mask" not in opts:
        raise ValueError(f"{name} carries no SANA-WM camera tensors: connect SANA-WM Image To Video's '{name}'")
    return tokens, opts


def stage1_from_core(positive: Any, negative: Any, latent: Any, *, guidance: bool = True) -> Any:
    """The `Stage1Conditioning` behind (positive, negative, latent) from `core_conditioning`, so the pack's own
    samplers run on core values; ValueError naming the input when one did not come from SANA-WM Image To Video."""
    from ..sana_wm_core.sampling.conditioning import Stage1Conditioning

    if not isinstance(latent, dict) or "samples" not in latent:
        raise ValueError("latent must be a LATENT (a dict with 'samples') from SANA-WM Image To Video")
    clip = latent.get(CLIP_KEY)
    if not isinstance(clip, dict):
        raise ValueError("latent has no SANA-WM clip info (the 'sanawm_clip' key): connect SANA-WM Image To "
                         "Video's latent output to the sampler directly (a saved and reloaded latent is for the "
                         "refiner, not for Stage-1 sampling)")
    tokens, pos = _one(positive, "positive")
    neg_tokens, neg = _one(negative, "negative") if guidance else (None, {})
    samples = latent["samples"]
    return Stage1Conditioning(
        prompt_embeds=tokens.unsqueeze(1), prompt_mask=pos["attention_mask"],
        negative_embeds=None if neg_tokens is None else neg_tokens.unsqueeze(1),
        negative_mask=neg.get("attention_mask"),
        image_latent=samples[:, :, :1].to(torch.float32), raymap=pos[RAYMAP_KEY][0],
        chunk_plucker=pos[PLUCKER_KEY][0], num_frames=int(clip["num_frames"]), height=int(clip["height"]),
        width=int(clip["width"]), fps=float(clip["fps"]), c2w=clip.get("c2w"), camera=clip.get("camera"),
        prompt=str(clip.get("prompt", "")), temporal_stride=int(clip.get("temporal_stride", 8)),
        preview_proj=clip.get("preview_proj"), chi_prompt=tuple(clip.get("chi_prompt", ())))
