"""`SanaWMLatent`: the one Stage-1 latent value (under ComfyUI, behind a core LATENT) every stage reads and returns.

The sampler returns it, the refiner takes and returns it, the decoders and the video writer read it. Besides
the tensor it carries what decoding and saving need to stay aligned with the camera path: how many pixel
frames the latent decodes to, how many leading pixel frames the decoder drops (the refiner's sink frame),
the fps, the prompt and the user's trajectory. It is frozen: ComfyUI caches node outputs, so a stage that
changes it returns a new value.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from .camera.types import CameraPath

LTX2_TEMPORAL_STRIDE = 8        # the LTX-2 VAE: L latent frames decode to 8(L-1)+1 pixel frames

NO_CLIP_INFO = ("a core node such as Load Latent dropped the SANA-WM clip info the latent carried")


def pixel_frames(latent_frames: int, temporal_stride: int = LTX2_TEMPORAL_STRIDE) -> int:
    """Pixel frames a latent of `latent_frames` frames decodes to (before any sink frame is dropped)."""
    return (int(latent_frames) - 1) * int(temporal_stride) + 1


@dataclass(frozen=True)
class SanaWMLatent:
    """`samples` (1,C,L,h,w); it decodes to `num_frames` = 8(L-1)+1 pixel frames, of which the first
    `drop_first_frames` are discarded (the refiner's sink frame: 1 after refining, 0 for Stage 1).
    `c2w` (num_frames,4,4) is aligned with the decoded frames before dropping; `camera` is the path it
    came from; `generation` holds the JSON-safe settings that made it (seed, steps, ...), saved beside
    the video."""

    samples: torch.Tensor
    num_frames: int
    fps: float = 16.0
    c2w: np.ndarray | None = None
    camera: CameraPath | None = None
    prompt: str = ""
    drop_first_frames: int = 0
    generation: dict[str, Any] = field(default_factory=dict)
    # (C+1,3) latent->RGB map fitted on the first frame (Stage 1), so the refiner can draw previews too
    preview_proj: torch.Tensor | None = None

    def with_clip_inputs(self, camera: CameraPath | None = None, fps: float = 0.0) -> "SanaWMLatent":
        """The latent as a node with optional `camera` / `fps` inputs sees it: the explicit inputs win (an
        `fps` > 0, then the camera's fps; the camera replaces the path), the carried values fill the rest, and
        the camera's poses stand in for poses the latent lost (`NO_CLIP_INFO`). fps 0 stays unknown."""
        if camera is not None and not isinstance(camera, CameraPath):
            raise ValueError(f"camera must be a SANA-WM camera path (SANAWM_CAMERA), got {type(camera).__name__}")
        c2w = self.c2w
        if c2w is None and camera is not None:
            if camera.num_frames < self.num_frames:
                raise ValueError(f"camera has {camera.num_frames} poses but the latent decodes to {self.num_frames} "
                                 "frames: connect the camera path the clip was generated with")
            c2w = np.asarray(camera.c2w)[:self.num_frames]
        cam = camera if camera is not None else self.camera
        if fps and float(fps) > 0:
            rate = float(fps)
        elif camera is not None:
            rate = float(camera.fps)
        else:
            rate = float(self.fps or (self.camera.fps if self.camera is not None else 0.0))
        return replace(self, c2w=c2w, camera=cam, fps=rate)

    def require_fps(self) -> float:
        """The latent's fps, or a ValueError naming the inputs that give it when it is unknown."""
        if not self.fps or self.fps <= 0:
            raise ValueError(f"the latent carries no frame rate ({NO_CLIP_INFO}): connect the camera path to "
                             "'camera' or set 'fps'")
        return float(self.fps)

    @property
    def refined(self) -> bool:
        """True once the sink-anchored refiner has run (its sink frame is then dropped at decode)."""
        return self.drop_first_frames > 0

    @property
    def stage(self) -> str:
        return "refined" if self.refined else "stage1"

    @property
    def output_frames(self) -> int:
        """Pixel frames the decoder keeps."""
        return self.num_frames - self.drop_first_frames

    def output_c2w(self) -> np.ndarray | None:
        """The poses of the frames the decoder keeps."""
        return None if self.c2w is None else np.asarray(self.c2w)[self.drop_first_frames:self.num_frames]

    def require_unrefined(self) -> None:
        """ValueError when the refiner already ran on this latent (it refines Stage-1 latents only)."""
        if self.refined:
            raise ValueError("latent was already refined; connect the Stage-1 sampler output instead")

    def with_refined(self, samples: torch.Tensor, sink_frames: int, **generation: Any) -> "SanaWMLatent":
        """The refiner's result: new `samples` whose first `sink_frames` pixel frames the decoder drops;
        `generation` entries (e.g. the refiner seed) join the saved settings."""
        self.require_unrefined()
        if tuple(samples.shape) != tuple(self.samples.shape):
            raise ValueError(f"refined samples must keep the latent's shape {tuple(self.samples.shape)}, "
                             f"got {tuple(samples.shape)}")
        return replace(self, samples=samples, drop_first_frames=int(sink_frames),
                       generation={**self.generation, **generation})


def require_latent(value: Any, name: str = "latent") -> SanaWMLatent:
    """`value` if it is a `SanaWMLatent`, else a ValueError naming the input and where a good one comes from."""
    if isinstance(value, SanaWMLatent):
        return value
    raise ValueError(f"{name} must be a SanaWMLatent (from sample_stage1_latent or the refiner), "
                     f"got {type(value).__name__}")
