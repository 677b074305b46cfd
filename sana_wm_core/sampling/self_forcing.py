"""`self_forcing`: the distilled streaming student's Stage-1 sampler (NVlabs' `SelfForcingFlowEulerCamCtrl`,
docs/autoregressive_spec.md §3.3 and §4).

The latent is cut into blocks of `frames_per_block` latent frames, the first one absorbing the remainder
([0, 4), [4, 7), ... for 3k+1 frames). Blocks are generated one after another: each walks the few-step sigma
list as given (no shift; the distilled model has CFG baked in, so there is one conditional call per step),
with the image frame held at t = 0 and copied back after every step. A finished block then gets one more
forward at t = 0 whose only product is the model's state after it (`DiTCache`): the GDN recurrences and
conv tails summarise the whole past, while the softmax blocks keep the keys/values of a window only: the
last `cached_blocks` blocks, of which the first (the "sink", block 0) is kept for good when `sink` is on.
RoPE and UCPE use absolute frame positions, so the windowed keys keep their places.

Noise is drawn once for the whole clip, exactly as the other samplers draw it (`initial_latents`). Time
and memory per block do not grow with the clip: the model only ever sees one block plus a bounded state.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import torch

from ..model.cache import DiTCache
from ..model.release import STREAM_SAMPLER
from ..model.variants import check_sampler_for_model
from ..runtime.host import Host
from .conditioning import Stage1Conditioning
from .schedule import FlowSchedule
from .steps import SamplingRun, cache_pass, euler_per_token, frame_timesteps, guidance_inputs, guided_velocity, initial_latents

log = logging.getLogger("sana_wm")

__all__ = ["STREAM_SAMPLER", "DEFAULT_SIGMAS", "StreamPlan", "stream_chunks", "kv_window", "sigma_schedule",
           "snap_stream_frames", "snap_stream_conditioning", "check_stream_model", "plan_streaming", "check_self_forcing",
           "self_forcing", "stream_stage1", "sample_streaming"]

DEFAULT_SIGMAS = (1.0, 0.96, 0.889, 0.727)   # the release's denoising_step_list 1000,960,889,727,0
DEFAULT_FRAMES_PER_BLOCK = 3
DEFAULT_CACHED_BLOCKS = 2
OPTIONS = ("sigmas", "frames_per_block", "cached_blocks", "sink")
VIDEO_FRAMES_PER_LATENT = 8                    # the LTX-2 VAE's temporal stride


@dataclass(frozen=True)
class StreamPlan:
    """The blocks as (start, end) latent frames, the sigma schedule and the softmax window rule."""

    chunks: tuple[tuple[int, int], ...]
    flow: FlowSchedule
    frames_per_block: int
    cached_blocks: int          # <= 0: every earlier block stays in the window
    sink: bool

    @property
    def starts(self) -> tuple[int, ...]:
        return tuple(s for s, _ in self.chunks)

    @property
    def forwards(self) -> int:
        """Model calls of the whole run: one per step per block, plus one cache pass per block that has a
        successor (the last block's state would be unused)."""
        return len(self.chunks) * (self.flow.steps + 1) - 1

    def window(self, c: int) -> list[int]:
        return kv_window(c, self.cached_blocks, self.sink)

    def window_frames(self, c: int) -> list[int]:
        """Latent frames whose softmax keys/values block c attends to besides its own."""
        return [f for j in self.window(c) for f in range(*self.chunks[j])]


def stream_chunks(num_frames: int, frames_per_block: int) -> list[tuple[int, int]]:
    """[0, b + r), [b + r, 2b + r), ... for b = frames_per_block and r = num_frames mod b (block 0 takes the
    remainder). ValueError when the clip is not longer than one block."""
    b = int(frames_per_block)
    if b < 1:
        raise ValueError(f"frames_per_block must be >= 1 latent frame, got {frames_per_block}")
    if num_frames <= b:
        raise ValueError(f"the clip has {num_frames} latent frames; streaming needs more than frames_per_block "
                         f"({b}): at least {b + 1} latent frames = {VIDEO_FRAMES_PER_LATENT * b + 1} video frames")
    first = b + num_frames % b
    return [(0, first)] + [(s, s + b) for s in range(first, num_frames, b)]


def kv_window(c: int, cached_blocks: int, sink: bool) -> list[int]:
    """Earlier blocks whose softmax keys/values block c sees (NVlabs' `_accumulate_softmax_kv_cache`): the last
    `cached_blocks` blocks; with the sink, block 0 always and counted inside that budget. <= 0: all of them."""
    if c <= 0:
        return []
    n = int(cached_blocks)
    if n <= 0:
        return list(range(c))
    if sink:
        s = max(c - n + 1, 0)
        if s > 0:
            return [0] + list(range(s, c))
    return list(range(max(c - n, 0), c))


def sigma_schedule(sigmas: Sequence[float]) -> FlowSchedule:
    """The sigma list used as given, a terminal 0 appended (a trailing 0 in the list is that terminal);
    timesteps = sigma * 1000 in float32, as diffusers' `set_timesteps(sigmas=...)` with shift 1 gives.
    ValueError unless it starts at 1 and strictly decreases through positive values."""
    try:
        vals = [float(s) for s in sigmas]
    except (TypeError, ValueError):
        raise ValueError(f"sigmas must be a list of numbers, got {sigmas!r}") from None
    if vals and vals[-1] == 0.0 and len(vals) > 1:
        vals = vals[:-1]
    if not vals or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"sigmas must be a non-empty list of finite numbers, got {list(sigmas)}; the release "
                         f"uses {list(DEFAULT_SIGMAS)}")
    if vals[0] != 1.0:
        raise ValueError(f"sigmas must start at 1.0 (pure noise), got {vals[0]} in {vals}; the release uses "
                         f"{list(DEFAULT_SIGMAS)}")
    bad = [i for i in range(1, len(vals)) if not vals[i] < vals[i - 1]]
    if bad or vals[-1] <= 0:
        raise ValueError(f"sigmas must strictly decrease and stay above 0 (a final 0 is implied), got {vals}; "
                         f"the release uses {list(DEFAULT_SIGMAS)}")
    sig = torch.tensor(vals, dtype=torch.float32)
    return FlowSchedule(sigmas=torch.cat([sig, torch.zeros(1)]), timesteps=sig * 1000, shift=1.0)


