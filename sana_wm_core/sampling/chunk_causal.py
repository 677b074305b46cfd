"""`chunk_flow_euler`: the chunk-causal teacher's sampler (NVlabs' `ChunkFlowEuler`, docs/autoregressive_spec.md §2).

Chunks start on a staggered schedule (`chunk_schedule`). Each global step runs the model once on the
prefix of active chunks with per-frame timesteps (pinned frame 0 and finished chunks at 0), the camera
tensors cut to that prefix and CFG batched [uncond, cond] as in Stage 1; then every denoising frame takes
the per-token Euler step of diffusers' scheduler. Finished chunks and the image frame are never written
again, so they stay bit-identical as clean context. Noise is drawn exactly as the bidirectional sampler
draws it (`initial_latents`).

The reference recomputes the whole prefix at every step. Finished chunks never change and the model is
chunk-causal, so with `use_cache` (default) their per-layer state (`DiTCache`) is computed once, by one
forward at t = 0 exactly as every later step would see them, and each step runs only the unfinished
window on top of it.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from ..model.release import CHUNK_SAMPLER, DEFAULT_FLOW_SHIFT, Stage1Model
from ..model.variants import check_sampler_for_model
from .chunk_schedule import ChunkSchedule, chunk_schedule
from .conditioning import Stage1Conditioning
from .steps import (InterruptCheck, SamplingRun, StepCallback, cache_pass, euler_per_token, guidance_inputs,
                    guided_velocity, initial_latents)

__all__ = ["CHUNK_SAMPLER", "chunk_config", "is_chunk_causal", "check_sampler_for_model", "plan_chunk_causal",
           "chunk_flow_euler", "sample_chunk_causal"]
OPTIONS = ("chunk_interval_k", "use_cache")


def chunk_config(transformer: Any) -> tuple[Optional[int], str]:
    """(chunk_size, split strategy) of a Stage-1 DiT; chunk_size None = the bidirectional variant."""
    cfg = getattr(transformer, "config", None)
    return getattr(cfg, "chunk_size", None), getattr(cfg, "chunk_split_strategy", "first_chunk_plus_one")


def is_chunk_causal(transformer: Any) -> bool:
    """True when the DiT was built as the chunk-causal variant (its config has a chunk_size)."""
    return chunk_config(transformer)[0] is not None


def plan_chunk_causal(transformer: Any, cond: Stage1Conditioning, *, steps: int, flow_shift: float,
                      chunk_interval_k: Optional[float] = None) -> ChunkSchedule:
    """The schedule after checking the model variant, the interval and the length (ValueError naming the
    input and the fix); no model call."""
    check_sampler_for_model(transformer, CHUNK_SAMPLER)
    chunk_size, strategy = chunk_config(transformer)
    return chunk_schedule(cond.latent_frames, chunk_size, steps, flow_shift, strategy=strategy,
                          interval_k=chunk_interval_k)


def _save_pass(model, latents: torch.Tensor, s: int, e: int, inp, run: SamplingRun, state, starts):
    """Write the finished frames [s, e) into the cache (both CFG halves see the same clean frames)."""
    x = latents[:, :, s:e]
    return cache_pass(model, torch.cat([x, x], 0) if run.do_cfg else x, s, e, inp, run, state, starts)


def chunk_flow_euler(model, cond: Stage1Conditioning, run: SamplingRun) -> torch.Tensor:
    """The registry loop (`run.options`: chunk_interval_k, use_cache)."""
    sched = plan_chunk_causal(model, cond, steps=run.steps, flow_shift=run.flow_shift,
                              chunk_interval_k=run.options.get("chunk_interval_k"))
    use_cache = bool(run.options.get("use_cache", True))
    latents = initial_latents(cond, run)
    inp = guidance_inputs(cond, run)
    pinned = run.pinned.to(run.device)
    starts = tuple(s for s, _ in sched.chunks)
    state, cached = None, 0                           # DiTCache of frames [0, cached)
    for g in range(sched.total_steps):
        denoising = sched.denoising(g)
        if not denoising:
            continue
        end = sched.active_end(g)
        lo = sched.chunks[denoising[0]][0]            # chunks before `lo` are final
        t_all = sched.frame_timesteps(g).to(run.device)
        t_all[pinned[:end]] = 0.0
        if use_cache and lo > cached:                 # newly finished chunks: their state, once
            state = _save_pass(model, latents, cached, lo, inp, run, state, starts)
            cached = lo
        s0 = cached if use_cache else 0
        tstep = t_all[s0:end].view(1, 1, -1).expand(inp.batch, 1, end - s0).clone()
        v = guided_velocity(model, latents[:, :, s0:end], tstep, inp, run, camera_conditions=inp.raymap[:, s0:end],
                            chunk_plucker=inp.plucker[:, :, s0:end], cache=state if s0 else None,
                            chunk_starts=starts)
        latents[:, :, lo:end] = euler_per_token(latents[:, :, lo:end], v[:, :, lo - s0:], t_all[lo:end].cpu(),
                                                sched.flow.sigmas, pinned[lo:end])
        run.step_done(g, sched.total_steps, latents, cond, preview_frames=sched.finished_end(g))
    return latents


def sample_chunk_causal(transformer: Any, cond: Stage1Conditioning, *, steps: int = 60,
                        guidance_scale: float = 5.0, seed: int = 42, flow_shift: Optional[float] = None,
                        chunk_interval_k: Optional[float] = None, callback: Optional[StepCallback] = None,
                        interrupt: Optional[InterruptCheck] = None, use_cache: bool = True,
                        **kwargs: Any) -> torch.Tensor:
    """Denoise the Stage-1 latent chunk by chunk; returns (1,C,L,h,w) in the model dtype on the model device.

    transformer: the chunk-causal DiT, or a `Stage1Model` holding it (its release flow shift is then the
    default). flow_shift None = the release config's value. chunk_interval_k None = 1/num_chunks.
    callback(step, total_global_steps, latents) runs after every global step with the whole latent.
    use_cache False recomputes the whole active prefix every step, as the reference does (same result).
    Other keywords (host, dtype, device, pinned) go to `sample_stage1`. Every input is checked first.
    """
    from .stage1 import sample_stage1            # stage1 -> registry -> this module

    if isinstance(transformer, Stage1Model):
        flow_shift = transformer.flow_shift if flow_shift is None else flow_shift
        transformer = transformer.transformer
    shift = DEFAULT_FLOW_SHIFT if flow_shift is None else float(flow_shift)
    plan_chunk_causal(transformer, cond, steps=steps, flow_shift=shift, chunk_interval_k=chunk_interval_k)
    return sample_stage1(transformer, cond, steps=steps, guidance_scale=guidance_scale, seed=seed, flow_shift=shift,
                         sampler=CHUNK_SAMPLER, callback=callback, interrupt=interrupt,
                         chunk_interval_k=chunk_interval_k, use_cache=use_cache, **kwargs)
