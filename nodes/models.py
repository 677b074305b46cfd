"""Loader nodes: the Stage-1 DiT (+ its release settings), the Gemma-2 prompt encoder, the LTX-2 VAE.

Each loader lists what is in ComfyUI's model folders (`models/sana_wm/`, `models/text_encoders/`), also
accepts a Hugging Face repo id or a path, and fetches a missing repo from the hub with a progress bar
(unless offline). A missing folder raises an error that lists every place that was searched.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

import comfy.model_management as mm
import folder_paths
from comfy_api.latest import io

from ..sana_wm_core.model import Stage1Model, read_release
from ..sana_wm_core.text import GemmaPromptEncoder
from ..sana_wm_core.vae import CAUSAL_VAE_DIR, TILING_PRESETS, LTX2Vae
from ..sana_wm_core.weights import check_model_reference, locate_repo
from ..sana_wm_core.weights.hub import parse_choice
from ..sana_wm_core.weights.known import CHUNK_CAUSAL_REPO, STREAMING_REPO
from ..sana_wm_core.weights.torch_pt import as_safetensors
from .comfy_model import DEFAULT_BLOCKS_RESIDENT
from .comfy_ops import dit_operations
from .native_model import wrap_as_core_model
from .precision import (DTYPE_CHOICES, DTYPE_TOOLTIP, WEIGHT_FORMAT_TOOLTIP, WEIGHT_FORMATS, precision_of,
                        validate_precision)
from .host import ComfyHost
from .types import TextEncoder, Vae, combo_problem
from .weights_check import is_known_choice, loader_options

CATEGORY = "SANA-WM/loaders"
BIDIRECTIONAL = "Efficient-Large-Model/SANA-WM_bidirectional"
DIFFUSERS = "Efficient-Large-Model/SANA-WM_bidirectional-diffusers"
GEMMA2 = "Efficient-Large-Model/gemma-2-2b-it"

if "sana_wm" not in folder_paths.folder_names_and_paths:
    folder_paths.add_model_folder_path("sana_wm", os.path.join(folder_paths.models_dir, "sana_wm"))


def _dirs(kind: str) -> list[str]:
    return list(folder_paths.get_folder_paths(kind)) if kind in folder_paths.folder_names_and_paths else []


def _has_stage1(p: Path) -> bool:
    return (p / "dit").is_dir() or (p / "sana_dit").is_dir() or (p / "transformer" / "config.json").is_file()


def _progress():
    return ComfyHost().progress  # download progress (done, total) on the node's bar


def model_roots() -> list[str]:
    """Every ComfyUI model folder: the only places a prompt's `path_or_hub_id` may point into."""
    roots = [folder_paths.models_dir]
    for kind in folder_paths.folder_names_and_paths:
        if kind != "custom_nodes":  # code, not weights
            roots += folder_paths.get_folder_paths(kind)
    return list(dict.fromkeys(roots))


def resolve(choice: str, override: str, kind: str, *, known: dict[str, str], patterns=None) -> Path:
    """A local folder for `override or choice`: a path, a folder name under models/<kind>, or owner/repo."""
    choice, entry_repo = parse_choice(choice)      # "name (download from owner/repo)" -> name, repo
    name = check_model_reference(override or "", model_roots()) or choice
    hub = None
    if name.count("/") == 1 and not os.path.exists(os.path.expanduser(name)) and not name.startswith((".", "~")):
        hub, name = name, name.split("/")[1]
    hub = hub or known.get(name) or (entry_repo if name == choice else None)
    return locate_repo(name, search_dirs=_dirs(kind), hub_repo=hub, allow_patterns=patterns, progress=_progress())


def _device() -> torch.device:
    return mm.get_torch_device()


def _checkpoint_params(dit_path: Path) -> int:
    """Parameter count from the safetensors headers (no tensor is read): sizes the initial placement."""
    from ..sana_wm_core.weights.safetensors_file import open_safetensors as safe_open

    path = Path(dit_path)
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors"))
    total = 0
    for f in files:
        with safe_open(str(f), framework="pt") as sf:
            for key in sf.keys():
                n = 1
                for d in sf.get_slice(key).get_shape():
                    n *= int(d)
                total += n
    return total