def snap_stream_frames(num_frames: int, frames_per_block: int = DEFAULT_FRAMES_PER_BLOCK,
                       temporal_stride: int = VIDEO_FRAMES_PER_LATENT) -> tuple[int, Optional[str]]:
    """(frames, note): the largest stride*b*k + 1 <= num_frames (24k + 1 for 3-frame blocks, 961 = 60 s),
    so every block after the first is one refiner block and one decoded chunk; the note says what changed
    (None when nothing did). ValueError when not even one block fits."""
    unit = int(temporal_stride) * int(frames_per_block)
    if num_frames < unit + 1:
        raise ValueError(f"num_frames {num_frames} is too short to stream: at least {unit + 1} frames "
                         f"({unit}k+1 frames for blocks of {frames_per_block} latent frames)")
    snapped = (int(num_frames) - 1) // unit * unit + 1
    if snapped == num_frames:
        return snapped, None
    return snapped, (f"SANA-WM streaming: using {snapped} frames instead of {num_frames} (streaming makes "
                     f"{unit}k+1 frames: one block of {frames_per_block} latent frames is {unit} video frames)")


def snap_stream_conditioning(cond: Stage1Conditioning, frames_per_block: int = DEFAULT_FRAMES_PER_BLOCK
                             ) -> tuple[Stage1Conditioning, Optional[str]]:
    """The conditioning cut to `snap_stream_frames` (camera tensors and path shortened), and the note."""
    frames, note = snap_stream_frames(cond.num_frames, frames_per_block, cond.temporal_stride)
    if note is None:
        return cond, None
    L = (frames - 1) // cond.temporal_stride + 1
    c2w = None if cond.c2w is None else cond.c2w[:frames]
    return dataclasses.replace(cond, num_frames=frames, raymap=cond.raymap[:L],
                               chunk_plucker=cond.chunk_plucker[:, :L], c2w=c2w), note


