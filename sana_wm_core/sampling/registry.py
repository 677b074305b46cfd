"""The Stage-1 sampler registry: name -> loop. A new sampler is one new file in `sampling/` defining its
loop `(model, cond, run: SamplingRun) -> latent` plus one entry below."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .chunk_causal import CHUNK_SAMPLER, OPTIONS as CHUNK_OPTIONS, chunk_flow_euler
from .conditioning import Stage1Conditioning
from .flow_euler import flow_euler, flow_euler_ltx
from .self_forcing import OPTIONS as STREAM_OPTIONS, STREAM_SAMPLER, self_forcing
from .steps import SamplingRun

SamplerLoop = Callable[[object, Stage1Conditioning, SamplingRun], torch.Tensor]


@dataclass(frozen=True)
class Sampler:
    name: str
    loop: SamplerLoop
    description: str
    pins_image_frames: bool = True  # the default pin mask: the image latent's frames (False: none)
    options: tuple = ()  # names of the sampler-specific keyword settings it reads from `run.options`


SAMPLERS: dict[str, Sampler] = {s.name: s for s in (
    Sampler("flow_euler_ltx", flow_euler_ltx, "first frame pinned to the image, per-token Euler (reference "
            "default)"),
    Sampler("flow_euler", flow_euler, "every frame denoised, the first included; the scheduler's Euler steps",
            pins_image_frames=False),
    Sampler(CHUNK_SAMPLER, chunk_flow_euler, "the chunk-causal model's staggered chunk schedule (NVlabs' "
            "ChunkFlowEuler); finished chunks are cached", options=CHUNK_OPTIONS),
    Sampler(STREAM_SAMPLER, self_forcing, "the distilled streaming model's block-by-block sampler (NVlabs' "
            "self-forcing flow Euler): a few given sigmas per block, no CFG, a windowed cache",
            options=STREAM_OPTIONS),
)}


def get_sampler(name: str) -> Sampler:
    if name not in SAMPLERS:
        raise ValueError(f"sampler must be one of {tuple(SAMPLERS)}, got {name!r}")
    return SAMPLERS[name]
