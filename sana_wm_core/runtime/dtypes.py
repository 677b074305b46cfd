"""One precision vocabulary for every loader: compute dtype names, the weight storage format, the "auto" rule.

Loader nodes offer `dtype` (what the network computes in: auto / bf16 / fp16 / fp32) and, where the network
can store its block weights in 8 bits, `weight_format` (default / fp8_e4m3fn). "auto" is fp32 on the CPU and
bf16 on accelerators that support it, fp16 on those that do not. Values written by older versions of the pack
(the refiner's "bfloat16" / "float16" / "float32", the DiT's "fp8_e4m3") are still accepted and mapped here,
so saved workflows keep loading.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch

from .fp8 import FP8_DTYPE

DTYPE_CHOICES = ("auto", "bf16", "fp16", "fp32")
WEIGHT_FORMATS = ("default", "fp8_e4m3fn")
COMPUTE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# older widget values -> (dtype, weight_format); weight_format None keeps the one given beside it
LEGACY_DTYPES = {"bfloat16": ("bf16", None), "float16": ("fp16", None), "float32": ("fp32", None),
                 "fp8_e4m3": ("bf16", "fp8_e4m3fn")}   # the DiT loader's single fp8 choice computed in bf16

# names the core API accepts for a dtype (load_transformer(dtype=...)): the vocabulary, torch names, fp8
_ALIASES = {**COMPUTE_DTYPES, "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32,
            "fp8": FP8_DTYPE, "fp8_e4m3": FP8_DTYPE, "fp8_e4m3fn": FP8_DTYPE, "float8_e4m3fn": FP8_DTYPE}

BF16Probe = Union[None, bool, Callable[[torch.device], bool]]


def parse_dtype(dtype: Union[None, str, torch.dtype]) -> Optional[torch.dtype]:
    """A torch dtype for a name of the vocabulary or its torch spelling; None stays None (keep the checkpoint's)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).strip().lower().replace("torch.", "")
    if _ALIASES.get(key) is None:
        raise ValueError(f"dtype {dtype!r} is not one of fp32, bf16, fp16, fp8")
    return _ALIASES[key]


def _bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return True  # mps / xpu / others run bf16 on the torch versions this pack pins


def auto_dtype(device: Union[str, torch.device], supports_bf16: BF16Probe = None) -> torch.dtype:
    """The "auto" rule: fp32 on the CPU; bf16 on an accelerator that supports it (the release's dtype), else fp16.

    supports_bf16: the host's answer for this device (a bool or a callable, e.g. ComfyUI's
    `model_management.should_use_bf16`); None asks torch."""
    device = torch.device(device)
    if device.type == "cpu":
        return torch.float32
    if supports_bf16 is None:
        ok = _bf16_supported(device)
    else:
        ok = bool(supports_bf16(device) if callable(supports_bf16) else supports_bf16)
    return torch.bfloat16 if ok else torch.float16


@dataclass(frozen=True)
class Precision:
    """What a loader widget pair asks for: a compute dtype name (or "auto") and the block weight storage."""

    dtype: str = "auto"
    weight_format: str = "default"

    @classmethod
    def from_widgets(cls, dtype: str, weight_format: Optional[str] = "default") -> "Precision":
        """Normalises widget values (legacy ones included); ValueError names the bad input and the choices."""
        problem = precision_problem(dtype, weight_format)
        if problem:
            raise ValueError(problem)
        name, legacy_format = LEGACY_DTYPES.get(dtype, (dtype, None))
        fmt = legacy_format or weight_format or "default"
        return cls(name, fmt)

    @property
    def fp8(self) -> bool:
        return self.weight_format == "fp8_e4m3fn"

    def compute_dtype(self, device: Union[str, torch.device], supports_bf16: BF16Probe = None) -> torch.dtype:
        return auto_dtype(device, supports_bf16) if self.dtype == "auto" else COMPUTE_DTYPES[self.dtype]


def precision_problem(dtype: Optional[str] = None, weight_format: Optional[str] = None) -> str:
    """'' when both widget values are known (current or legacy), else a message naming the input and the fix.

    For ComfyUI's input validation of loaders whose saved workflows may carry older values."""
    if dtype is not None and dtype not in DTYPE_CHOICES and dtype not in LEGACY_DTYPES:
        return f"dtype {dtype!r} is not one of {', '.join(DTYPE_CHOICES)}; pick one on the loader node"
    if weight_format is not None and weight_format not in WEIGHT_FORMATS:
        return f"weight_format {weight_format!r} is not one of {', '.join(WEIGHT_FORMATS)}; pick one on the loader node"
    return ""