_STAGE1_KNOWN = {"SANA-WM_bidirectional": BIDIRECTIONAL, "SANA-WM_bidirectional-diffusers": DIFFUSERS,
                 "SANA-WM_chunk_causal": CHUNK_CAUSAL_REPO, "SANA-WM_streaming": STREAMING_REPO}
_VAE_KNOWN = {"SANA-WM_bidirectional": BIDIRECTIONAL, "SANA-WM_streaming": STREAMING_REPO}
_GEMMA2_KNOWN = {"gemma-2-2b-it": GEMMA2}


def _has_vae(p: Path) -> bool:
    """vae/ (the bidirectional releases) or ltx2_causal_vae/ (SANA-WM_streaming's causal VAE)."""
    return any((p / d / "config.json").is_file() for d in ("vae", CAUSAL_VAE_DIR))


def _is_gemma2(p: Path) -> bool:
    return (p / "config.json").is_file() and "gemma" in p.name.lower()


class SanaWMModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMModelLoader",
            display_name="SANA-WM Model Loader (Stage-1 DiT)",
            category=CATEGORY,
            description=("Loads SANA-WM's Stage-1 DiT (native implementation) as a core MODEL (flow sampling at the "
                         "release's shift), so KSampler, SamplerCustom(Advanced), ModelSamplingSD3 and other core "
                         "model nodes take it. SANA-WM_bidirectional is the main model. SANA-WM_chunk_causal is the "
                         "autoregressive teacher (no frame depends on a later chunk): it stays on the pack's own "
                         "sampling, the SANA-WM Sampler with chunk_flow_euler (core samplers cannot run its "
                         "staggered chunk schedule); NVIDIA releases it as a research checkpoint that may show "
                         "artifacts. It ships only the DiT and config.yaml; the VAE and refiner come from "
                         "SANA-WM_bidirectional. SANA-WM_streaming is the distilled real-time student, also on the "
                         "pack's own sampling (SANA-WM Stream Sampler / Stream to Video, or the SANA-WM Sampler with "
                         "sampler self_forcing); its sana_dit/model.pt is read with PyTorch's safe loader and "
                         "converted once to safetensors beside it. A core sampler given either of these two refuses "
                         "it, naming the node to use."),
            inputs=[
                io.Combo.Input("model", options=loader_options("sana_wm", _STAGE1_KNOWN, _has_stage1), tooltip=(
                    "A folder under models/sana_wm (original layout with dit/ + config.yaml, or the diffusers "
                    "layout), or a '(download from <repo>)' entry: a release not on disk, downloaded there on "
                    "first use. SANA-WM_chunk_causal is the chunk-causal research checkpoint (sampler "
                    "chunk_flow_euler); SANA-WM_streaming the distilled streaming model (sampler self_forcing).")),
                io.Combo.Input("dtype", options=list(DTYPE_CHOICES), default="auto", tooltip=DTYPE_TOOLTIP),
                io.Combo.Input("offload", options=["none", "block"], default="none", tooltip=(
                    "none: ComfyUI's model management places the whole DiT on the GPU (partially when it does not "
                    "fit), keeps it there between prompts and frees it when memory is needed. block: the weights "
                    "stay in CPU RAM; a few blocks are kept on the GPU and the rest stream in one at a time (fits "
                    "24 GB cards, slower).")),
                io.String.Input("path_or_hub_id", default="", optional=True, tooltip=(
                    "Overrides 'model': an absolute path to a release folder or DiT .safetensors file, or "
                    "owner/repo on the Hugging Face Hub.")),
                io.Combo.Input("weight_format", options=list(WEIGHT_FORMATS), default="default", optional=True,
                               tooltip=WEIGHT_FORMAT_TOOLTIP),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip=(
                "A core MODEL around the SANA-WM DiT, carrying the release settings (flow shift, prompt prefix, "
                "sampler)."))],
        )

    @classmethod
    def validate_inputs(cls, dtype, weight_format="default", model=None, offload=None):
        """Also accepts the older dtype value fp8_e4m3 (= bf16 + weight_format fp8_e4m3fn) of saved workflows."""
        ok = combo_problem(cls, model=None if is_known_choice(model, _STAGE1_KNOWN) else model, offload=offload)
        return validate_precision(dtype, weight_format) if ok is True else ok

    @classmethod
    def execute(cls, model, dtype, offload, path_or_hub_id="", weight_format="default") -> io.NodeOutput:
        return io.NodeOutput(load_stage1(model, dtype, offload, path_or_hub_id, weight_format))


