"""What the Stage-1 DiT carries from one window of latent frames to the next (the chunk-causal /
streaming seam).

A chunk-causal model's output for frames [s, e) depends on earlier frames only through a small state
per layer: the forward GDN recurrence (main branch with its normaliser, camera branch), the last
K-1 frames read by each key short convolution, the last point_conv frame read by the FFN's temporal
conv, and the softmax keys/values of the earlier frames. `BlockState` holds one block's, `DiTCache`
all blocks' plus the absolute position of the next frame (RoPE and UCPE use absolute positions).

States are immutable values: a forward with `cache=` reads one and, with `output_cache=True`, returns
a new one; the old one stays valid (denoising steps reuse it, a save pass replaces it). Carrying is
exact when every window ends at a chunk end (the reverse scans and future taps never cross one).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Optional, Sequence

import torch

from .kernels.gdn import GDNState

__all__ = ["GDNState", "KVState", "BlockState", "DiTCache"]


def _field_bytes(value) -> int:
    """Bytes held by one state field: a tensor, a tuple of tensors (GDNState), a KVState, or None."""
    if value is None:
        return 0
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, KVState):
        return _field_bytes(value.k) + _field_bytes(value.v)
    return sum(_field_bytes(t) for t in value)


@dataclass(frozen=True)
class KVState:
    """Softmax keys/values of earlier frames, as the attention saw them (after RoPE / UCPE).

    k, v: (B, H, len(frames) * tokens_per_frame, D); frames: the absolute frame index of each held frame,
    in order (not necessarily contiguous: a streaming cache keeps a sink chunk plus the recent ones)."""

    k: torch.Tensor
    v: torch.Tensor
    frames: tuple

    @property
    def tokens_per_frame(self) -> int:
        return self.k.shape[2] // max(1, len(self.frames))

    def keep(self, frames: Sequence[int]) -> "KVState":
        """Only the given held frames (in the order held); e.g. sink + the last `cached_blocks` chunks."""
        want = set(int(f) for f in frames)
        missing = want - set(self.frames)
        if missing:
            raise ValueError(f"KVState.keep: frames {sorted(missing)} are not held (held: {list(self.frames)})")
        idx = [i for i, f in enumerate(self.frames) if f in want]
        if len(idx) == len(self.frames):
            return self
        S = self.tokens_per_frame
        tok = torch.tensor([i * S + s for i in idx for s in range(S)], device=self.k.device)
        return KVState(self.k.index_select(2, tok), self.v.index_select(2, tok), tuple(self.frames[i] for i in idx))

    def appended(self, k: torch.Tensor, v: torch.Tensor, frames: Sequence[int]) -> "KVState":
        """A new state: these keys/values concatenated after the held ones (k, v are already the
        concatenation when they come back from an attention call with `output_final_state`)."""
        return KVState(k, v, tuple(self.frames) + tuple(int(f) for f in frames))


@dataclass(frozen=True)
class BlockState:
    """One block's carried state; None fields: nothing carried (first window, or the block lacks the layer)."""

    gdn: Optional[GDNState] = None  # main-branch GDN (numerator + normaliser)
    gdn_cam: Optional[GDNState] = None  # camera-branch GDN (numerator only)
    conv_k: Optional[torch.Tensor] = None  # (B, K-1, S, C) last pre-conv main keys
    conv_k_cam: Optional[torch.Tensor] = None  # (B, K-1, S, C) last pre-conv camera keys
    kv: Optional[KVState] = None  # softmax blocks: main-branch keys/values
    kv_cam: Optional[KVState] = None  # softmax blocks: camera-branch keys/values
    ffn: Optional[torch.Tensor] = None  # (B, t_kernel//2, S, C) last point_conv frames

    @property
    def nbytes(self) -> int:
        """Tensor bytes this block carries (what bounds a stream's memory)."""
        return sum(_field_bytes(getattr(self, f.name)) for f in fields(self))


@dataclass(frozen=True)
class DiTCache:
    """Every block's state after the frames [0, next_frame) (or the held subset of them).

    `next_frame` is the absolute index of the first frame of the next window; `chunk_starts`, when set,
    are the absolute chunk starts of the whole video (the window's chunk ids come from them)."""

    blocks: tuple = ()
    next_frame: int = 0
    chunk_starts: Optional[tuple] = None
    meta: dict = field(default_factory=dict, compare=False)

    @classmethod
    def empty(cls, chunk_starts: Optional[Sequence[int]] = None) -> "DiTCache":
        """The state before frame 0."""
        return cls(chunk_starts=None if chunk_starts is None else tuple(int(s) for s in chunk_starts))

    @property
    def nbytes(self) -> int:
        """Tensor bytes of every block's carried state: flat once a streaming window is full."""
        return sum(b.nbytes for b in self.blocks)

    def block(self, i: int) -> BlockState:
        return self.blocks[i] if i < len(self.blocks) else BlockState()

    def keep_kv_frames(self, frames: Sequence[int]) -> "DiTCache":
        """The same cache with the softmax K/V trimmed to `frames` (GDN and conv states are unchanged:
        a recurrent state summarises everything before it)."""
        blocks = tuple(replace(b, kv=None if b.kv is None else b.kv.keep(frames),
                               kv_cam=None if b.kv_cam is None else b.kv_cam.keep(frames)) for b in self.blocks)
        return replace(self, blocks=blocks)
