"""The pack's own socket types, declared once (ComfyUI V3 `io.Custom`); every node family imports them from here.

The io_type strings are what saved workflows store on their links: never rename them.
"""
from __future__ import annotations

from comfy_api.latest import io

Model = io.Custom("SANAWM_MODEL")                  # Stage-1 DiT + release settings + its ModelPatcher
TextEncoder = io.Custom("SANAWM_TEXT_ENCODER")      # Gemma-2 prompt encoder
Vae = io.Custom("SANAWM_VAE")                       # LTX-2 video VAE
Camera = io.Custom("SANAWM_CAMERA")                 # camera path (c2w per frame, fps, intrinsics)
Intrinsics = io.Custom("SANAWM_INTRINSICS")         # pinhole intrinsics in source-image pixels
Conditioning = io.Custom("SANAWM_CONDITIONING")     # everything the Stage-1 sampler needs for one clip
Latent = io.Custom("SANAWM_LATENT")                 # the Stage-1 (or refined) latent value
Refiner = io.Custom("SANAWM_REFINER")               # the Stage-2 refiner handle

ALL = (Model, TextEncoder, Vae, Camera, Intrinsics, Conditioning, Latent, Refiner)
