"""The Stage-1 latent between core LATENT dicts and the engine's `SanaWMLatent`, for decode / save / refine.

A core LATENT is `{"samples": (1,C,L,h,w), "noise_mask": ..., CLIP_KEY: clip info}` (`native_cond`). Core
nodes that copy the dict (KSampler, LatentBatchSeedBehavior, ...) keep the clip info; Save Latent / Load
Latent keep only `samples`. Then the frame count follows from the samples, and fps / camera come from the
consuming node's optional inputs (`SanaWMLatent.with_clip_inputs`). The noise mask only steers sampling
(frame 0 pinned to the image); consumers drop it. No node outputs the pack's former SANAWM_LATENT any more
(only the old SANA-WM Sampler did, and `compat.py` refuses prompts saved with it), so the sockets are LATENT.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from comfy_api.latest import io

from ..sana_wm_core.latent import LTX2_TEMPORAL_STRIDE, SanaWMLatent, pixel_frames
from .native_cond import CLIP_KEY


def latent_input(tooltip: str) -> io.Latent.Input:
    """The `latent` socket of the nodes that read a Stage-1 latent (decode, save, refine): a core LATENT."""
    return io.Latent.Input("latent", tooltip=tooltip)


def engine_latent(value: Any, *, temporal_stride: int | None = None) -> SanaWMLatent:
    """The `SanaWMLatent` behind a core LATENT (or the value itself); ValueError naming the input when it is
    not one clip's video latent. Without the clip info the latent decodes every frame and knows no fps,
    camera or prompt (the node's optional inputs fill those in). `temporal_stride`: the VAE's, when the node
    has one; else the clip info's, else LTX-2's."""
    if isinstance(value, SanaWMLatent):
        return value
    if not isinstance(value, dict) or not torch.is_tensor(value.get("samples")):
        raise ValueError("latent must be a LATENT from a sampler (or SANA-WM Refine / Load Latent), "
                         f"got {type(value).__name__}")
    samples = value["samples"]
    if samples.ndim != 5:
        raise ValueError(f"latent must be a video latent (B,C,L,h,w), got shape {tuple(samples.shape)}: connect "
                         "the output of a sampler driving the SANA-WM model")
    if samples.shape[0] != 1:
        raise ValueError(f"latent holds a batch of {samples.shape[0]} clips; SANA-WM decodes and refines one clip: "
                         "pick one with core 'Latent From Batch'")
    clip = value.get(CLIP_KEY)
    if not isinstance(clip, dict):
        return SanaWMLatent(samples=samples, num_frames=pixel_frames(samples.shape[2], temporal_stride or
                                                                     LTX2_TEMPORAL_STRIDE), fps=0.0)
    frames = pixel_frames(samples.shape[2], temporal_stride or clip.get("temporal_stride") or LTX2_TEMPORAL_STRIDE)
    c2w = clip.get("c2w")
    if c2w is not None:             # a core node that cut frames off the end keeps the poses aligned
        c2w = np.asarray(c2w)[:frames] if len(c2w) >= frames else None
    return SanaWMLatent(samples=samples, num_frames=frames, fps=float(clip.get("fps") or 0.0), c2w=c2w,
                        camera=clip.get("camera"), prompt=str(clip.get("prompt") or ""),
                        drop_first_frames=int(clip.get("drop_first_frames") or 0),
                        generation=dict(clip.get("generation") or {}), preview_proj=clip.get("preview_proj"))


def core_latent(latent: SanaWMLatent, like: Any = None) -> dict:
    """`latent` as a core LATENT carrying its clip info forward; other keys of the core LATENT `like` it came
    from are kept, its noise mask is not (the result is not for sampling again)."""
    base = like if isinstance(like, dict) else {}
    out = {k: v for k, v in base.items() if k not in ("samples", "noise_mask", CLIP_KEY)}
    clip = dict(base.get(CLIP_KEY) or {})
    clip.update(num_frames=int(latent.num_frames), fps=float(latent.fps), c2w=latent.c2w, camera=latent.camera,
                prompt=latent.prompt, drop_first_frames=int(latent.drop_first_frames),
                generation=dict(latent.generation), preview_proj=latent.preview_proj)
    out["samples"] = latent.samples
    out[CLIP_KEY] = clip
    return out
