"""SANA-WM as a core ComfyUI MODEL: a `comfy.model_base.BaseModel` around the pack's Stage-1 DiT.

Core samplers (KSampler, SamplerCustom, SamplerCustomAdvanced) drive it like LTX-Video or Wan:
- flow model sampling (`ModelType.FLOW`, CONST prediction) at the release's shift, `timestep = sigma * 1000`;
- the prompt embedding is `c_crossattn`, its padding mask `attention_mask`, and the camera tensors travel in
  the conditioning as `sanawm_raymap` (1,L,20) and `sanawm_plucker` (1,48,L,h,w) (`extra_conds`);
- the image-pinned first latent frame is the LATENT's `noise_mask` (0 = pinned): frames whose mask is 0
  everywhere get timestep 0 (`process_timestep`) and are never re-noised (`scale_latent_inpaint` returns the
  clean latent), exactly what the pack's `flow_euler_ltx` sampler and diffusers' pipeline do.
Identical weights, noise, sigmas and cfg give the pack's own sampler's latents (tests/test_native_model.py).
This module works on ComfyUI 0.3.75 and on current releases: it only overrides BaseModel hooks both have.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

import comfy.conds
import comfy.latent_formats
import comfy.model_base
import comfy.model_management as mm
import comfy.model_patcher
import comfy.supported_models_base

from ..sana_wm_core.model.release import CHUNK_SAMPLER, DEFAULT_SAMPLER, STREAM_SAMPLER
from ..sana_wm_core.model.variants import Variant, check_sampler_for_model
from .native_preview import PREVIEW_KEY, RGB_PASS_THROUGH, ClipPreview, reshape_hook_supported

RAYMAP_KEY = "sanawm_raymap"
PLUCKER_KEY = "sanawm_plucker"
TIMESTEP_MULTIPLIER = 1000     # the DiT is trained on t = 1000 * sigma
# Where each release runs in ComfyUI (by its release sampler): what a wrong-model message tells the user to use.
NODES_FOR_RELEASE = {
    DEFAULT_SAMPLER: "core KSampler / SamplerCustomAdvanced or the SANA-WM Sampler with sampler flow_euler_ltx",
    CHUNK_SAMPLER: "the SANA-WM Sampler with sampler chunk_flow_euler",
    STREAM_SAMPLER: "SANA-WM Stream Sampler or SANA-WM Stream to Video",
}
CORE_SAMPLERS = "model: a core sampler (KSampler, KSamplerAdvanced, SamplerCustom, SamplerCustomAdvanced)"


def run_it_in(variant: Variant) -> str:
    """The fix that keeps the loaded model: the pack node(s) its release runs in."""
    return f"run it in {NODES_FOR_RELEASE[variant.sampler]}"


class SanaWMLatentFormat(comfy.latent_formats.LatentFormat):
    """The Stage-1 latent as the sampler sees it: already normalised by the VAE encoder (identity here).
    Core samplers' Latent2RGB previews draw the pack's per-clip preview through the reshape hook
    (`nodes/native_preview.py`); `preview` receives the clip's map from `SanaWMBaseModel.extra_conds`."""

    latent_dimensions = 3

    def __init__(self, channels: int = 128) -> None:
        self.latent_channels = int(channels)
        self.scale_factor = 1.0
        self.preview = ClipPreview()
        if reshape_hook_supported():
            self.latent_rgb_factors = RGB_PASS_THROUGH
            self.latent_rgb_factors_reshape = self.preview.picture


class SanaWMModelConfig(comfy.supported_models_base.BASE):
    """What ComfyUI's BaseModel reads from a model config: flow sampling at the release's shift."""

    unet_config = {"disable_unet_model_creation": True}
    unet_extra_config = {}
    latent_format = SanaWMLatentFormat
    memory_usage_factor = 2.0
    supported_inference_dtypes = [torch.bfloat16, torch.float16, torch.float32]

    def __init__(self, flow_shift: float, latent_channels: int, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__(dict(self.unet_config))
        self.sampling_settings = {"shift": float(flow_shift), "multiplier": TIMESTEP_MULTIPLIER}
        self.latent_format = SanaWMLatentFormat(latent_channels)
        self.unet_config["dtype"] = dtype


class ComfyDiT(torch.nn.Module):
    """The DiT behind ComfyUI's calling convention `(x, t, context=..., **extra_conds)`."""

    def __init__(self, dit: torch.nn.Module) -> None:
        super().__init__()
        self.dit = dit

    @property
    def dtype(self) -> torch.dtype:
        return self.dit.compute_dtype

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, context: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None, control: Any = None,
                transformer_options: Optional[dict] = None, **extra: Any) -> torch.Tensor:
        return self.dit(x, timestep, context, encoder_attention_mask=attention_mask,
                        camera_conditions=extra.get(RAYMAP_KEY), chunk_plucker=extra.get(PLUCKER_KEY))


