"""The operations namespace the Stage-1 DiT builds its parametrised layers from.

`SanaWMTransformer(config, operations=...)` takes any namespace with `Linear`, `Conv1d`, `Conv2d`, `Conv3d`
and `RMSNorm` classes (torch.nn constructor signatures). `TorchOps` below is the default: torch.nn classes
computing exactly what the DiT always computed. Under ComfyUI the loader passes `comfy.ops.manual_cast` (or
what `comfy.ops.pick_operations` chooses), so ComfyUI's memory management treats the DiT like its native
models: partial loading in low VRAM, fp8 storage cast per layer, Dynamic VRAM. This module never imports
ComfyUI; it only relies on what both kinds of classes share.

Conv-shaped weights (patch embeddings, the FFN's 1x1 and temporal convs, the depthwise and short convs) keep
their checkpoint shapes but are computed our way (token-layout matmuls, fused kernels). They go through
`weight_user(cls)`: a subclass of the namespace's conv class whose `_conv_forward(input, weight, bias)` hands
the weight the class prepared (cast, moved, patched) to the caller's function. torch's and ComfyUI's conv
forwards both end in that call, so the caller always sees the weight the operations class meant to use.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Callable, Optional

import torch
import torch.nn as nn

from .kernels.linear import FP8_DTYPE, linear, quantize_fp8

LAYER_NAMES = ("Linear", "Conv1d", "Conv2d", "Conv3d", "RMSNorm")


def init_uniform_(module: nn.Module) -> None:
    """The DiT's matmul init: weight and bias uniform in +-1/sqrt(fan_in) (fan_in counts the kernel taps)."""
    w = getattr(module, "weight", None)
    if w is None:                 # a class that creates its weight when the state dict arrives
        return
    bound = 1.0 / math.sqrt(w[0].numel()) if w.ndim > 1 else 1.0
    with torch.no_grad():
        nn.init.uniform_(w, -bound, bound)
        if getattr(module, "bias", None) is not None:
            nn.init.uniform_(module.bias, -bound, bound)


class _ScaledWeight:
    """fp8 storage with a per-output-row scale (sana_wm_core/runtime/fp8.py) for the default classes."""

    def _register_scale(self) -> None:
        self.register_buffer("weight_scale", None, persistent=False)

    def to_fp8_(self) -> None:
        """Store the weight as e4m3 with a per-row scale; computation upcasts per call."""
        if FP8_DTYPE is None or self.weight.dtype == FP8_DTYPE:
            return
        q, scale = quantize_fp8(self.weight.data)
        self.weight = nn.Parameter(q, requires_grad=False)
        self.weight_scale = scale


class Linear(_ScaledWeight, nn.Linear):
    """y = x W^T + b, W cast (and de-scaled when fp8) to x's dtype and device at call time."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(in_features, out_features, bias, device, dtype)
        self._register_scale()

    def reset_parameters(self) -> None:
        init_uniform_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias, self.weight_scale)


def _conv_class(base: type) -> type:
    class Conv(_ScaledWeight, base):
        __doc__ = f"torch.nn.{base.__name__} whose weight may be stored in fp8 with a per-row scale."

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._register_scale()

        def reset_parameters(self) -> None:
            """Left to the layer that owns it (each use has its own init)."""

    Conv.__name__ = Conv.__qualname__ = base.__name__
    return Conv


Conv1d = _conv_class(nn.Conv1d)
Conv2d = _conv_class(nn.Conv2d)
Conv3d = _conv_class(nn.Conv3d)

_HAS_RMS_NORM = hasattr(torch.nn.functional, "rms_norm")  # torch >= 2.4 has the fused op


class RMSNorm(nn.RMSNorm):
    """RMS normalisation over the last dim, statistics in fp32 (reference semantics)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(device=x.device, dtype=x.dtype)
        if x.device.type == "cpu" and x.dtype == torch.float32:
            # F.rms_norm runs as five passes on a CPU; this is one reduction and two passes, same fp32 stats
            inv = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(self.eps)
            return torch.mul(x, inv.rsqrt_()).mul_(w)
        if _HAS_RMS_NORM:
            return torch.nn.functional.rms_norm(x, (x.shape[-1],), w, self.eps)
        return (x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * w


TorchOps = SimpleNamespace(Linear=Linear, Conv1d=Conv1d, Conv2d=Conv2d, Conv3d=Conv3d, RMSNorm=RMSNorm)
"""The default operations: plain torch.nn layers (no ComfyUI)."""


def layer_class(operations: Any, name: str) -> type:
    """`operations.<name>`, or the default class when the namespace has none (e.g. no RMSNorm)."""
    if operations is None:
        operations = TorchOps
    cls = getattr(operations, name, None)
    return cls if cls is not None else getattr(TorchOps, name)


class _WeightUser:
    """Mixin: `run_with_weight(x, fn)` computes `fn(x, weight, bias)` with the weight the class prepared."""

    _sana_fn: Optional[Callable] = None
    is_matmul = False

    def _conv_forward(self, input, weight, bias, *args, **kwargs):
        fn = self._sana_fn
        if fn is None:
            return super()._conv_forward(input, weight, bias, *args, **kwargs)
        return fn(input, weight, bias)

    def run_with_weight(self, x: torch.Tensor, fn: Callable) -> torch.Tensor:
        """Calls the layer on x (so its class casts / fetches / patches the weight) and lets fn compute."""
        self._sana_fn = fn
        try:
            return self(x)
        finally:
            self._sana_fn = None

    def matmul(self, x: torch.Tensor, activation: Optional[str] = None) -> torch.Tensor:
        """act(x (..., in * prod(kernel)) @ W^T + b): a conv whose kernel covers its whole input, as one matmul
        (activation: None or 'silu', fused into the product where the kernel can, see kernels/linear.py)."""
        scale = getattr(self, "weight_scale", None)
        return self.run_with_weight(x, lambda x, w, b: linear(x, w, b, scale, activation))


class _MatmulUser(_WeightUser):
    is_matmul = True  # a matmul weight: fp8 storage applies to it like to a Linear


_SUBCLASSES: dict = {}


def weight_user(cls: type, matmul: bool = False) -> type:
    """The subclass of a conv class that lends its prepared weight to our own computation (module docstring).

    matmul=True marks layers computed as matmuls (fp8 storage applies to them)."""
    key = (cls, matmul)
    sub = _SUBCLASSES.get(key)
    if sub is None:
        mixin = _MatmulUser if matmul else _WeightUser
        sub = type(cls.__name__, (mixin, cls), {"__module__": __name__, "__qualname__": cls.__name__})
        _SUBCLASSES[key] = sub
    return sub


def is_matmul_layer(module: nn.Module) -> bool:
    """A Linear of any operations namespace, or a conv-shaped weight computed as a matmul."""
    return isinstance(module, nn.Linear) or bool(getattr(module, "is_matmul", False))


def keeps_row_scale(module: nn.Module) -> bool:
    """Whether the layer stores fp8 with a per-row scale (the default classes); other operations (ComfyUI's)
    store fp8 as a plain cast and convert per call."""
    return "weight_scale" in getattr(module, "_buffers", {})