def check_stream_model(transformer: Any, frames_per_block: int, *, asked_by: Optional[str] = None,
                       instead: Any = None) -> None:
    """ValueError naming the fix unless the DiT is the streaming release (`model.variants`: the bidirectional
    model and the chunk-causal teacher are refused) and frames_per_block is its chunk size. asked_by / instead:
    as in `check_sampler_for_model` (a node names itself and its alternatives)."""
    check_sampler_for_model(transformer, STREAM_SAMPLER, asked_by=asked_by, instead=instead)
    chunk = getattr(getattr(transformer, "config", None), "chunk_size", None)
    if int(frames_per_block) != int(chunk):
        raise ValueError(f"frames_per_block {frames_per_block} is not this checkpoint's chunk size ({chunk} latent "
                         f"frames); set frames_per_block to {chunk}")


def plan_streaming(transformer: Any, cond: Stage1Conditioning, *, sigmas: Sequence[float] = DEFAULT_SIGMAS,
                   frames_per_block: int = DEFAULT_FRAMES_PER_BLOCK, cached_blocks: int = DEFAULT_CACHED_BLOCKS,
                   sink: bool = True) -> StreamPlan:
    """Every check of a streaming run (model variant, sigmas, block size, window, length); no model call."""
    flow = sigma_schedule(sigmas)
    if isinstance(cached_blocks, bool) or not isinstance(cached_blocks, int):
        raise ValueError(f"cached_blocks must be an integer (blocks of softmax keys kept; <= 0 keeps all), "
                         f"got {cached_blocks!r}")
    check_stream_model(transformer, frames_per_block)
    chunks = stream_chunks(cond.latent_frames, frames_per_block)
    return StreamPlan(chunks=tuple(chunks), flow=flow, frames_per_block=int(frames_per_block),
                      cached_blocks=int(cached_blocks), sink=bool(sink))


def check_self_forcing(transformer: Any, cond: Stage1Conditioning, guidance_scale: float,
                       options: Optional[dict] = None) -> StreamPlan:
    """`plan_streaming` for a registry run (cfg and the sampler options as a node passes them): CFG must be off."""
    if guidance_scale > 1.0:
        raise ValueError(f"sampler {STREAM_SAMPLER} runs without classifier-free guidance (the distilled model has "
                         f"it built in); set cfg to 1.0 (got {guidance_scale})")
    o = options or {}
    return plan_streaming(transformer, cond, sigmas=o.get("sigmas") or DEFAULT_SIGMAS,
                          frames_per_block=o.get("frames_per_block", DEFAULT_FRAMES_PER_BLOCK),
                          cached_blocks=o.get("cached_blocks", DEFAULT_CACHED_BLOCKS), sink=o.get("sink", True))


def _plan_from_run(model, cond: Stage1Conditioning, run: SamplingRun) -> StreamPlan:
    return check_self_forcing(model, cond, run.guidance_scale if run.do_cfg else 1.0, run.options)


