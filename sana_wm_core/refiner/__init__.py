"""SANA-WM Stage 2: the LTX-2 sink-bidirectional refiner and the chunk loop around it.

Public API:
  * `locate_refiner(source, search_roots, gemma_dir)` -> `RefinerPaths` (clear error listing where it looked)
  * `SanaWMRefiner(paths, device, RefinerOptions(...))` with `.refine_latent(latent, prompt, seed=)` (a
    `SanaWMLatent` in, the refined one out), `.refine(latents, prompt, seed=, fps=)` on tensors, `.free()`
  * `refine_latents(...)` the chunk loop itself; `RefineSettings` (`mode`: "autoregressive" | "sink_bidirectional"),
    `DISTILLED_SIGMAS`, `plan_blocks`
  * `RefinerStream(...)` the autoregressive rule one block at a time (streaming); `SanaWMRefiner.stream(...)` opens
    one on the loaded network
  * `encode_refiner_prompt(...)` the refiner's own text path
  * `tiny.build_tiny_refiner(folder)` tiny random checkpoints in the release layout
"""
from .loading import RefinerPaths, locate_refiner
from .loop import DISTILLED_SIGMAS, MODES, RefinerStream, RefineSettings, plan_blocks, plan_chunks, refine_latents
from .runtime import RefinerOptions, SanaWMRefiner
from .text import encode_refiner_prompt

__all__ = [
    "DISTILLED_SIGMAS", "MODES", "RefineSettings", "RefinerOptions", "RefinerPaths", "RefinerStream", "SanaWMRefiner",
    "encode_refiner_prompt", "locate_refiner", "plan_blocks", "plan_chunks", "refine_latents",
]