def load_stage1(model: str, dtype: str, offload: str, path_or_hub_id: str = "", weight_format: str = "default",
                disable_dynamic: bool = False) -> Any:
    """The Model Loader's MODEL. Weights go where ComfyUI's own diffusion-model loaders put them
    (`unet_inital_load_device`: the GPU only when the model fits there and it has more free memory than the
    CPU, else the offload device); offload="block" always loads to the CPU. The DiT becomes a core MODEL
    (`wrap_as_core_model`: the patcher ComfyUI gives its own diffusion models, the block-streaming patcher for
    offload="block"); the sampler asks ComfyUI to place it.

    Like comfy/sd.py's `load_diffusion_model`, the MODEL records how to build it again
    (`cached_patcher_init`: this function and its inputs): current ComfyUI calls it with disable_dynamic=True
    when it needs a classic patcher beside a Dynamic VRAM one (`get_non_dynamic_delegate`: conditioning hooks,
    TorchCompileModel) and without it for a multi-GPU copy. 0.3.75 never reads it."""
    from ..sana_wm_core.model import load_transformer

    if offload not in ("none", "block"):
        raise ValueError(f"offload must be 'none' or 'block', got {offload!r}")
    root = resolve(model, path_or_hub_id, "sana_wm", known=_STAGE1_KNOWN,
                   patterns=["dit/*", "config.yaml", "transformer/*", "scheduler/*", "sana_dit/*"])
    info = read_release(root)
    info.dit_path = as_safetensors(info.dit_path)   # a streaming .pt: its safetensors conversion (once)
    device = _device()
    precision, compute = precision_of(dtype, weight_format)
    if offload == "block":
        initial = torch.device("cpu")
    else:   # sized at the compute dtype: an upper bound for fp8 storage
        initial = mm.unet_inital_load_device(_checkpoint_params(info.dit_path), compute)
    dit = load_transformer(info.dit_path, dtype=compute, device=initial, weight_format=precision.weight_format,
                           overrides=info.model_overrides,
                           operations=dit_operations(compute, precision.fp8, device))
    dit.device = initial
    release = Stage1Model(transformer=dit, flow_shift=info.flow_shift, chi_prompt=info.chi_prompt,
                          sampler=info.sampler)
    patcher = wrap_as_core_model(dit, info.flow_shift, device, mm.unet_offload_device(), release=release,
                                 blocks_resident=DEFAULT_BLOCKS_RESIDENT if offload == "block" else None,
                                 dynamic=not disable_dynamic)
    patcher.cached_patcher_init = (load_stage1, (model, dtype, offload, path_or_hub_id, weight_format))
    return patcher


class SanaWMTextEncoderLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMTextEncoderLoader",
            display_name="SANA-WM Text Encoder Loader (Gemma-2)",
            category=CATEGORY,
            description="Loads gemma-2-2b-it, SANA-WM's Stage-1 prompt encoder (kept in CPU RAM between prompts).",
            inputs=[
                io.Combo.Input("text_encoder", options=loader_options("text_encoders", _GEMMA2_KNOWN, _is_gemma2),
                               tooltip=("A Gemma-2 folder under models/text_encoders (config.json, weights, "
                                        "tokenizer), or the '(download from <repo>)' entry, downloaded there on "
                                        "first use.")),
                io.Combo.Input("dtype", options=list(DTYPE_CHOICES), default="auto", tooltip=DTYPE_TOOLTIP),
                io.Combo.Input("after_encode", options=["offload", "free"], default="offload", tooltip=(
                    "offload: move the encoder to CPU RAM after each prompt (fast to reuse). free: drop it "
                    "entirely after the first encode (saves ~5 GB of RAM; reload for a new prompt).")),
                io.String.Input("path_or_hub_id", default="", optional=True, tooltip=(
                    "Overrides 'text_encoder': an absolute folder path (a Gemma-2 folder, or a diffusers SANA-WM "
                    "folder with text_encoder/ and tokenizer/) or owner/repo on the hub.")),
            ],
            outputs=[TextEncoder.Output(display_name="text_encoder")],
        )

    @classmethod
    def validate_inputs(cls, text_encoder=None, dtype=None, after_encode=None):
        return combo_problem(cls, text_encoder=None if is_known_choice(text_encoder, _GEMMA2_KNOWN) else text_encoder,
                             dtype=dtype, after_encode=after_encode)

    @classmethod
    def execute(cls, text_encoder, dtype, after_encode, path_or_hub_id="") -> io.NodeOutput:
        folder = resolve(text_encoder, path_or_hub_id, "text_encoders", known=_GEMMA2_KNOWN)
        device = _device()
        enc = GemmaPromptEncoder.from_folder(folder, dtype=precision_of(dtype)[1], device=device,
                                             free_after_encode=after_encode == "free")
        enc.offload()
        return io.NodeOutput(enc)


class SanaWMVAELoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMVAELoader",
            display_name="SANA-WM VAE Loader (LTX-2)",
            category=CATEGORY,
            description=("Loads the LTX-2 video VAE from a SANA-WM release folder: its vae/ subfolder (the "
                         "bidirectional releases) or ltx2_causal_vae/ (SANA-WM_streaming: the causal VAE that "
                         "decodes chunk by chunk)."),
            inputs=[
                io.Combo.Input("vae", options=loader_options("sana_wm", _VAE_KNOWN, _has_vae), tooltip=(
                    "A release folder under models/sana_wm holding vae/ (either layout), or the '(download from "
                    "<repo>)' entry; only vae/ is downloaded. SANA-WM_streaming's ltx2_causal_vae/ is the causal "
                    "VAE the Stream to Video node decodes with, chunk by chunk.")),
                io.Combo.Input("dtype", options=list(DTYPE_CHOICES), default="auto", tooltip=DTYPE_TOOLTIP),
                io.Combo.Input("tiling", options=list(TILING_PRESETS), default="reference", tooltip=(
                    "reference: 512 px spatial tiles and 96-frame time windows like the reference (the decode "
                    "streams window by window). low_memory: 32-frame windows, a much smaller "
                    "fixed working set for long clips on small GPUs/RAM (seams blended over 8 frames). "
                    "off: one pass (short clips only).")),
                io.String.Input("path_or_hub_id", default="", optional=True, tooltip=(
                    "Overrides 'vae': an absolute path to a release folder or a vae/ folder, or owner/repo.")),
            ],
            outputs=[Vae.Output(display_name="vae")],
        )

    @classmethod
    def validate_inputs(cls, vae=None, dtype=None, tiling=None):
        return combo_problem(cls, vae=None if is_known_choice(vae, _STAGE1_KNOWN) else vae, dtype=dtype,
                             tiling=tiling)

    @classmethod
    def execute(cls, vae, dtype, tiling, path_or_hub_id="") -> io.NodeOutput:
        folder = resolve(vae, path_or_hub_id, "sana_wm", known=_STAGE1_KNOWN,
                         patterns=["vae/*", f"{CAUSAL_VAE_DIR}/*"])
        device = _device()
        v = LTX2Vae.from_folder(folder, dtype=precision_of(dtype)[1], device=device,
                                tiling=TILING_PRESETS[tiling])
        return io.NodeOutput(v)


NODES = [SanaWMModelLoader, SanaWMTextEncoderLoader, SanaWMVAELoader]
