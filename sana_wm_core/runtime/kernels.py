"""Which kernel implementations run, as an explicit setting read once.

`KernelSettings` is what the model and the kernels consult. The environment variables only supply its default
(`KernelSettings.from_env()`, read when a model is built or when a kernel is called without settings):
  SANA_WM_GDN_KERNEL    = auto | torch | triton   frame-wise GDN scan: auto = Triton on CUDA when it loads, passes
                                                  its first-use self-check and has a kernel for the shapes, else
                                                  PyTorch; torch / triton force one (forcing skips the self-check)
  SANA_WM_GDN_PRECISION = ieee | tf32x3 | tf32    the Triton kernel's fp32 dot mode (ieee = PyTorch fp32 numerics)
`softmax_precision` has no variable (the default is the reference's numerics): "bf16" runs an fp32 model's softmax
attention in bf16 as the release does (diffusers, the parity oracle); "model" runs it in the model's own dtype, for
fp32 checks where bf16 rounding would hide 1e-7 differences behind whole bf16 ulps (a bf16 model is unaffected).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

KERNEL_ENV = "SANA_WM_GDN_KERNEL"
PRECISION_ENV = "SANA_WM_GDN_PRECISION"
GDN_KERNELS = ("auto", "torch", "triton")
GDN_PRECISIONS = ("ieee", "tf32x3", "tf32")
SOFTMAX_PRECISIONS = ("bf16", "model")


@dataclass(frozen=True)
class KernelSettings:
    """gdn: auto / torch / triton; gdn_precision: ieee / tf32x3 / tf32 (Triton only); softmax_precision:
    bf16 (the reference's) / model (see the module docstring)."""

    gdn: str = "auto"
    gdn_precision: str = "ieee"
    softmax_precision: str = "bf16"

    def __post_init__(self) -> None:
        if self.gdn not in GDN_KERNELS:
            raise ValueError(f"GDN kernel {self.gdn!r}: use one of {GDN_KERNELS} (default from {KERNEL_ENV})")
        if self.gdn_precision not in GDN_PRECISIONS:
            raise ValueError(f"GDN precision {self.gdn_precision!r}: use one of {GDN_PRECISIONS} "
                             f"(default from {PRECISION_ENV})")
        if self.softmax_precision not in SOFTMAX_PRECISIONS:
            raise ValueError(f"softmax precision {self.softmax_precision!r}: use one of {SOFTMAX_PRECISIONS}")

    @property
    def forced_triton(self) -> bool:
        return self.gdn == "triton"

    @property
    def bf16_softmax(self) -> bool:
        """Whether an fp32 model's softmax attention runs in bf16 (the reference's numerics)."""
        return self.softmax_precision == "bf16"

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "KernelSettings":
        """The default settings: both variables read once; a bad value raises naming the variable."""
        env = os.environ if environ is None else environ
        gdn = env.get(KERNEL_ENV, "").strip().lower() or "auto"
        precision = env.get(PRECISION_ENV, "").strip().lower() or "ieee"
        if gdn not in GDN_KERNELS:
            raise ValueError(f"{KERNEL_ENV}={gdn!r}: use 'torch', 'triton' or leave it unset (auto)")
        if precision not in GDN_PRECISIONS:
            raise ValueError(f"{PRECISION_ENV}={precision!r}: use one of {GDN_PRECISIONS} or leave it unset (ieee)")
        return cls(gdn, precision)
