"""The Stage-1 flow-matching sigma schedule, reproduced number for number.

The reference builds diffusers' `FlowMatchEulerDiscreteScheduler(shift)` and calls `set_timesteps(steps)`.
That path shifts the endpoint twice (the constructor shifts the 1000-step grid, `set_timesteps` shifts the
linspace between its first and last value again) and mixes float32 (constructor) with float64 (linspace)
arithmetic. Matching those roundings is what makes our latents equal the oracle's, so this module computes
the same values with the same dtypes, without depending on diffusers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NUM_TRAIN_TIMESTEPS = 1000


@dataclass(frozen=True)
class FlowSchedule:
    """`sigmas` has `steps + 1` float32 entries ending in 0; `timesteps` = sigmas[:-1] * 1000 (float32)."""

    sigmas: torch.Tensor
    timesteps: torch.Tensor
    shift: float

    @property
    def steps(self) -> int:
        return int(self.timesteps.shape[0])


def _shift_f32(shift: float, s: torch.Tensor) -> torch.Tensor:
    # Evaluated as float32 tensor arithmetic with python-float coefficients, like the scheduler constructor.
    return shift * s / (1 + (shift - 1) * s)


def flow_schedule(steps: int, shift: float) -> FlowSchedule:
    """Sigmas/timesteps for `steps` Euler steps with flow shift `shift` (diffusers-identical values)."""
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not np.isfinite(shift) or shift <= 0:
        raise ValueError(f"flow_shift must be a positive number, got {shift}")
    steps = int(steps)
    n = NUM_TRAIN_TIMESTEPS
    # Constructor grid: only its two ends matter for set_timesteps.
    grid = torch.from_numpy(np.array([n, 1], dtype=np.float32)) / n
    grid = _shift_f32(float(shift), grid)
    sigma_max, sigma_min = grid[0].item(), grid[1].item()
    lin = np.linspace(sigma_max * n, sigma_min * n, steps) / n          # float64
    sig = shift * lin / (1 + (shift - 1) * lin)                        # float64, second shift
    sig = torch.from_numpy(sig).to(torch.float32)
    timesteps = sig * n
    sigmas = torch.cat([sig, torch.zeros(1, dtype=torch.float32)])
    return FlowSchedule(sigmas=sigmas, timesteps=timesteps, shift=float(shift))


def next_sigma_below(sigmas: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Largest schedule sigma strictly below `sigma - 1e-6` (0 if none): the per-token step target."""
    lower = sigmas[sigmas < sigma - 1e-6]
    return lower.max() if lower.numel() else torch.zeros((), dtype=sigmas.dtype)
