"""Helpers every Stage-1 sampler loop shares: the validated run settings, CFG batching, per-frame
timesteps with pinned frames, the Euler steps, the initial noise and step reporting.

Which latent frames are pinned to the image is data: `SamplingRun.pinned`, a (L,) bool mask. A pinned
frame gets timestep 0 in the model and no Euler step, so it leaves the loop bit-identical.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from ..runtime.host import NULL_HOST, Host
from .conditioning import Stage1Conditioning
from .preview import latent_preview
from .schedule import FlowSchedule, next_sigma_below

StepCallback = Callable[[int, int, torch.Tensor], None]
InterruptCheck = Callable[[], "bool | None"]


@dataclass
class SamplingRun:
    """Everything a sampler loop needs besides the model and the conditioning, already validated."""

    steps: int
    guidance_scale: float
    seed: int
    flow_shift: float
    do_cfg: bool
    pinned: torch.Tensor  # (L,) bool: frames held at the image latent
    dtype: torch.dtype
    device: torch.device
    host: Host = NULL_HOST
    callback: Optional[StepCallback] = None  # legacy per-step hook (step, total, latents)
    options: dict = field(default_factory=dict)  # sampler-specific settings (e.g. chunk_interval_k)

    def check_interrupt(self) -> None:
        self.host.check_interrupt()

    def step_done(self, step: int, total: int, latents: torch.Tensor, cond: Stage1Conditioning,
                  preview_frames: Optional[int] = None) -> None:
        """Reports step `step` (0-based) of `total`: the host's progress (with a lazy latent preview of the
        first `preview_frames` latent frames, default all: a chunk sampler shows the finished ones) and the
        legacy callback (always the whole latent)."""
        proj = cond.preview_proj
        shown = latents if preview_frames is None else latents[:, :, :max(1, int(preview_frames))]
        preview = None if proj is None else (lambda: latent_preview(shown, proj))
        self.host.progress(step + 1, total, preview)
        if self.callback is not None:
            self.callback(step, total, latents)


@dataclass
class GuidedInputs:
    """Model inputs with CFG batched as [uncond, cond] (batch 2) or cond only (batch 1)."""

    embeds: torch.Tensor
    masks: torch.Tensor
    raymap: torch.Tensor  # (B, L, 20)
    plucker: torch.Tensor  # (B, C, L, h, w)
    batch: int


def guidance_inputs(cond: Stage1Conditioning, run: SamplingRun) -> GuidedInputs:
    device, dtype = run.device, run.dtype
    if run.do_cfg:
        embeds = torch.cat([cond.negative_embeds, cond.prompt_embeds], 0)
        masks = torch.cat([cond.negative_mask, cond.prompt_mask], 0)
    else:
        embeds, masks = cond.prompt_embeds, cond.prompt_mask
    batch = embeds.shape[0]
    raymap = cond.raymap.to(device=device, dtype=dtype).unsqueeze(0).expand(batch, -1, -1)
    plucker = cond.chunk_plucker.to(device=device, dtype=dtype).unsqueeze(0).expand(batch, -1, -1, -1, -1)
    return GuidedInputs(embeds.to(device=device, dtype=dtype), masks.to(device), raymap, plucker, batch)


def _velocity(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    sample = getattr(out, "sample", None)
    return sample if isinstance(sample, torch.Tensor) else out[0]


def guided_velocity(model, latents: torch.Tensor, timestep: torch.Tensor, inp: GuidedInputs, run: SamplingRun,
                    **model_kw: Any) -> torch.Tensor:
    """One (CFG-batched) model call and the guidance combination v_u + s (v_c - v_u).

    `model_kw` reaches the model as is (e.g. sliced camera tensors, a cache); our DiT also gets the host,
    so a cancel lands within one block. Interrupts are checked before and after the call."""
    run.check_interrupt()
    x_in = torch.cat([latents, latents], 0) if run.do_cfg else latents
    kw = {"encoder_attention_mask": inp.masks, "camera_conditions": inp.raymap, "chunk_plucker": inp.plucker}
    kw.update(model_kw)
    if getattr(model, "accepts_host", False):
        kw["host"] = run.host
    v = _velocity(model(x_in, timestep, inp.embeds, **kw)).to(latents.device)
    run.check_interrupt()
    if run.do_cfg:
        v_uncond, v_cond = v.chunk(2)
        v = v_uncond + run.guidance_scale * (v_cond - v_uncond)
    return v


def cache_pass(model, x_in: torch.Tensor, s: int, e: int, inp: GuidedInputs, run: SamplingRun, cache: Any,
               starts: Any) -> Any:
    """One forward over the finished frames [s, e) (`x_in`, already CFG-batched) at t = 0 that returns the cache
    after them: the causal samplers' way to write a chunk into the state (its velocity is unused)."""
    run.check_interrupt()
    t = torch.zeros(inp.batch, 1, e - s, device=run.device)
    kw = {"host": run.host} if getattr(model, "accepts_host", False) else {}
    _, state = model(x_in, t, inp.embeds, encoder_attention_mask=inp.masks, camera_conditions=inp.raymap[:, s:e],
                     chunk_plucker=inp.plucker[:, :, s:e], cache=cache, output_cache=True, chunk_starts=starts, **kw)
    run.check_interrupt()
    return state


