"""ComfyUI's operations for the Stage-1 DiT: the `comfy.ops` classes its layers are built from.

The engine builds every linear / conv / norm layer from the namespace it is given (sana_wm_core/model/ops.py).
Handing it ComfyUI's own classes makes ComfyUI's model management work on the DiT as on its native models:
layers left on the offload device in low VRAM are cast per call (`comfy_cast_weights`), LoRA-style weight
patches apply there too, fp8 storage is upcast per layer, and current releases' Dynamic VRAM streams the
weights through its virtual buffer. Only `pick_operations(weight_dtype, compute_dtype, load_device=...)` is
used, which ComfyUI 0.3.75 and current releases both have.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

import comfy.model_patcher
import comfy.ops

from ..sana_wm_core.runtime.fp8 import FP8_DTYPE


def dit_operations(compute_dtype: torch.dtype, fp8: bool = False,
                   load_device: Optional[torch.device] = None) -> Any:
    """ComfyUI's choice of operations for weights stored in `compute_dtype` (or fp8 when `fp8`):
    `disable_weight_init` when storage and compute agree (cast only when ComfyUI offloads a layer),
    `manual_cast` when they differ (fp8 blocks upcast per layer), `fp8_ops` with `--fast fp8_matrix_mult`."""
    weight_dtype = FP8_DTYPE if fp8 and FP8_DTYPE is not None else compute_dtype
    return comfy.ops.pick_operations(weight_dtype, compute_dtype, load_device=load_device)


def core_patcher_class() -> type:
    """The ModelPatcher class ComfyUI itself uses for diffusion models (comfy/sd.py): `ModelPatcherDynamic` when
    current ComfyUI runs with Dynamic VRAM (main.py rebinds `CoreModelPatcher` at start-up, so this is read at
    call time), the classic `ModelPatcher` otherwise and on 0.3.75 (no `CoreModelPatcher`)."""
    return getattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)
