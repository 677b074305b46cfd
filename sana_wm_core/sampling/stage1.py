"""Stage-1 sampling entry points: `plan_stage1` validates the settings and tells the caller the batch and
latent shape before any model is loaded; `run_stage1` runs the planned sampler from the registry;
`sample_stage1` does both.

Noise is one `torch.randn` over the whole latent from a CPU generator seeded with `seed`, in the model
dtype, exactly as diffusers' pipeline draws it. Progress and cancel go through a `runtime.host.Host`
(per step, and per DiT block inside our transformer); `callback(step, total, latents)` and
`interrupt()` (return True, or raise, to stop) remain as plain-callable conveniences.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import torch

from ..latent import SanaWMLatent
from ..model.variants import check_sampler_for_model
from ..runtime.host import CallbackHost, Host, Interrupted
from .conditioning import Stage1Conditioning
from .registry import SAMPLERS, get_sampler
from .steps import InterruptCheck, SamplingRun, StepCallback, initial_noise

__all__ = ["SAMPLERS", "SamplingInterrupted", "Stage1Plan", "plan_stage1", "run_stage1", "sample_stage1",
           "initial_noise", "model_dtype_device", "check_sampling_args"]


class SamplingInterrupted(Interrupted):
    """Raised when the interrupt callback asks the loop to stop."""


class VelocityModel(Protocol):
    def __call__(self, hidden_states: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                 encoder_attention_mask: torch.Tensor | None = None, camera_conditions: torch.Tensor | None = None,
                 chunk_plucker: torch.Tensor | None = None): ...


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


@dataclass(frozen=True)
class Stage1Plan:
    """Validated settings of one Stage-1 run, and what the caller must provide memory for."""

    sampler: str
    steps: int
    guidance_scale: float
    seed: int
    flow_shift: float
    do_cfg: bool
    pinned: torch.Tensor  # (L,) bool
    latent_shape: tuple  # (1, C, L, h, w) of the result
    options: dict = field(default_factory=dict)

    @property
    def batch(self) -> int:
        """Rows of every model call (CFG batches [uncond, cond])."""
        return 2 if self.do_cfg else 1

    @property
    def model_input_shape(self) -> tuple:
        return (self.batch,) + tuple(self.latent_shape[1:])


def check_sampling_args(cond: Stage1Conditioning, steps: int, guidance_scale: float, sampler: str) -> bool:
    """ValueError for a bad sampler / steps / cfg / conditioning (before any model work); True when CFG runs."""
    get_sampler(sampler)
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not (guidance_scale == guidance_scale) or guidance_scale < 0:
        raise ValueError(f"guidance_scale (cfg) must be a number >= 0, got {guidance_scale}")
    cond.validate()
    do_cfg = guidance_scale > 1.0
    if do_cfg and cond.negative_embeds is None:
        raise ValueError("cfg > 1 needs a negative prompt embedding; encode one or set cfg to 1.0")
    return do_cfg


def _pin_mask(cond: Stage1Conditioning, pinned, default: bool) -> torch.Tensor:
    """(L,) bool mask of the frames held at the image latent; the sampler's default when `pinned` is None."""
    L = cond.latent_frames
    n_img = int(cond.image_latent.shape[2])
    if pinned is None:
        mask = torch.zeros(L, dtype=torch.bool)
        if default:
            mask[:n_img] = True
        return mask
    mask = torch.as_tensor(pinned)
    if mask.dtype != torch.bool or tuple(mask.shape) != (L,):
        raise ValueError(f"pinned must be a bool mask with one entry per latent frame ({L}), got "
                         f"{tuple(mask.shape)} {mask.dtype}")
    if bool(mask[n_img:].any()):
        raise ValueError(f"pinned marks frames {mask[n_img:].nonzero().flatten().add(n_img).tolist()}, but the "
                         f"image latent covers only the first {n_img} latent frame(s)")
    return mask


def plan_stage1(cond: Stage1Conditioning, *, steps: int = 60, guidance_scale: float = 5.0, seed: int = 42,
                flow_shift: float = 9.8, sampler: str = "flow_euler_ltx", pinned: Sequence[bool] | None = None,
                **options: Any) -> Stage1Plan:
    """Checks every setting (cheap, no model) and returns the plan `run_stage1` executes."""
    do_cfg = check_sampling_args(cond, steps, guidance_scale, sampler)
    spec = get_sampler(sampler)
    unknown = set(options) - set(spec.options)
    if unknown:
        raise ValueError(f"sampler {sampler!r} takes no setting(s) {sorted(unknown)}"
                         + (f"; it takes {list(spec.options)}" if spec.options else ""))
    return Stage1Plan(sampler=sampler, steps=int(steps), guidance_scale=float(guidance_scale), seed=int(seed),
                      flow_shift=float(flow_shift), do_cfg=do_cfg,
                      pinned=_pin_mask(cond, pinned, spec.pins_image_frames),
                      latent_shape=tuple(cond.latent_shape), options=dict(options))


