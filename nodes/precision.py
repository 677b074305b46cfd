"""The loaders' precision widgets: one vocabulary (sana_wm_core/runtime/dtypes.py) with ComfyUI's bf16 answer.

Every loader offers `dtype` = auto / bf16 / fp16 / fp32; the DiT and refiner loaders also `weight_format` =
default / fp8_e4m3fn. Saved workflows may carry older values (the refiner's bfloat16 / float16 / float32, the
DiT's fp8_e4m3): those loaders declare `VALIDATE_INPUTS` with `validate_precision`, which accepts them, and
`precision_of` maps them.
"""
from __future__ import annotations

import torch

import comfy.model_management as mm

from ..sana_wm_core.runtime import DTYPE_CHOICES, WEIGHT_FORMATS, Precision, precision_problem

__all__ = ["DTYPE_CHOICES", "WEIGHT_FORMATS", "DTYPE_TOOLTIP", "WEIGHT_FORMAT_TOOLTIP", "precision_of",
           "validate_precision"]

DTYPE_TOOLTIP = "Compute dtype. auto = bf16 on GPUs that support it (fp16 otherwise), fp32 on CPU."
WEIGHT_FORMAT_TOOLTIP = ("default: weights stored in the compute dtype. fp8_e4m3fn stores the block weights in 8 "
                         "bits (half the memory; the DiT as ComfyUI stores fp8 models, the refiner with a "
                         "per-row scale) and upcasts them per layer; slightly "
                         "different numbers.")


def precision_of(dtype: str, weight_format: str = "default") -> tuple[Precision, torch.dtype]:
    """Widget values (older saved ones included) -> (precision, compute dtype on ComfyUI's torch device)."""
    precision = Precision.from_widgets(dtype, weight_format)
    return precision, precision.compute_dtype(mm.get_torch_device(), supports_bf16=mm.should_use_bf16)


def validate_precision(dtype: str, weight_format: str = "default"):
    """ComfyUI input validation: True, or the message naming the bad widget and its choices."""
    return precision_problem(dtype, weight_format) or True
