"""The LTX-2 video VAE: first-frame encode and a streaming, tiled decode."""
from .ltx2 import LOW_MEMORY_TILING, NO_TILING, REFERENCE_TILING, TILING_PRESETS, LTX2Vae, VaeTiling
from .stream import (decode_chunks, decode_frames, decode_latent_frames, decode_latent_images, decode_to_images,
                     to_uint8_frames, to_unit_frames)

__all__ = ["LOW_MEMORY_TILING", "NO_TILING", "REFERENCE_TILING", "TILING_PRESETS", "LTX2Vae", "VaeTiling", "decode_chunks", "decode_frames",
           "decode_latent_frames", "decode_latent_images", "decode_to_images", "to_uint8_frames", "to_unit_frames"]
