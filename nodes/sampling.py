"""Stage-1 nodes: image + camera + prompt -> SANAWM_CONDITIONING, and the sampler -> SANAWM_LATENT.

Thin adapters over `sana_wm_core.sampling`: ComfyUI's progress bar, latent previews and interrupt reach
the engine as callbacks (a per-step callback, plus a per-block check inside the DiT).
"""
from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
from PIL import Image

from ..sana_wm_core.model import Stage1Model
from ..sana_wm_core.sampling import SAMPLERS, build_stage1_conditioning, latent_preview, sample_stage1_latent
from ..sana_wm_core.sampling.stage1 import check_sampling_args
from .comfy_model import comfy_block_callback, load_for_sampling, wrap_for_comfy

CATEGORY = "SANA-WM/sampling"


class SanaWMImageToVideo:
    DESCRIPTION = ("Encodes the first frame (LTX-2 VAE) and the prompt (Gemma-2) and builds the camera tensors: "
                   "everything the SANA-WM sampler needs for one clip.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SANAWM_CONDITIONING",)
    RETURN_NAMES = ("conditioning",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "The first frame. It is resized to cover width x height and centre-cropped."}),
            "camera": ("SANAWM_CAMERA", {"tooltip": "The camera path (action string or trajectory file) with intrinsics."}),
            "text_encoder": ("SANAWM_TEXT_ENCODER", {"tooltip": "Gemma-2 from the SANA-WM Text Encoder Loader."}),
            "vae": ("SANAWM_VAE", {"tooltip": "The LTX-2 VAE from the SANA-WM VAE Loader."}),
            "prompt": ("STRING", {"multiline": True, "default": "", "tooltip": (
                "What the scene looks like. It is appended to SANA-WM's instruction prefix, as in training.")}),
            "negative_prompt": ("STRING", {"multiline": True, "default": "", "tooltip": (
                "Used for classifier-free guidance (the reference uses an empty one).")}),
            "num_frames": ("INT", {"default": 161, "min": 0, "max": 100001, "step": 1, "tooltip": (
                "Frames to generate, snapped to 8k+1 (LTX-2 VAE) and never past the camera path's end. "
                "0 = the whole path. 161 = 10 s, 961 = 60 s at 16 fps.")}),
            "width": ("INT", {"default": 1280, "min": 32, "max": 4096, "step": 32, "tooltip": (
                "Output width, a multiple of 32. The model was trained at 1280x704.")}),
            "height": ("INT", {"default": 704, "min": 32, "max": 4096, "step": 32, "tooltip": (
                "Output height, a multiple of 32. The model was trained at 1280x704.")}),
        }, "optional": {
            "model": ("SANAWM_MODEL", {"tooltip": (
                "The Stage-1 model the sampler will use: the prompt is prefixed with its release config.yaml's "
                "instruction lines (chi_prompt). Unconnected: the released default lines.")}),
        }}

    def build(self, image, camera, text_encoder, vae, prompt, negative_prompt, num_frames, width, height,
              model=None):
        if model is not None and not isinstance(model, Stage1Model):
            raise ValueError("model must come from the SANA-WM Model Loader (SANAWM_MODEL)")
        cond = build_stage1_conditioning(image, camera, text_encoder, vae, prompt, negative_prompt,
                                         num_frames=num_frames, height=height, width=width,
                                         chi_prompt=(model.chi_prompt or None) if model is not None else None)
        return (cond,)


def _preview_hook(cond, steps: int):
    """ProgressBar updates per step, with a JPEG preview when ComfyUI's preview method asks for one."""
    pbar = comfy.utils.ProgressBar(steps)
    try:
        from comfy.cli_args import LatentPreviewMethod, args
        wants = args.preview_method != LatentPreviewMethod.NoPreviews
        size = args.preview_size
    except Exception:  # noqa: BLE001 - previews are optional
        wants, size = False, 512
    proj = cond.preview_proj

    def on_step(i: int, total: int, latents) -> None:
        preview = None
        if wants and proj is not None:
            preview = ("JPEG", Image.fromarray(latent_preview(latents, proj)), size)
        pbar.update_absolute(i + 1, total, preview)
    return on_step


def _interrupted() -> bool:
    mm.throw_exception_if_processing_interrupted()   # raises ComfyUI's own InterruptProcessingException
    return False


class SanaWMSampler:
    DESCRIPTION = ("Stage-1 denoising: flow-matching Euler with the first latent frame pinned to the image "
                   "(flow_euler_ltx, the reference default), classifier-free guidance batched as [uncond, cond].")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SANAWM_LATENT",)
    RETURN_NAMES = ("latent",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("SANAWM_MODEL", {"tooltip": "The Stage-1 DiT from the SANA-WM Model Loader."}),
            "conditioning": ("SANAWM_CONDITIONING", {"tooltip": "From SANA-WM Image To Video."}),
            "seed": ("INT", {"default": 42, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                             "tooltip": "Noise seed (a CPU generator, as diffusers draws it; reference default 42)."}),
            "steps": ("INT", {"default": 60, "min": 1, "max": 1000, "tooltip": "Euler steps (reference: 60)."}),
            "cfg": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 30.0, "step": 0.1, "tooltip": (
                "Classifier-free guidance scale (reference: 5.0); 1.0 or less runs without guidance (2x faster).")}),
            "sampler": (list(SAMPLERS), {"default": "flow_euler_ltx", "tooltip": (
                "flow_euler_ltx keeps the first frame fixed to the image (reference default); flow_euler "
                "denoises every frame, the first included.")}),
        }, "optional": {
            "flow_shift": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.05, "tooltip": (
                "Schedule shift. 0 = the release config's value (inference_flow_shift 9.8); the run script "
                "uses 8.0.")}),
        }}

    def sample(self, model, conditioning, seed, steps, cfg, sampler, flow_shift=0.0):
        """ComfyUI's model management places the DiT first (`load_models_gpu` with the DiT's activation
        estimate; a no-op move on a --cpu server) and keeps it loaded afterwards: ComfyUI frees it when another
        model needs the memory or on POST /free. Cancel is checked before every DiT block and every step."""
        if not isinstance(model, Stage1Model):
            raise ValueError("model must come from the SANA-WM Model Loader (SANAWM_MODEL)")
        shift = float(flow_shift) if flow_shift and flow_shift > 0 else float(model.flow_shift)
        patcher = getattr(model, "patcher", None)
        if patcher is None:                      # a Stage1Model built outside the loader
            patcher = wrap_for_comfy(model.transformer)
        batch = 2 if check_sampling_args(conditioning, steps, cfg, sampler) else 1   # bad inputs fail before loading
        conditioning.check_prefix(tuple(model.chi_prompt))
        dit = load_for_sampling(patcher, conditioning.latent_shape, batch)
        setter = getattr(dit, "set_block_callback", None)
        if setter is not None:
            setter(comfy_block_callback())
        try:
            latent = sample_stage1_latent(dit, conditioning, steps=steps, guidance_scale=cfg, seed=seed,
                                          flow_shift=shift, sampler=sampler,
                                          callback=_preview_hook(conditioning, steps), interrupt=_interrupted)
        finally:
            if setter is not None:
                setter(None)
        return (latent,)


NODE_CLASS_MAPPINGS = {"SanaWMImageToVideo": SanaWMImageToVideo, "SanaWMSampler": SanaWMSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"SanaWMImageToVideo": "SANA-WM Image To Video (conditioning)",
                              "SanaWMSampler": "SANA-WM Sampler (Stage 1)"}
