"""The LTX-2 decoder's per-channel RMS norm with a channel sum whose order does not depend on the tensor's size.

diffusers' `PerChannelRMSNorm` divides by sqrt(mean(x^2 over channels) + eps) and takes the mean with `torch.mean`,
whose reduction order follows the tensor's other sizes: the same pixel then rounds differently in a 4-frame
chunk and in the whole clip, and a random VAE amplifies those last bits to ~1.5e-5 between chunked and one-shot
float32 decodes. Here the squares are added as a fixed pairwise tree of elementwise adds over the channel axis
(channel i + channel i + C/2, halving until one is left; an odd one out joins the first), so every position's sum
is the same sequence of roundings whatever the frame count. The result is the same function (within float32
rounding of diffusers'; a tree sum is, if anything, the more accurate one) at about the same cost: log2(C) adds
over shrinking halves instead of one reduction. The causal decode paths (`causal.py`) run every decoder norm
this way, so chunked decode equals one-shot decode bit for bit where the convolutions are shape-independent
(CPU; on CUDA, cuDNN may pick another algorithm for another length).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from ..deps import require


def channel_mean_square(x: torch.Tensor, dim: int) -> torch.Tensor:
    """mean(x^2) over `dim` (kept as a size-1 dim), summed in an order fixed by the channel count alone."""
    parts = x.movedim(dim, 0).square()
    channels = parts.shape[0]
    while parts.shape[0] > 1:
        half = parts.shape[0] // 2
        summed = parts[:half] + parts[half:2 * half]
        if parts.shape[0] % 2:
            summed[:1] += parts[2 * half:]
        parts = summed
    return (parts / channels).movedim(0, dim)


def _norm_forward(mod: torch.nn.Module):
    dim, eps = int(mod.channel_dim), float(mod.eps)

    def forward(x: torch.Tensor, channel_dim: int | None = None) -> torch.Tensor:
        # diffusers reduces over its configured dim whatever `channel_dim` says; so does this
        return x / torch.sqrt(channel_mean_square(x, dim) + eps)

    return forward


@contextlib.contextmanager
def fixed_order_norms(decoder: torch.nn.Module) -> Iterator[None]:
    """Run the decoder's `PerChannelRMSNorm`s with `channel_mean_square` for the duration (instance forwards,
    removed after: the loaded diffusers module is unchanged outside a causal decode)."""
    lib = require("diffusers.models.autoencoders.autoencoder_kl_ltx2", "The causal LTX-2 VAE", "diffusers>=0.42.1")
    patched = [m for m in decoder.modules() if isinstance(m, lib.PerChannelRMSNorm)]
    try:
        for mod in patched:
            mod.forward = _norm_forward(mod)
        yield
    finally:
        for mod in patched:
            mod.__dict__.pop("forward", None)   # back to the class's forward
