"""The one chunk planner: how a run of latent frames is cut into consecutive chunks.

Used by the chunk-causal DiT (`model/config.py`: which frames share a chunk), the refiner (which frames
each window refines) and the chunk-causal / streaming samplers (which frames each step denoises).
"""
from __future__ import annotations

from typing import Optional, Sequence


def plan_chunks(num_frames: int, size: int, *, start: int = 0, first: Optional[int] = None,
                merge_short_tail: bool = False) -> list[tuple[int, int]]:
    """`[begin, end)` ranges covering frames [start, num_frames), in order.

    size: frames per chunk; first: frames of the first chunk (default `size`; the DiT's
    `first_chunk_plus_one` split uses size + 1 so the image frame joins chunk 0); merge_short_tail: a last
    chunk shorter than `size` joins the previous one (the DiT) instead of standing alone (the refiner)."""
    if int(size) < 1:
        raise ValueError(f"chunk size must be >= 1 latent frame, got {size}")
    first = int(size) if first is None else int(first)
    if first < 1:
        raise ValueError(f"first chunk size must be >= 1 latent frame, got {first}")
    bounds, s = [], int(start)
    while s < num_frames:
        e = min(s + (first if not bounds else int(size)), num_frames)
        bounds.append((s, e))
        s = e
    if merge_short_tail and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < size:
        tail = bounds.pop()
        bounds[-1] = (bounds[-1][0], tail[1])
    return bounds


def chunk_ids_from_starts(num_frames: int, starts: Sequence[int]) -> list[int]:
    """Chunk index of every frame in [0, num_frames) given the chunks' start frames (0 must be one)."""
    starts = sorted(int(s) for s in starts)
    if not starts or starts[0] != 0:
        raise ValueError(f"chunk starts must begin at frame 0, got {list(starts)}")
    ids, c = [], -1
    for f in range(num_frames):
        while c + 1 < len(starts) and f >= starts[c + 1]:
            c += 1
        ids.append(c)
    return ids
