"""The Stage-1 denoising loop: `flow_euler_ltx` (the reference default) and plain `flow_euler`.

`flow_euler_ltx` pins latent frame 0 to the image latent: that frame gets timestep 0 in the model and a zero
Euler step, so it leaves the loop bit-identical. Every other frame follows the shifted flow schedule with
the per-token step rule of diffusers' scheduler (current sigma = t/1000, next = the largest schedule sigma
strictly below it). CFG runs [uncond, cond] as one batch. Noise is one `torch.randn` over the whole latent
from a CPU generator seeded with `seed`, in the model dtype, exactly as diffusers' pipeline draws it.

ComfyUI reaches this loop only through callbacks: `callback(step, total, latents)` after each step and
`interrupt()` before and after each model call (return True, or raise, to stop).
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch

from ..latent import SanaWMLatent
from .conditioning import Stage1Conditioning
from .schedule import FlowSchedule, flow_schedule, next_sigma_below

SAMPLERS = ("flow_euler_ltx", "flow_euler")


class SamplingInterrupted(RuntimeError):
    """Raised when the interrupt callback asks the loop to stop."""


class VelocityModel(Protocol):
    def __call__(self, hidden_states: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                 encoder_attention_mask: torch.Tensor | None = None, camera_conditions: torch.Tensor | None = None,
                 chunk_plucker: torch.Tensor | None = None): ...


StepCallback = Callable[[int, int, torch.Tensor], None]
InterruptCheck = Callable[[], "bool | None"]


def model_dtype_device(model: torch.nn.Module) -> tuple[torch.dtype, torch.device]:
    """Compute dtype and device of a DiT: its `dtype`/`device` attributes, else its first float parameter.

    fp8 storage computes in bf16, so a float8 parameter dtype maps to bfloat16.
    """
    dtype = getattr(model, "compute_dtype", None) or getattr(model, "dtype", None)
    device = getattr(model, "device", None)
    params = [p for p in model.parameters() if p.is_floating_point()] if isinstance(model, torch.nn.Module) else []
    if not isinstance(dtype, torch.dtype):
        dtype = params[0].dtype if params else torch.float32
    if not isinstance(device, torch.device):
        device = params[0].device if params else torch.device("cpu")
    offloader = getattr(model, "offloader", None)       # block offload: weights on CPU, compute elsewhere
    if offloader is not None and isinstance(getattr(offloader, "device", None), torch.device):
        device = offloader.device
    if dtype in (getattr(torch, "float8_e4m3fn", None), getattr(torch, "float8_e5m2", None)):
        dtype = torch.bfloat16
    return dtype, device


def initial_noise(shape: tuple[int, ...], seed: int, dtype: torch.dtype) -> torch.Tensor:
    """`torch.randn(shape)` from a CPU generator seeded with `seed`, drawn directly in `dtype` (diffusers' way)."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(shape, generator=gen, dtype=dtype)


def _velocity(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    sample = getattr(out, "sample", None)
    return sample if isinstance(sample, torch.Tensor) else out[0]


def check_sampling_args(cond: Stage1Conditioning, steps: int, guidance_scale: float, sampler: str) -> bool:
    """ValueError for a bad sampler / steps / cfg / conditioning (before any model work); True when CFG runs."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not (guidance_scale == guidance_scale) or guidance_scale < 0:
        raise ValueError(f"guidance_scale (cfg) must be a number >= 0, got {guidance_scale}")
    cond.validate()
    do_cfg = guidance_scale > 1.0
    if do_cfg and cond.negative_embeds is None:
        raise ValueError("cfg > 1 needs a negative prompt embedding; encode one or set cfg to 1.0")
    return do_cfg


@torch.no_grad()
def sample_stage1(transformer: VelocityModel, cond: Stage1Conditioning, *, steps: int = 60,
                  guidance_scale: float = 5.0, seed: int = 42, flow_shift: float = 9.8,
                  sampler: str = "flow_euler_ltx", callback: StepCallback | None = None,
                  interrupt: InterruptCheck | None = None, dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Denoise the Stage-1 latent; returns (1,C,L,h,w) in the model dtype on the model device."""
    do_cfg = check_sampling_args(cond, steps, guidance_scale, sampler)
    m_dtype, m_device = model_dtype_device(transformer) if isinstance(transformer, torch.nn.Module) else (
        torch.float32, torch.device("cpu"))
    dtype = dtype or m_dtype
    device = torch.device(device) if device is not None else m_device
    sched = flow_schedule(steps, flow_shift)

    latents = initial_noise(cond.latent_shape, seed, dtype).to(device)
    latents[:, :, :1] = cond.image_latent.to(device=device, dtype=dtype)

    if do_cfg:
        embeds = torch.cat([cond.negative_embeds, cond.prompt_embeds], 0)
        masks = torch.cat([cond.negative_mask, cond.prompt_mask], 0)
    else:
        embeds, masks = cond.prompt_embeds, cond.prompt_mask
    batch = embeds.shape[0]
    embeds = embeds.to(device=device, dtype=dtype)
    masks = masks.to(device)
    raymap = cond.raymap.to(device=device, dtype=dtype).unsqueeze(0).expand(batch, -1, -1)
    plucker = cond.chunk_plucker.to(device=device, dtype=dtype).unsqueeze(0).expand(batch, -1, -1, -1, -1)
    pin_first = sampler == "flow_euler_ltx"

    def stop_check() -> None:
        if interrupt is not None and interrupt():
            raise SamplingInterrupted("sampling interrupted")

    for i, t in enumerate(sched.timesteps):
        stop_check()
        L = latents.shape[2]
        tstep = t.expand(batch, 1, L).to(device=device, dtype=torch.float32).clone()
        if pin_first:
            tstep[:, :, 0] = 0.0
        x_in = torch.cat([latents, latents], 0) if do_cfg else latents
        v = _velocity(transformer(x_in, tstep, embeds, encoder_attention_mask=masks,
                                  camera_conditions=raymap, chunk_plucker=plucker)).to(latents.device)
        stop_check()
        if do_cfg:
            v_uncond, v_cond = v.chunk(2)
            v = v_uncond + guidance_scale * (v_cond - v_uncond)
        latents = _euler_update(latents, v, t, sched, pin_first)
        if callback is not None:
            callback(i, sched.steps, latents)
    return latents


def sample_stage1_latent(transformer: VelocityModel, cond: Stage1Conditioning, *, steps: int = 60,
                         guidance_scale: float = 5.0, seed: int = 42, flow_shift: float = 9.8,
                         sampler: str = "flow_euler_ltx", callback: StepCallback | None = None,
                         interrupt: InterruptCheck | None = None) -> SanaWMLatent:
    """`sample_stage1` as the finished SANAWM_LATENT: the samples on CPU with the clip's frames, fps, path,
    prompt and the settings that made it (saved beside the video)."""
    samples = sample_stage1(transformer, cond, steps=steps, guidance_scale=guidance_scale, seed=seed,
                            flow_shift=flow_shift, sampler=sampler, callback=callback, interrupt=interrupt)
    return SanaWMLatent(samples=samples.cpu(), num_frames=cond.num_frames, fps=cond.fps, c2w=cond.c2w,
                        camera=cond.camera, prompt=cond.prompt,
                        generation={"seed": int(seed), "steps": int(steps), "cfg": float(guidance_scale),
                                    "sampler": sampler, "flow_shift": float(flow_shift)})


def _euler_update(latents: torch.Tensor, v: torch.Tensor, t: torch.Tensor, sched: FlowSchedule,
                  pin_first: bool) -> torch.Tensor:
    """One Euler step in float32, cast back to the latent dtype."""
    dtype = latents.dtype
    x = latents.to(torch.float32)
    if pin_first:
        # diffusers' per-token rule: sigma = t/1000 (not the schedule entry), next = largest sigma below it.
        sigma = t.to(torch.float32) / 1000
        dt = (sigma - next_sigma_below(sched.sigmas, sigma)).to(x.device)
        new = x[:, :, 1:] + dt * (-v[:, :, 1:].to(torch.float32))
        return torch.cat([latents[:, :, :1], new.to(dtype)], 2)
    idx = int((sched.timesteps == t).nonzero()[0])
    dt = (sched.sigmas[idx + 1] - sched.sigmas[idx]).to(x.device)
    return (x + dt * v.to(torch.float32)).to(dtype)
