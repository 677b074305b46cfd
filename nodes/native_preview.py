"""Latent previews from core samplers (KSampler, SamplerCustomAdvanced) on the SANA-WM MODEL.

ComfyUI's Latent2RGB previewer (latent_preview.py, 0.3.75 and current) maps a latent to RGB with the fixed
`latent_rgb_factors` of the model's latent format, after the format's `latent_rgb_factors_reshape`. SANA-WM has
no fixed factors: its preview map is fitted per clip on the first frame (`sana_wm_core.sampling.preview.
fit_latent_rgb`, done by Image To Video), and the pack's own samplers draw `preview_rgb` with it. So here:
- SANA-WM Image To Video puts the clip's fitted map into its conditioning under `PREVIEW_KEY`;
- `SanaWMBaseModel.extra_conds` (run by the sampler before its first step) hands it to the latent format;
- the reshape hook draws the pack's own picture (`preview_rgb`: evenly spaced frames side by side) as RGB,
  and the factors pass those 3 channels through unchanged, so core and pack previews are the same picture.
One home for the map: the fit; nothing here holds numbers of its own.
"""
from __future__ import annotations

import functools
import inspect
from typing import Optional

import torch

from ..sana_wm_core.sampling.preview import preview_rgb

PREVIEW_KEY = "sanawm_preview_proj"
# Latent2RGB's factors after the reshape hook already produced RGB: each channel to itself.
RGB_PASS_THROUGH = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


@functools.lru_cache(maxsize=1)
def reshape_hook_supported() -> bool:
    """True when ComfyUI's Latent2RGB previewer applies `latent_rgb_factors_reshape` (0.3.75 and current do;
    older releases did not, and 3-channel factors on the 128-channel latent would fail every step there)."""
    try:
        import latent_preview
    except Exception:  # noqa: BLE001 - outside a ComfyUI process there is no previewer to feed
        return False
    return "latent_rgb_factors_reshape" in inspect.signature(latent_preview.Latent2RGBPreviewer.__init__).parameters


class ClipPreview:
    """The Latent2RGB inputs of the SANA-WM latent format: the current clip's fitted map and the hook."""

    def __init__(self) -> None:
        self.proj: Optional[torch.Tensor] = None

    def use(self, proj: Optional[torch.Tensor]) -> None:
        """The map of the clip being sampled (from the conditioning); None keeps the last one."""
        if proj is not None:
            self.proj = proj.detach().float().cpu()

    def picture(self, x0: torch.Tensor) -> torch.Tensor:
        """(1,3,1,H,W) RGB in [-1,1] of the denoised latent (B,C,L,h,w); mid-grey when no clip has handed over
        a map (conditioning not from SANA-WM Image To Video)."""
        if self.proj is None:
            return torch.zeros((1, 3, 1) + tuple(x0.shape[-2:]))
        return preview_rgb(x0, self.proj)[None, :, None]