def _blocks(model, cond: Stage1Conditioning, run: SamplingRun, plan: StreamPlan,
            latents: torch.Tensor) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Generates the blocks in order into `latents` (the whole clip's noise); yields (start, end, block)."""
    inp = guidance_inputs(cond, run)
    pinned = run.pinned.to(run.device)
    starts = plan.starts
    steps = plan.flow.steps
    total = len(plan.chunks) * steps
    state: Optional[DiTCache] = None             # after every finished block (softmax K/V: the window's)
    for c, (s, e) in enumerate(plan.chunks):
        cache = None if state is None else state.keep_kv_frames(plan.window_frames(c))
        x = latents[:, :, s:e]
        pin = pinned[s:e]
        cam, plk = inp.raymap[:, s:e], inp.plucker[:, :, s:e]
        for i, t in enumerate(plan.flow.timesteps):
            tstep = frame_timesteps(t, e - s, inp.batch, pin, run.device)
            v = guided_velocity(model, x, tstep, inp, run, camera_conditions=cam, chunk_plucker=plk, cache=cache,
                                chunk_starts=starts)
            x = euler_per_token(x, v, t, plan.flow.sigmas, pin)   # pinned frames are copied back unchanged
            latents[:, :, s:e] = x
            run.step_done(c * steps + i, total, latents, cond, preview_frames=e if i == steps - 1 else s)
        state = cache_pass(model, x, s, e, inp, run, cache, starts) if c + 1 < len(plan.chunks) else None
        yield s, e, x


def self_forcing(model, cond: Stage1Conditioning, run: SamplingRun) -> torch.Tensor:
    """The registry loop (`run.options`: sigmas, frames_per_block, cached_blocks, sink). `run.steps` and
    `run.flow_shift` are not used: the sigma list is the schedule."""
    plan = _plan_from_run(model, cond, run)
    latents = initial_latents(cond, run)
    for _ in _blocks(model, cond, run, plan, latents):
        pass
    return latents


def _run_for(transformer: Any, cond: Stage1Conditioning, plan: StreamPlan, seed: int, hooks: Optional[Host],
             dtype, device):
    from .stage1 import _Hosts, model_dtype_device, plan_stage1   # stage1 -> registry -> this module

    p = plan_stage1(cond, steps=plan.flow.steps, guidance_scale=1.0, seed=seed, flow_shift=1.0,
                    sampler=STREAM_SAMPLER)
    m_dtype, m_device = model_dtype_device(transformer) if isinstance(transformer, torch.nn.Module) else (
        torch.float32, torch.device("cpu"))
    return SamplingRun(steps=p.steps, guidance_scale=1.0, seed=p.seed, flow_shift=1.0, do_cfg=False,
                       pinned=p.pinned, dtype=dtype or m_dtype,
                       device=torch.device(device) if device is not None else m_device,
                       host=_Hosts(hooks, None))


def stream_stage1(transformer: Any, cond: Stage1Conditioning, *, sigmas: Sequence[float] = DEFAULT_SIGMAS,
                  frames_per_block: int = DEFAULT_FRAMES_PER_BLOCK, cached_blocks: int = DEFAULT_CACHED_BLOCKS,
                  sink: bool = True, seed: int = 42, hooks: Optional[Host] = None,
                  dtype: Optional[torch.dtype] = None, device=None) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Stream the Stage-1 latent block by block: an iterator of `(start, end, latents)` in order, `latents`
    the finished (1, C, end - start, h, w) block in the model dtype on the model device.

    transformer: the streaming DiT (or a `Stage1Model` holding it). The clip is first snapped to
    `snap_stream_frames` (a logged note says so). hooks: a `runtime.host.Host` (progress per step with a
    preview of the finished blocks, cancel before every DiT block). Every input is checked here, before
    the first block is asked for.
    """
    transformer = getattr(transformer, "transformer", transformer)
    cond, note = snap_stream_conditioning(cond, frames_per_block)
    if note:
        log.warning(note)
    plan = plan_streaming(transformer, cond, sigmas=sigmas, frames_per_block=frames_per_block,
                          cached_blocks=cached_blocks, sink=sink)
    run = _run_for(transformer, cond, plan, seed, hooks, dtype, device)

    @torch.no_grad()
    def generate() -> Iterator[tuple[int, int, torch.Tensor]]:
        latents = initial_latents(cond, run)
        yield from _blocks(transformer, cond, run, plan, latents)

    return generate()


def sample_streaming(transformer: Any, cond: Stage1Conditioning, **kwargs: Any) -> torch.Tensor:
    """`stream_stage1` run to the end: the whole (1, C, L, h, w) latent of the (snapped) clip."""
    return torch.cat([x for _, _, x in stream_stage1(transformer, cond, **kwargs)], dim=2)
