"""`chunk_flow_euler`: the chunk-causal teacher's sampler (NVlabs' `ChunkFlowEuler`, docs/autoregressive_spec.md §2).

Chunks start on a staggered schedule (`chunk_schedule`). Each global step runs the model once on the
prefix of active chunks with per-frame timesteps (frame 0 and finished chunks at 0), the camera tensors cut
to that prefix and CFG batched [uncond, cond] as in Stage 1; then every denoising frame takes the per-token
Euler step of diffusers' scheduler (sigma = t/1000, next = the largest schedule sigma strictly below).
Frame 0 and finished chunks are never written again, so they stay bit-identical as clean context.
Noise is drawn exactly as the bidirectional sampler draws it (`initial_noise`).
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from .chunk_schedule import ChunkSchedule, chunk_schedule
from .conditioning import Stage1Conditioning
from .release import CHUNK_SAMPLER, DEFAULT_FLOW_SHIFT, Stage1Model
from .schedule import next_sigma_below
from .stage1 import (InterruptCheck, SamplingInterrupted, StepCallback, _velocity, initial_noise,
                     model_dtype_device)

__all__ = ["CHUNK_SAMPLER", "chunk_config", "is_chunk_causal", "check_sampler_for_model", "plan_chunk_causal",
           "sample_chunk_causal"]


def chunk_config(transformer: Any) -> tuple[Optional[int], str]:
    """(chunk_size, split strategy) of a Stage-1 DiT; chunk_size None = the bidirectional variant."""
    cfg = getattr(transformer, "config", None)
    return getattr(cfg, "chunk_size", None), getattr(cfg, "chunk_split_strategy", "first_chunk_plus_one")


def is_chunk_causal(transformer: Any) -> bool:
    """True when the DiT was built as the chunk-causal variant (its config has a chunk_size)."""
    return chunk_config(transformer)[0] is not None


def check_sampler_for_model(transformer: Any, sampler: str) -> None:
    """ValueError naming the fix when the sampler does not fit the variant (chunk-causal vs bidirectional)."""
    if is_chunk_causal(transformer) and sampler != CHUNK_SAMPLER:
        raise ValueError(f"this Stage-1 DiT is the chunk-causal variant (SANA-WM_chunk_causal), which runs only "
                         f"with sampler {CHUNK_SAMPLER}; set sampler to {CHUNK_SAMPLER} (got {sampler!r}), or load "
                         "SANA-WM_bidirectional for the other samplers")
    if not is_chunk_causal(transformer) and sampler == CHUNK_SAMPLER:
        raise ValueError(f"sampler {CHUNK_SAMPLER} needs the chunk-causal model, but this Stage-1 DiT is "
                         "bidirectional: load Efficient-Large-Model/SANA-WM_chunk_causal in the model loader, "
                         "or pick sampler flow_euler_ltx for this model")


def plan_chunk_causal(transformer: Any, cond: Stage1Conditioning, *, steps: int, guidance_scale: float,
                      flow_shift: float, chunk_interval_k: Optional[float]) -> tuple[ChunkSchedule, bool]:
    """Check every input (ValueError naming it and the fix) and return (schedule, CFG on); no model call."""
    check_sampler_for_model(transformer, CHUNK_SAMPLER)
    chunk_size, strategy = chunk_config(transformer)
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not (guidance_scale == guidance_scale) or guidance_scale < 0:
        raise ValueError(f"guidance_scale (cfg) must be a number >= 0, got {guidance_scale}")
    cond.validate()
    do_cfg = guidance_scale > 1.0
    if do_cfg and cond.negative_embeds is None:
        raise ValueError("cfg > 1 needs a negative prompt embedding; encode one or set cfg to 1.0")
    sched = chunk_schedule(cond.latent_frames, chunk_size, steps, flow_shift, strategy=strategy,
                           interval_k=chunk_interval_k)
    return sched, do_cfg


def _frame_dt(sched: ChunkSchedule, t_frames: torch.Tensor) -> torch.Tensor:
    """Per-frame sigma - next sigma (diffusers' per-token rule); 0 for frames at t = 0."""
    sigmas = sched.flow.sigmas
    out = torch.zeros_like(t_frames)
    for f, t in enumerate(t_frames):
        if float(t) > 0:
            sigma = t / 1000
            out[f] = sigma - next_sigma_below(sigmas, sigma)
    return out


@torch.no_grad()
def sample_chunk_causal(transformer: Any, cond: Stage1Conditioning, *, steps: int = 60,
                        guidance_scale: float = 5.0, seed: int = 42, flow_shift: Optional[float] = None,
                        chunk_interval_k: Optional[float] = None, callback: Optional[StepCallback] = None,
                        interrupt: Optional[InterruptCheck] = None, use_cache: bool = True,
                        dtype: Optional[torch.dtype] = None,
                        device: Optional[torch.device | str] = None) -> torch.Tensor:
    """Denoise the Stage-1 latent chunk by chunk; returns (1,C,L,h,w) in the model dtype on the model device.

    transformer: the chunk-causal DiT, or a `Stage1Model` holding it (its release flow shift is then the
    default). flow_shift None = the release config's value. chunk_interval_k None = 1/num_chunks.
    callback(step, total_global_steps, latents) runs after every global step with the whole latent.
    use_cache: finished chunks never change, so their per-layer state is computed once (one forward at t=0,
    as they would be seen in every later step) and each step runs only the unfinished window on top of it;
    False recomputes the whole active prefix every step, as the reference does (same result).
    """
    if isinstance(transformer, Stage1Model):
        flow_shift = transformer.flow_shift if flow_shift is None else flow_shift
        transformer = transformer.transformer
    shift = DEFAULT_FLOW_SHIFT if flow_shift is None else float(flow_shift)
    sched, do_cfg = plan_chunk_causal(transformer, cond, steps=steps, guidance_scale=guidance_scale,
                                      flow_shift=shift, chunk_interval_k=chunk_interval_k)
    m_dtype, m_device = model_dtype_device(transformer) if isinstance(transformer, torch.nn.Module) else (
        torch.float32, torch.device("cpu"))
    dtype = dtype or m_dtype
    device = torch.device(device) if device is not None else m_device

    latents = initial_noise(cond.latent_shape, seed, dtype).to(device)
    latents[:, :, :1] = cond.image_latent.to(device=device, dtype=dtype)
    if do_cfg:
        embeds = torch.cat([cond.negative_embeds, cond.prompt_embeds], 0)
        masks = torch.cat([cond.negative_mask, cond.prompt_mask], 0)
    else:
        embeds, masks = cond.prompt_embeds, cond.prompt_mask
    batch = embeds.shape[0]
    embeds, masks = embeds.to(device=device, dtype=dtype), masks.to(device)
    raymap = cond.raymap.to(device=device, dtype=dtype).unsqueeze(0).expand(batch, -1, -1)
    plucker = cond.chunk_plucker.to(device=device, dtype=dtype).unsqueeze(0).expand(batch, -1, -1, -1, -1)
    starts = tuple(s for s, _ in sched.chunks)

    def stop_check() -> None:
        if interrupt is not None and interrupt():
            raise SamplingInterrupted("sampling interrupted")

    def run(s: int, e: int, t_frames: torch.Tensor, state, save: bool):
        """The model over frames [s, e) on top of `state` (the frames before s)."""
        x = latents[:, :, s:e]
        tstep = t_frames.view(1, 1, e - s).expand(batch, 1, e - s).to(device).clone()
        stop_check()
        out = transformer(torch.cat([x, x], 0) if do_cfg else x, tstep, embeds, encoder_attention_mask=masks,
                          camera_conditions=raymap[:, s:e], chunk_plucker=plucker[:, :, s:e], cache=state,
                          output_cache=save, chunk_starts=starts)
        stop_check()
        return out

    state, cached = None, 0                       # DiTCache of frames [0, cached)
    for g in range(sched.total_steps):
        end = sched.active_end(g)
        denoising = sched.denoising(g)
        if end == 0 or not denoising:
            continue
        t_all = sched.frame_timesteps(g)
        context = sched.chunks[denoising[0]][0]     # chunks before the first denoising one are final
        if use_cache and context > cached:          # the save pass: newly finished chunks at t = 0
            _, state = run(cached, context, t_all[cached:context], state, save=True)
            cached = context
        s0 = cached if use_cache else 0
        v = _velocity(run(s0, end, t_all[s0:end], state if s0 else None, save=False)).to(latents.device)
        if do_cfg:
            v_uncond, v_cond = v.chunk(2)
            v = v_uncond + guidance_scale * (v_cond - v_uncond)
        for i in denoising:
            s, e = sched.chunks[i]
            s = max(s, 1)                                # frame 0 is the image: never stepped
            dt = _frame_dt(sched, t_all[s:e]).to(device).view(1, 1, e - s, 1, 1)
            new = latents[:, :, s:e].to(torch.float32) + dt * (-v[:, :, s - s0:e - s0].to(torch.float32))
            latents[:, :, s:e] = new.to(dtype)
        if callback is not None:
            callback(g, sched.total_steps, latents)
    return latents