class SanaWMBaseModel(comfy.model_base.BaseModel):
    """A core MODEL whose diffusion model is the pack's DiT (`SanaWMTransformer`). `release` is the
    loader's `Stage1Model` (flow shift, chi_prompt, release sampler), read by the pack's own nodes."""

    def __init__(self, dit: torch.nn.Module, flow_shift: float, device: Optional[torch.device] = None,
                 release: Any = None) -> None:
        config = SanaWMModelConfig(flow_shift, int(dit.config.in_channels), getattr(dit, "compute_dtype", None))
        super().__init__(config, comfy.model_base.ModelType.FLOW, device=device)
        self.diffusion_model = ComfyDiT(dit)
        self.flow_shift = float(flow_shift)
        self.release = release

    @property
    def dit(self) -> torch.nn.Module:
        return self.diffusion_model.dit

    def extra_conds(self, **kwargs: Any) -> dict:
        """Also the first thing a core sampler asks of the model: the chunk-causal and streaming releases have
        their own schedules (the pack's nodes), so they are refused here, naming those nodes."""
        check_sampler_for_model(self.dit, DEFAULT_SAMPLER, asked_by=CORE_SAMPLERS, instead=run_it_in)
        out = super().extra_conds(**kwargs)
        preview = getattr(self.latent_format, "preview", None)     # None: a node swapped the latent format
        if preview is not None:
            preview.use(kwargs.get(PREVIEW_KEY))                     # before the first step's preview
        for key in ("attention_mask", RAYMAP_KEY, PLUCKER_KEY):
            value = kwargs.get(key)
            if value is not None:
                out[key] = comfy.conds.CONDRegular(value)
        denoise_mask = kwargs.get("concat_mask", kwargs.get("denoise_mask"))
        if denoise_mask is not None:
            out["denoise_mask"] = comfy.conds.CONDRegular(denoise_mask)
        return out

    def process_timestep(self, timestep: torch.Tensor, x: Optional[torch.Tensor] = None,
                         denoise_mask: Optional[torch.Tensor] = None, **kwargs: Any) -> torch.Tensor:
        """Per-frame timesteps (B,1,L) from the sampler's t and the noise mask (B,C,L,h,w; 0 = keep).

        The DiT takes one timestep per frame, so a frame's is t times the largest mask value anywhere in it
        (any channel, any pixel): a frame counts as pinned (t = 0) only when its mask is 0 everywhere, and a
        frame with any pixel being denoised gets the noise level those pixels carry (pixels kept within it
        are still put back to the clean latent by the core sampler's inpainting step)."""
        if denoise_mask is None:
            return timestep
        if denoise_mask.ndim != 5:
            raise ValueError(f"the SANA-WM noise mask must be (batch, channels, frames, height, width), got shape "
                             f"{tuple(denoise_mask.shape)}: give the LATENT a mask per latent frame")
        frame_mask = denoise_mask.flatten(3).amax(dim=(1, 3)).to(timestep.dtype)    # (B,L)
        return timestep.view(-1, 1, 1) * frame_mask[:, None]

    def scale_latent_inpaint(self, sigma, noise, latent_image, **kwargs):
        """Pinned frames stay the clean image latent at every step (never re-noised)."""
        return latent_image

    def memory_required(self, input_shape, cond_shapes=None) -> int:
        estimate = getattr(self.dit, "memory_required", None)
        return int(estimate(input_shape)) if estimate is not None else super().memory_required(input_shape)


def wrap_as_core_model(dit: torch.nn.Module, flow_shift: float,
                       load_device: Optional[torch.device] = None,
                       offload_device: Optional[torch.device] = None, *, release: Any = None,
                       blocks_resident: Optional[int] = None, dynamic: bool = True) -> comfy.model_patcher.ModelPatcher:
    """A ModelPatcher over `SanaWMBaseModel(dit)`: the value of a core MODEL socket, wrapped as ComfyUI wraps its
    own diffusion models (`wrap_for_comfy`; dynamic=False: never the Dynamic VRAM patcher). `blocks_resident`
    set: the block-streaming patcher (`nodes/comfy_model.BlockOffloadPatcher`, offload device the CPU)."""
    from .comfy_model import wrap_for_comfy

    offload_device = offload_device if offload_device is not None else mm.unet_offload_device()
    if blocks_resident is not None:
        offload_device = torch.device("cpu")
    base = SanaWMBaseModel(dit, flow_shift, device=getattr(dit, "device", None) or offload_device, release=release)
    return wrap_for_comfy(base, load_device, offload_device, blocks_resident=blocks_resident, dynamic=dynamic)


def core_dit(model: Any) -> torch.nn.Module:
    """The pack's DiT inside a core MODEL (a ModelPatcher over `SanaWMBaseModel`); ValueError otherwise."""
    base = getattr(model, "model", None)
    if not isinstance(base, SanaWMBaseModel):
        raise ValueError(f"model must be a SANA-WM MODEL from the SANA-WM Model Loader, got "
                         f"{type(base if base is not None else model).__name__}")
    return base.dit
