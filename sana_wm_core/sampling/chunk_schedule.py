"""The staggered schedule of the chunk-causal sampler (`chunk_flow_euler`, NVlabs' `ChunkFlowEuler`).

The latent is cut into chunks (`model.config.chunk_starts`). Chunk i starts denoising at global step
`int(i * interval_k * steps)` and then walks the same shifted flow schedule as the bidirectional sampler,
one entry per global step; once its `steps` are done it stays at timestep 0 as clean context. Before its
start it is inactive (not fed to the model). Started chunks never stop being active, so the active set is
always a prefix of the chunks, and one global step is one model call over that prefix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..model.config import chunk_starts
from .schedule import FlowSchedule, flow_schedule

INACTIVE = -1.0


@dataclass(frozen=True)
class ChunkSchedule:
    """Chunks as (start, end) latent frames, their start steps, and the (chunks, global steps) timestep table.

    `table[i, g]` is chunk i's timestep at global step g: -1 before it starts, the flow schedule's
    timesteps while it denoises, 0 once it is finished.
    """

    chunks: tuple[tuple[int, int], ...]
    start_steps: tuple[int, ...]
    interval_k: float
    flow: FlowSchedule
    table: torch.Tensor

    @property
    def steps(self) -> int:
        return self.flow.steps

    @property
    def total_steps(self) -> int:
        return int(self.table.shape[1])

    @property
    def num_frames(self) -> int:
        return self.chunks[-1][1]

    def active(self, g: int) -> list[int]:
        """Indices of the chunks fed to the model at global step g (a prefix)."""
        return [i for i in range(len(self.chunks)) if float(self.table[i, g]) >= 0]

    def active_end(self, g: int) -> int:
        """End frame of the last active chunk at global step g (0 when nothing is active)."""
        act = self.active(g)
        return self.chunks[act[-1]][1] if act else 0

    def denoising(self, g: int) -> list[int]:
        """Chunks that take an Euler step at global step g (active and not yet finished)."""
        return [i for i in range(len(self.chunks)) if float(self.table[i, g]) > 0]

    def frame_timesteps(self, g: int) -> torch.Tensor:
        """(active_end,) float32 per-frame timesteps at global step g; frame 0 (the image) is always 0."""
        end = self.active_end(g)
        out = torch.zeros(end, dtype=torch.float32)
        for i in self.active(g):
            s, e = self.chunks[i]
            out[s:e] = self.table[i, g]
        if end:
            out[0] = 0.0
        return out

    def finished_end(self, g: int) -> int:
        """Frames final after global step g: frame 0 plus every chunk whose last step is <= g."""
        end = 1
        for i, (_, e) in enumerate(self.chunks):
            if self.start_steps[i] + self.steps - 1 <= g:
                end = e
            else:
                break
        return end


def chunk_bounds(num_frames: int, chunk_size: int, strategy: str = "first_chunk_plus_one") -> list[tuple[int, int]]:
    """(start, end) of every chunk; a short tail merges into the previous chunk (the last chunk grows)."""
    starts = chunk_starts(num_frames, chunk_size, strategy)
    return [(s, e) for s, e in zip(starts, starts[1:] + [num_frames])]


def first_chunk_frames(chunk_size: int, strategy: str = "first_chunk_plus_one") -> int:
    """Latent frames of a full first chunk (the image frame joins chunk 0 under first_chunk_plus_one)."""
    return chunk_starts(2 * chunk_size + 2, chunk_size, strategy)[1]   # the second start of a long clip


def chunk_schedule(num_frames: int, chunk_size: int, steps: int, flow_shift: float, *,
                   strategy: str = "first_chunk_plus_one", interval_k: Optional[float] = None) -> ChunkSchedule:
    """The schedule for `num_frames` latent frames; ValueError (naming the input) for a bad interval or length.

    interval_k: fraction of `steps` between consecutive chunk starts, in (0, 1]; None = 1/num_chunks, as
    the release's inference script uses (the last chunk starts after (n-1)/n of the steps).
    """
    if chunk_size is None or int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive number of latent frames, got {chunk_size}")
    need = first_chunk_frames(int(chunk_size), strategy)
    if num_frames < need:
        raise ValueError(f"the clip has {num_frames} latent frames, shorter than one chunk ({need} latent frames "
                         f"= {8 * (need - 1) + 1} video frames for chunk_size {chunk_size}); raise num_frames")
    chunks = chunk_bounds(num_frames, int(chunk_size), strategy)
    n = len(chunks)
    if interval_k is None:
        interval_k = 1.0 / n
    interval_k = float(interval_k)
    if not (0.0 < interval_k <= 1.0):
        raise ValueError(f"chunk_interval_k must be in (0, 1] (a fraction of the steps between chunk starts), "
                         f"got {interval_k}; use 0/None for the default 1/num_chunks")
    flow = flow_schedule(steps, flow_shift)
    starts = tuple(int(i * interval_k * flow.steps) for i in range(n))   # python float math, then truncate
    total = starts[-1] + flow.steps
    table = torch.full((n, total), INACTIVE, dtype=torch.float32)
    for i, s in enumerate(starts):
        table[i, s:s + flow.steps] = flow.timesteps
        table[i, s + flow.steps:] = 0.0
    return ChunkSchedule(chunks=tuple(chunks), start_steps=starts, interval_k=interval_k, flow=flow, table=table)
