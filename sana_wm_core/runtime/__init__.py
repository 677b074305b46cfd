"""Runtime toolkit: memory (block offload), precision (dtype vocabulary, fp8 storage), kernel choice and the
host protocol (`host.py`: progress, interrupt) the ComfyUI nodes implement.

Everything here is device plumbing shared by the DiT, the refiner and the loaders; none of it imports ComfyUI.
"""
from .dtypes import DTYPE_CHOICES, WEIGHT_FORMATS, Precision, auto_dtype, parse_dtype, precision_problem
from .fp8 import FP8_DTYPE, Fp8Linear, convert_linears_to_fp8, dequantize, quantize_fp8
from .kernels import KernelSettings
from .offload import BlockOffloader, assign_tensor, move_materialised

__all__ = ["DTYPE_CHOICES", "WEIGHT_FORMATS", "Precision", "auto_dtype", "parse_dtype", "precision_problem",
           "FP8_DTYPE", "Fp8Linear", "convert_linears_to_fp8", "dequantize", "quantize_fp8", "KernelSettings",
           "BlockOffloader", "assign_tensor", "move_materialised"]
