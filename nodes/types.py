"""The pack's own socket types, declared once (ComfyUI V3 `io.Custom`); every node family imports them from here.

The io_type strings are what saved workflows store on their links: never rename them.
"""
from __future__ import annotations

from comfy_api.latest import io

TextEncoder = io.Custom("SANAWM_TEXT_ENCODER")      # Gemma-2 prompt encoder
Vae = io.Custom("SANAWM_VAE")                       # LTX-2 video VAE
Camera = io.Custom("SANAWM_CAMERA")                 # camera path (c2w per frame, fps, intrinsics)
Intrinsics = io.Custom("SANAWM_INTRINSICS")         # pinhole intrinsics in source-image pixels
Refiner = io.Custom("SANAWM_REFINER")               # the Stage-2 refiner handle

ALL = (TextEncoder, Vae, Camera, Intrinsics, Refiner)
# The Stage-1 model, its conditioning and its latent are core types (io.Model, io.Conditioning, io.Latent) since
# the loader returns a core MODEL; saved workflows with the former SANAWM_MODEL / SANAWM_CONDITIONING /
# SANAWM_LATENT links: nodes/compat.py.


def combo_problem(node: type, **values) -> bool | str:
    """True, or why a dropdown value is not one of its choices. ComfyUI 0.3.75 checks V1 dropdowns itself but
    never V3 `io.Combo` ones, so each node's `validate_inputs` names its dropdowns and calls this (a linked
    value arrives as None and is left to the node)."""
    for inp in node.define_schema().inputs:   # not GET_SCHEMA: it caches on the class, locked here
        value = values.get(inp.id)
        if isinstance(inp, io.Combo.Input) and value is not None and value not in inp.options:
            shown = inp.options if len(inp.options) <= 20 else f"(list of length {len(inp.options)})"
            return f"{inp.id}: {value!r} not in {shown}"
    return True