class _Hosts:
    """A host that forwards to an optional host and the legacy interrupt predicate."""

    def __init__(self, host: Host | None, interrupt: InterruptCheck | None) -> None:
        self._host = host
        self._legacy = CallbackHost(interrupt=interrupt, error=SamplingInterrupted) if interrupt else None

    def progress(self, done, total, preview=None) -> None:
        if self._host is not None:
            self._host.progress(done, total, preview)

    def check_interrupt(self) -> None:
        if self._host is not None:
            self._host.check_interrupt()
        if self._legacy is not None:
            self._legacy.check_interrupt()


@torch.no_grad()
def run_stage1(transformer: VelocityModel, cond: Stage1Conditioning, plan: Stage1Plan, *,
               host: Host | None = None, callback: StepCallback | None = None,
               interrupt: InterruptCheck | None = None, dtype: torch.dtype | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Runs a plan from `plan_stage1`; returns (1,C,L,h,w) in the model dtype on the model device. The sampler
    must be one the model's release runs with (`model.variants`), checked before any model call."""
    check_sampler_for_model(transformer, plan.sampler)
    m_dtype, m_device = model_dtype_device(transformer) if isinstance(transformer, torch.nn.Module) else (
        torch.float32, torch.device("cpu"))
    run = SamplingRun(steps=plan.steps, guidance_scale=plan.guidance_scale, seed=plan.seed,
                      flow_shift=plan.flow_shift, do_cfg=plan.do_cfg, pinned=plan.pinned,
                      dtype=dtype or m_dtype, device=torch.device(device) if device is not None else m_device,
                      host=_Hosts(host, interrupt), callback=callback, options=dict(plan.options))
    return get_sampler(plan.sampler).loop(transformer, cond, run)


def sample_stage1(transformer: VelocityModel, cond: Stage1Conditioning, *, steps: int = 60,
                  guidance_scale: float = 5.0, seed: int = 42, flow_shift: float = 9.8,
                  sampler: str = "flow_euler_ltx", callback: StepCallback | None = None,
                  interrupt: InterruptCheck | None = None, dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None, host: Host | None = None,
                  pinned: Sequence[bool] | None = None, **options: Any) -> torch.Tensor:
    """Denoise the Stage-1 latent; returns (1,C,L,h,w) in the model dtype on the model device."""
    plan = plan_stage1(cond, steps=steps, guidance_scale=guidance_scale, seed=seed, flow_shift=flow_shift,
                       sampler=sampler, pinned=pinned, **options)
    return run_stage1(transformer, cond, plan, host=host, callback=callback, interrupt=interrupt, dtype=dtype,
                      device=device)


def stage1_latent(cond: Stage1Conditioning, samples: torch.Tensor, plan: Stage1Plan) -> SanaWMLatent:
    """The finished `SanaWMLatent` of a planned run: the samples on CPU with the clip's frames, fps, path,
    prompt and the settings that made it (saved beside the video)."""
    return SanaWMLatent(samples=samples.cpu(), num_frames=cond.num_frames, fps=cond.fps, c2w=cond.c2w,
                        camera=cond.camera, prompt=cond.prompt,
                        generation={"seed": int(plan.seed), "steps": int(plan.steps),
                                    "cfg": float(plan.guidance_scale), "sampler": plan.sampler,
                                    "flow_shift": float(plan.flow_shift), **plan.options},
                        preview_proj=cond.preview_proj)


def sample_stage1_latent(transformer: VelocityModel, cond: Stage1Conditioning, *, steps: int = 60,
                         guidance_scale: float = 5.0, seed: int = 42, flow_shift: float = 9.8,
                         sampler: str = "flow_euler_ltx", host: Host | None = None,
                         callback: StepCallback | None = None, interrupt: InterruptCheck | None = None,
                         **options: Any) -> SanaWMLatent:
    """`sample_stage1` returning the finished `SanaWMLatent` (plan, run, then `stage1_latent`)."""
    plan = plan_stage1(cond, steps=steps, guidance_scale=guidance_scale, seed=seed, flow_shift=flow_shift,
                       sampler=sampler, **options)
    return stage1_latent(cond, run_stage1(transformer, cond, plan, host=host, callback=callback,
                                          interrupt=interrupt), plan)
