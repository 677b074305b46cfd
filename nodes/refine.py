"""Stage-2 nodes: load the LTX-2 refiner and refine a Stage-1 latent (sink frame + sliding window of 3-frame blocks).

Refine takes a core LATENT and returns a core LATENT carrying the clip info
forward (`native_latent`). The prompt is typed once: an empty prompt widget means the Stage-1 prompt the latent
carries. A latent that lost its clip info (core Load Latent) takes fps / camera from the optional inputs.

Thin adapters over `sana_wm_core.refiner`; ComfyUI's progress bar and interrupt reach the engine through the
one host adapter (`nodes/host.py`).
"""
from __future__ import annotations

import os

import comfy.model_management as mm
import folder_paths
from comfy_api.latest import io

from ..sana_wm_core.refiner import RefinerOptions, RefineSettings, SanaWMRefiner, locate_refiner
from ..sana_wm_core.refiner.loading import HUB_REPO
from .precision import (DTYPE_CHOICES, DTYPE_TOOLTIP, WEIGHT_FORMAT_TOOLTIP, WEIGHT_FORMATS, precision_of,
                        validate_precision)
from .host import ComfyHost
from .native_latent import core_latent, engine_latent, latent_input
from .types import Camera, Refiner, combo_problem
from ..sana_wm_core.weights import check_model_reference

CATEGORY = "SANA-WM/refine"
DEFAULT_REPO = "SANA-WM_bidirectional"


def _sana_wm_dirs() -> list[str]:
    """ComfyUI's models/sana_wm folder(s) (registered by another node family or the default)."""
    if "sana_wm" in folder_paths.folder_names_and_paths:
        return list(folder_paths.get_folder_paths("sana_wm"))
    return [os.path.join(folder_paths.models_dir, "sana_wm")]


REFINER_KNOWN = {DEFAULT_REPO: HUB_REPO}


def is_refiner_folder(p) -> bool:
    """A release folder holding a refiner (`refiner/`, `refiner_diffusers/` or itself: transformer + connectors)."""
    return any(all(os.path.isfile(os.path.join(p, sub, part, "config.json")) for part in ("transformer", "connectors"))
               for sub in ("refiner", "refiner_diffusers", ""))


def _repo_choices() -> list[str]:
    """Folders under models/sana_wm that hold a refiner, then `... (download from <repo>)` for a missing release."""
    from .weights_check import loader_options

    return loader_options("sana_wm", REFINER_KNOWN, is_refiner_folder)


def _source(repo: str) -> str:
    """What locate_refiner gets for a dropdown value: the hub id for a known release (found on disk under its
    repo name first, downloaded when missing), else the folder name."""
    from .weights_check import folder_and_repo, is_known_choice

    return folder_and_repo(repo, REFINER_KNOWN)[1] if is_known_choice(repo, REFINER_KNOWN) else repo


def _gemma_dir(value: str) -> str | None:
    """An explicit folder, or a name under models/text_encoders; empty = the refiner's own Gemma-3."""
    value = (value or "").strip()
    if not value:
        return None
    if os.path.isabs(os.path.expanduser(value)):
        return os.path.expanduser(value)
    for base in folder_paths.get_folder_paths("text_encoders"):
        if os.path.isfile(os.path.join(base, value, "config.json")):
            return os.path.join(base, value)
    return value


class SanaWMRefinerLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMRefinerLoader",
            display_name="SANA-WM Refiner Loader",
            category=CATEGORY,
            description=("Points at SANA-WM's Stage-2 refiner (LTX-2 DiT + text connectors + Gemma-3): refiner/ of a "
                         "bidirectional release, or refiner_diffusers/ + gemma3_12b/ of SANA-WM_streaming. Nothing "
                         "is loaded here: the refine node loads what it needs and frees it afterwards."),
            inputs=[
                io.Combo.Input("repo", options=_repo_choices(), tooltip="A release folder under models/sana_wm "
                                                                        "holding refiner/ (transformer, connectors, "
                                                                        "text_encoder), or SANA-WM_streaming's "
                                                                        "refiner_diffusers/ (transformer, "
                                                                        "connectors) with Gemma-3 in gemma3_12b/."),
                io.Combo.Input("dtype", options=list(DTYPE_CHOICES), default="auto", tooltip=(
                    DTYPE_TOOLTIP + " Used by the refiner and Gemma-3 (the release runs bf16).")),
                io.Combo.Input("weight_format", options=list(WEIGHT_FORMATS), default="default",
                               tooltip=WEIGHT_FORMAT_TOOLTIP),
                io.Int.Input("offload_blocks", default=-1, min=-1, max=64,
                             tooltip="-1: keep every refiner block on the GPU. N >= 0: keep only N blocks there and "
                                     "stream the rest from CPU RAM per call (slower, fits 24 GB cards; Gemma-3 "
                                     "layers are streamed too)."),
                io.Boolean.Input("keep_loaded", default=False,
                                 tooltip="Keep the refiner network in memory between runs "
                                         "(faster reruns, holds its memory)."),
                io.String.Input("path_or_hub_id", default="", optional=True, tooltip=(
                    "Overrides `repo`: a folder (the refiner folder or a repo folder holding refiner/) or a hub id "
                    f"such as {HUB_REPO}, downloaded into models/sana_wm when missing.")),
                io.String.Input("gemma3_folder", default="", optional=True, tooltip=(
                    "Optional Gemma-3-12B folder you already have (bf16 or fp8 safetensors + tokenizer): a path "
                    "or a folder name under models/text_encoders. Empty = refiner/text_encoder (SANA-WM_streaming: "
                    "gemma3_12b/).")),
            ],
            outputs=[Refiner.Output(display_name="refiner")],
        )

    @classmethod
    def validate_inputs(cls, dtype, weight_format, repo=None):
        """Also accepts the older dtype values bfloat16 / float16 / float32 of saved workflows."""
        from .weights_check import is_known_choice

        ok = combo_problem(cls, repo=None if is_known_choice(repo, REFINER_KNOWN) else repo)  # absent: weights_check
        return validate_precision(dtype, weight_format) if ok is True else ok

    @classmethod
    def execute(cls, repo, dtype, weight_format, offload_blocks, keep_loaded, path_or_hub_id="",
                gemma3_folder="") -> io.NodeOutput:
        precision, compute = precision_of(dtype, weight_format)
        from .models import model_roots

        source = check_model_reference(path_or_hub_id or "", model_roots()) or _source(repo)
        check_model_reference(gemma3_folder or "", model_roots(), label="gemma3_folder")
        paths = locate_refiner(source, _sana_wm_dirs(), _gemma_dir(gemma3_folder), allow_download=True)
        options = RefinerOptions(
            dtype=compute, fp8=precision.fp8,
            offload_blocks=None if int(offload_blocks) < 0 else int(offload_blocks), keep_loaded=bool(keep_loaded),
        )
        return io.NodeOutput(SanaWMRefiner(paths, mm.get_torch_device(), options))


class SanaWMRefine(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMRefine",
            display_name="SANA-WM Refine",
            category=CATEGORY,
            description=("SANA-WM Stage 2: refines Stage-1 latents chunk by chunk (3 latent frames at a time over a "
                         "sliding window of 11, 3 distilled steps, no CFG). The first latent frame is kept as the "
                         "attention sink and its pixel frame is dropped at decode (321 frames -> 320)."),
            inputs=[
                Refiner.Input("refiner", tooltip="From 'SANA-WM Refiner Loader'."),
                latent_input("Stage-1 latents from a sampler driving the SANA-WM model (or core Load Latent). "
                             "Their fps (the camera path's) scales the refiner's temporal position encoding. The "
                             "noise mask is ignored: the first latent frame is always the refiner's sink."),
                io.String.Input("prompt", multiline=True, default="",
                                tooltip="Refiner prompt (used raw, stripped). Leave it empty to reuse the Stage-1 "
                                        "prompt carried by the latent (typed once, in Image To Video); fill it to "
                                        "override. A latent from core Load Latent carries none: type it here."),
                io.Int.Input("seed", default=42, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the refiner's own noise (the reference uses 42)."),
                Camera.Input("camera", optional=True, tooltip=(
                    "Optional. Only needed for a latent that lost its SANA-WM clip info (core Load Latent): the "
                    "camera path it was generated with gives the fps and the poses Save Video writes. Connected, "
                    "it wins over the path the latent carries.")),
                io.Float.Input("fps", default=0.0, min=0.0, max=240.0, optional=True, force_input=True, tooltip=(
                    "Optional. The clip's frame rate, for a latent that lost its SANA-WM clip info (core Load "
                    "Latent) when no camera is connected. Unconnected or 0 = the camera's, else the latent's.")),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
        )

    @classmethod
    def execute(cls, refiner, latent, prompt, seed, camera=None, fps=0.0, **_old_widgets) -> io.NodeOutput:
        """The frame rate that scales the refiner's temporal RoPE is the latent's own (the camera path's fps)
        unless `fps` / `camera` are given. API prompts saved while `fps` was a widget still send it (the same
        value as the latent's); `_old_widgets` takes whatever else older workflows send."""
        if not isinstance(refiner, SanaWMRefiner):
            raise ValueError("refiner input must come from 'SANA-WM Refiner Loader'")
        lat = engine_latent(latent).with_clip_inputs(camera, fps or 0.0)
        text = refiner.prompt_for(lat, prompt)             # bad inputs fail before anything is unloaded
        lat.require_fps()
        settings = RefineSettings()
        mm.unload_all_models()
        mm.soft_empty_cache()
        out = refiner.refine_latent(lat, text, seed=int(seed), settings=settings, host=ComfyHost())
        return io.NodeOutput(core_latent(out, like=latent))


NODES = [SanaWMRefinerLoader, SanaWMRefine]
