"""The LTX-2 video VAE: first-frame encode, a streaming tiled decode, and the causal VAE's chunk-by-chunk decode."""
from .causal import CausalDecodeState, CausalStreamDecoder, decode_causal, decode_causal_chunks
from .ltx2 import CAUSAL_VAE_DIR, LOW_MEMORY_TILING, NO_TILING, REFERENCE_TILING, TILING_PRESETS, LTX2Vae, VaeTiling
from .stream import (decode_chunks, decode_frames, decode_latent_frames, decode_latent_images, decode_to_images,
                     to_uint8_frames, to_unit_frames)

__all__ = ["CAUSAL_VAE_DIR", "CausalDecodeState", "CausalStreamDecoder", "decode_causal", "decode_causal_chunks",
           "LOW_MEMORY_TILING", "NO_TILING", "REFERENCE_TILING", "TILING_PRESETS", "LTX2Vae", "VaeTiling", "decode_chunks", "decode_frames",
           "decode_latent_frames", "decode_latent_images", "decode_to_images", "to_uint8_frames", "to_unit_frames"]
