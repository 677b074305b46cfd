"""SANA-WM Stage 2: the LTX-2 sink-bidirectional refiner and the chunk loop around it.

Public API:
  * `locate_refiner(source, search_roots, gemma_dir)` -> `RefinerPaths` (clear error listing where it looked)
  * `SanaWMRefiner(paths, device, RefinerOptions(...))` with `.refine(latents, prompt, seed=, fps=)`, `.free()`
  * `refine_latents(...)` the chunk loop itself; `RefineSettings`, `DISTILLED_SIGMAS`
  * `encode_refiner_prompt(...)` the refiner's own text path
  * `latent_io`: `with_refined`, `sink_frames_to_drop`, `drop_sink_pixels` (what decoders must do)
  * `tiny.build_tiny_refiner(folder)` tiny random checkpoints in the release layout
"""
from .latent_io import drop_sink_pixels, latent_tensor, sink_frames_to_drop, with_refined
from .loading import RefinerPaths, locate_refiner
from .loop import DISTILLED_SIGMAS, RefineSettings, plan_chunks, refine_latents
from .runtime import RefinerOptions, SanaWMRefiner
from .text import encode_refiner_prompt

__all__ = [
    "DISTILLED_SIGMAS", "RefineSettings", "RefinerOptions", "RefinerPaths", "SanaWMRefiner",
    "drop_sink_pixels", "encode_refiner_prompt", "latent_tensor", "locate_refiner", "plan_chunks",
    "refine_latents", "sink_frames_to_drop", "with_refined",
]
