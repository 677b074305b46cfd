"""Which kernel implementations run, as an explicit setting read once.

`KernelSettings` is what the model and the kernels consult. The environment variables only supply its default
(`KernelSettings.from_env()`, read when a model is built or when a kernel is called without settings):
  SANA_WM_GDN_KERNEL    = auto | torch | triton   frame-wise GDN scan: auto = Triton on CUDA when it loads, passes
                                                  its first-use self-check and has a kernel for the shapes, else
                                                  PyTorch; torch / triton force one (forcing skips the self-check)
  SANA_WM_GDN_PRECISION = ieee | tf32x3 | tf32    the Triton kernel's fp32 dot mode (ieee = PyTorch fp32 numerics)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

KERNEL_ENV = "SANA_WM_GDN_KERNEL"
PRECISION_ENV = "SANA_WM_GDN_PRECISION"
GDN_KERNELS = ("auto", "torch", "triton")
GDN_PRECISIONS = ("ieee", "tf32x3", "tf32")


@dataclass(frozen=True)
class KernelSettings:
    """gdn: auto / torch / triton; gdn_precision: ieee / tf32x3 / tf32 (Triton only)."""

    gdn: str = "auto"
    gdn_precision: str = "ieee"

    def __post_init__(self) -> None:
        if self.gdn not in GDN_KERNELS:
            raise ValueError(f"GDN kernel {self.gdn!r}: use one of {GDN_KERNELS} (default from {KERNEL_ENV})")
        if self.gdn_precision not in GDN_PRECISIONS:
            raise ValueError(f"GDN precision {self.gdn_precision!r}: use one of {GDN_PRECISIONS} "
                             f"(default from {PRECISION_ENV})")

    @property
    def forced_triton(self) -> bool:
        return self.gdn == "triton"

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
