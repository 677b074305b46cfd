"""`SanaWMLatent`: the value behind ComfyUI's `SANAWM_LATENT` (Stage-1 output, refiner input and output).

Besides the tensor it carries what decoding and saving need to stay aligned with the camera path: how
many pixel frames the latent decodes to, how many leading pixel frames the decoder must drop (the
refiner's sink frame), the fps and the user's trajectory.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch


@dataclass
class SanaWMLatent:
    """`samples` (1,C,L,h,w); it decodes to `num_frames` = 8(L-1)+1 pixel frames, of which the first
    `drop_first_frames` are discarded (1 after the sink-anchored refiner, else 0). `c2w` (num_frames,4,4)
    is aligned with the decoded frames before dropping."""

    samples: torch.Tensor
    num_frames: int
    fps: float = 16.0
    c2w: np.ndarray | None = None
    camera: Any = None
    drop_first_frames: int = 0
    stage: str = "stage1"
    prompt: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def output_frames(self) -> int:
        return self.num_frames - self.drop_first_frames

    def output_c2w(self) -> np.ndarray | None:
        """The poses of the frames the decoder keeps."""
        return None if self.c2w is None else np.asarray(self.c2w)[self.drop_first_frames:self.num_frames]

    def with_samples(self, samples: torch.Tensor, **changes: Any) -> "SanaWMLatent":
        return replace(self, samples=samples, **changes)
