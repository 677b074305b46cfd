"""The bidirectional flow-matching Euler loops: `flow_euler_ltx` (the reference default) and `flow_euler`.

Both denoise every frame at once with the shifted flow schedule and CFG batched as [uncond, cond].
`flow_euler_ltx` steps with diffusers' per-token rule (sigma = t/1000, next = the largest schedule sigma
strictly below it), as the LTX pipeline the reference uses; `flow_euler` takes the scheduler's own steps.
Pinned frames (by default frame 0 for `flow_euler_ltx`, none for `flow_euler`) get timestep 0 and no step.
"""
from __future__ import annotations

import torch

from .conditioning import Stage1Conditioning
from .schedule import flow_schedule
from .steps import (SamplingRun, euler_per_token, euler_scheduler_step, frame_timesteps, guidance_inputs,
                    guided_velocity, initial_latents)


def _denoise(model, cond: Stage1Conditioning, run: SamplingRun, per_token: bool) -> torch.Tensor:
    sched = flow_schedule(run.steps, run.flow_shift)
    latents = initial_latents(cond, run)
    inp = guidance_inputs(cond, run)
    L = latents.shape[2]
    for i, t in enumerate(sched.timesteps):
        tstep = frame_timesteps(t, L, inp.batch, run.pinned, run.device)
        v = guided_velocity(model, latents, tstep, inp, run)
        if per_token:
            latents = euler_per_token(latents, v, t, sched.sigmas, run.pinned)
        else:
            latents = euler_scheduler_step(latents, v, i, sched, run.pinned)
        run.step_done(i, sched.steps, latents, cond)
    return latents


def flow_euler_ltx(model, cond: Stage1Conditioning, run: SamplingRun) -> torch.Tensor:
    return _denoise(model, cond, run, per_token=True)


def flow_euler(model, cond: Stage1Conditioning, run: SamplingRun) -> torch.Tensor:
    return _denoise(model, cond, run, per_token=False)
