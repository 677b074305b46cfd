"""`Stage1Conditioning`: everything the Stage-1 sampler needs, built once by the image-to-video step.

Under ComfyUI the pack's nodes rebuild it from core (positive, negative, latent); keeping it a plain dataclass
of CPU tensors means the sampler, the refiner and the saver can all read what the clip was conditioned on
(frames, fps, path).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..camera.geometry import RAYMAP_WIDTH
from ..camera.types import CameraPath


@dataclass
class Stage1Conditioning:
    """Prompt embeddings, the first-frame latent and the camera tensors for one clip.

    Shapes (B = 1): `prompt_embeds` (1,1,T,D), `prompt_mask` (1,T); the negative pair likewise (may be None
    when only guidance-free sampling is wanted); `image_latent` (1,C,1,h,w), already normalised with the VAE's
    latent statistics; `raymap` (L,20); `chunk_plucker` (6*stride_t, L, h, w). `c2w` is the snapped user path
    (F,4,4) the clip follows (for overlays and the saved JSON), `num_frames` = F = 8(L-1)+1.
    `preview_proj` (C+1,3) maps latent channels to RGB for step previews (`fit_latent_rgb`), None = no preview.
    `chi_prompt` is the instruction prefix the prompt was encoded with (checked against the model's release).
    """

    prompt_embeds: torch.Tensor
    prompt_mask: torch.Tensor
    negative_embeds: torch.Tensor | None
    negative_mask: torch.Tensor | None
    image_latent: torch.Tensor
    raymap: torch.Tensor
    chunk_plucker: torch.Tensor
    num_frames: int
    height: int
    width: int
    fps: float = 16.0
    c2w: np.ndarray | None = None
    camera: CameraPath | None = None
    prompt: str = ""
    temporal_stride: int = 8
    preview_proj: torch.Tensor | None = None
    chi_prompt: tuple[str, ...] = ()

    @property
    def latent_frames(self) -> int:
        return (self.num_frames - 1) // self.temporal_stride + 1

    @property
    def latent_shape(self) -> tuple[int, int, int, int, int]:
        """(1, C, L, h, w) of the latent the sampler produces."""
        _, c, _, h, w = self.image_latent.shape
        return (1, int(c), self.latent_frames, int(h), int(w))

    def check_prefix(self, release_chi_prompt: tuple[str, ...]) -> None:
        """ValueError when the prompt was encoded with another instruction prefix than the model's release
        config.yaml gives (an empty tuple on either side = unknown, not checked)."""
        if self.chi_prompt and release_chi_prompt and tuple(self.chi_prompt) != tuple(release_chi_prompt):
            raise ValueError(
                "the prompt was encoded with another instruction prefix (chi_prompt) than this model's release "
                "config.yaml sets; connect the model to SANA-WM Image To Video's 'model' input so the prompt is "
                "encoded with the release's prefix")

    def validate(self) -> None:
        """Raise ValueError naming the inconsistent field before any model runs."""
        if self.num_frames < 1 or (self.num_frames - 1) % self.temporal_stride:
            raise ValueError(f"num_frames must be {self.temporal_stride}k+1, got {self.num_frames}")
        if self.image_latent.ndim != 5 or self.image_latent.shape[0] != 1 or self.image_latent.shape[2] != 1:
            raise ValueError(f"image_latent must be (1,C,1,h,w), got {tuple(self.image_latent.shape)}")
        L = self.latent_frames
        if tuple(self.raymap.shape) != (L, RAYMAP_WIDTH):
            raise ValueError(f"raymap must be ({L},{RAYMAP_WIDTH}) for {self.num_frames} frames, got {tuple(self.raymap.shape)}")
        h, w = self.image_latent.shape[-2:]
        if self.chunk_plucker.ndim != 4 or tuple(self.chunk_plucker.shape[1:]) != (L, h, w):
            raise ValueError(f"chunk_plucker must be (C,{L},{h},{w}), got {tuple(self.chunk_plucker.shape)}")
        if self.prompt_embeds.ndim != 4 or self.prompt_mask.ndim != 2:
            raise ValueError("prompt_embeds must be (1,1,T,D) and prompt_mask (1,T)")
        if (self.negative_embeds is None) != (self.negative_mask is None):
            raise ValueError("negative_embeds and negative_mask must be given together")
