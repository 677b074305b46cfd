"""Image + camera + prompt -> `Stage1Conditioning`, in the reference's order, cheap checks first.

Every input is validated (image present, camera usable, prompt non-empty, size a multiple of the VAE
stride) before Gemma-2 or the VAE run, so a bad input costs milliseconds and names the fix. The frame
count follows the reference: min(requested, path length) snapped to 8k+1 (never past the path's end).
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from ..camera import CameraPath, build_camera_inputs
from ..camera.image import preprocess_image, to_pil_rgb
from .conditioning import Stage1Conditioning
from .preview import fit_latent_rgb

log = logging.getLogger("sana_wm")


def _check_size(height: int, width: int, stride: int) -> None:
    if height < stride or width < stride or height % stride or width % stride:
        raise ValueError(f"width x height {width}x{height} must be positive multiples of {stride} "
                         f"(the VAE's spatial stride); the model was trained at 1280x704")


def build_stage1_conditioning(image: Any, camera: CameraPath, text_encoder, vae, prompt: str,
                              negative_prompt: str = "", *, num_frames: int = 161, height: int = 704,
                              width: int = 1280, guidance: bool = True,
                              chi_prompt: Sequence[str] | None = None) -> Stage1Conditioning:
    """Encode the prompt(s) and the first frame and build the camera tensors for one clip.

    `text_encoder` is a `sana_wm_core.text.GemmaPromptEncoder` (or anything with `.encode(prompt, negative,
    chi_prompt=)` returning `PromptEmbeds`); `vae` an `sana_wm_core.vae.LTX2Vae`. `num_frames <= 0` uses the
    whole path. `chi_prompt`: the release's instruction lines (`Stage1Model.chi_prompt`, from its config.yaml);
    None = the encoder's own (the released default).
    """
    if image is None:
        raise ValueError("image is missing: connect the first frame (a LoadImage node) to 'image'")
    if not isinstance(camera, CameraPath):
        raise ValueError(f"camera must be a SANA-WM camera path (SANAWM_CAMERA), got {type(camera).__name__}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt is empty: describe the scene to generate")
    stride_t, stride_s = vae.temporal_ratio, vae.spatial_ratio
    _check_size(int(height), int(width), stride_s)
    pil = to_pil_rgb(image)
    cam = build_camera_inputs(camera, source_size=pil.size, num_frames=int(num_frames), height=int(height),
                              width=int(width), vae_stride=(stride_t, stride_s, stride_s))
    if int(num_frames) > 0 and cam.num_frames != int(num_frames):
        log.warning("SANA-WM: using %d frames instead of %d (the LTX-2 VAE needs 8k+1 frames, and the camera "
                    "path has %d poses)", cam.num_frames, int(num_frames), camera.num_frames)
    pixels = preprocess_image(pil, int(height), int(width))

    ctx = text_encoder.on_device() if hasattr(text_encoder, "on_device") else _nullctx(text_encoder)
    with ctx as enc:
        emb = enc.encode(prompt, negative_prompt or "", chi_prompt=chi_prompt)
    vae.to_device()
    latent = vae.encode_image(pixels)
    return Stage1Conditioning(
        prompt_embeds=emb.embeds, prompt_mask=emb.mask,
        negative_embeds=emb.negative_embeds if guidance else None,
        negative_mask=emb.negative_mask if guidance else None,
        image_latent=latent.cpu(), raymap=cam.raymap, chunk_plucker=cam.chunk_plucker,
        num_frames=cam.num_frames, height=int(height), width=int(width), fps=float(camera.fps),
        c2w=np.asarray(camera.c2w)[:cam.num_frames], camera=camera, prompt=prompt.strip(),
        temporal_stride=stride_t, preview_proj=fit_latent_rgb(latent.cpu(), pixels), chi_prompt=emb.chi_prompt)


class _nullctx:
    def __init__(self, value):
        self.value = value

    def __enter__(self):
        return self.value

    def __exit__(self, *exc):
        return False