def frame_timesteps(t: torch.Tensor, num_frames: int, batch: int, pinned: Optional[torch.Tensor],
                    device) -> torch.Tensor:
    """(B, 1, L) float32 model timesteps: `t` (a scalar or one per frame), 0 on pinned frames."""
    tstep = torch.as_tensor(t).expand(batch, 1, num_frames).to(device=device, dtype=torch.float32).clone()
    if pinned is not None and bool(pinned.any()):
        tstep[:, :, pinned.to(tstep.device)] = 0.0
    return tstep


def euler_per_token(latents: torch.Tensor, v: torch.Tensor, t: torch.Tensor, sigmas: torch.Tensor,
                    pinned: Optional[torch.Tensor] = None) -> torch.Tensor:
    """diffusers' per-token Euler step (`per_token_timesteps`), float32 math cast back to the latent dtype.

    t: a scalar or one timestep per latent frame (L,). sigma = t/1000 (not the schedule entry), next = the
    largest schedule sigma strictly below it; x <- x - (sigma - next) v. Pinned frames are copied through."""
    dtype = latents.dtype
    L = latents.shape[2]
    t = torch.as_tensor(t, dtype=torch.float32)
    if t.ndim == 0:
        sigma = t / 1000
        dt = (sigma - next_sigma_below(sigmas, sigma)).to(latents.device)
    else:
        sig = t.float() / 1000
        dt = torch.stack([s - next_sigma_below(sigmas, s) for s in sig]).view(1, 1, L, 1, 1).to(latents.device)
    if pinned is None or not bool(pinned.any()):
        return (latents.to(torch.float32) + dt * (-v.to(torch.float32))).to(dtype)
    if t.ndim == 0 and bool(pinned[0]) and not bool(pinned[1:].any()):
        # the reference's layout: only frame 0 pinned (its exact op order: step frames 1.., concatenate)
        new = latents[:, :, 1:].to(torch.float32) + dt * (-v[:, :, 1:].to(torch.float32))
        return torch.cat([latents[:, :, :1], new.to(dtype)], 2)
    new = (latents.to(torch.float32) + dt * (-v.to(torch.float32))).to(dtype)
    return torch.where(pinned.to(latents.device).view(1, 1, L, 1, 1), latents, new)


def euler_scheduler_step(latents: torch.Tensor, v: torch.Tensor, step: int, sched: FlowSchedule,
                         pinned: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The scheduler's own Euler step (sigma[i+1] - sigma[i]) for every frame; pinned frames copied through."""
    dtype = latents.dtype
    dt = (sched.sigmas[step + 1] - sched.sigmas[step]).to(latents.device)
    new = (latents.to(torch.float32) + dt * v.to(torch.float32)).to(dtype)
    if pinned is None or not bool(pinned.any()):
        return new
    return torch.where(pinned.to(latents.device).view(1, 1, -1, 1, 1), latents, new)


def initial_noise(shape: tuple[int, ...], seed: int, dtype: torch.dtype) -> torch.Tensor:
    """`torch.randn(shape)` from a CPU generator seeded with `seed`, drawn directly in `dtype` (diffusers' way)."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(shape, generator=gen, dtype=dtype)


def initial_latents(cond: Stage1Conditioning, run: SamplingRun) -> torch.Tensor:
    """Seeded noise over the whole latent with the image latent written into its frame(s) at the start."""
    latents = initial_noise(cond.latent_shape, run.seed, run.dtype).to(run.device)
    n = cond.image_latent.shape[2]
    latents[:, :, :n] = cond.image_latent.to(device=run.device, dtype=run.dtype)
    return latents
