"""Streaming decode with the causal LTX-2 VAE: one latent chunk at a time, equal to one whole causal decode.

The network is diffusers' `AutoencoderKLLTX2Video` decoder with `decoder_causal=True` (the streaming release's
`ltx2_causal_vae/`). In causal mode every temporal convolution pads its input on the left with copies of the
first frame and every temporal upsampler drops its first `stride_t - 1` output frames, so a frame depends only on
earlier frames. What diffusers lacks is state across calls. While a `CausalStreamDecoder` runs a chunk, each
causal conv of the decoder is handed, instead of that padding, the last `k_t - 1` frames of its padded input
from the previous chunk, and each upsampler drops its leading frames on the first chunk only. Chunks decoded
one after another therefore see exactly the context one whole decode sees (NVlabs' `decode_per_frame_with_cache`
does the same with a per-layer feature list). The state is a fixed number of frames per layer: its size does not
grow with the number of chunks. The result is the whole decode's in exact arithmetic (float64: ~1e-14). Both
decodes here run the decoder's RMS norms with a channel sum in a fixed order (`fixed_norm.py`; diffusers'
`torch.mean` rounds differently at another frame count), so in float32 chunked decode equals one-shot decode bit
for bit on CPU, and one-shot stays within float32 rounding of diffusers' own decode (tests/test_vae_causal.py).

Output frames: the first chunk of `l` latents gives `1 + 8(l - 1)` pixel frames, later chunks `8l`; the first
pixel frame is the sink (the conditioning image) and is dropped by default, as the streaming reference does.
Never `torch.compile` this decoder: the state lives outside the graph.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch

from ..deps import require
from .fixed_norm import fixed_order_norms
from .ltx2 import LTX2Vae


@dataclass
class CausalDecodeState:
    """What one stream carries between chunks, keyed by the decoder's module names."""

    tails: dict[str, torch.Tensor] = field(default_factory=dict)  # per causal conv: last k_t-1 padded input frames
    trimmed: set[str] = field(default_factory=set)                # upsamplers past their first (trimming) call
    latent_frames: int = 0                                         # latent frames decoded so far

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tails.values())


def _conv_forward(mod, state: CausalDecodeState, name: str):
    """A causal conv's forward that takes its left context from the previous chunk when there is one."""
    keep = int(mod.kernel_size[0]) - 1

    def forward(hidden_states: torch.Tensor, causal: bool = True) -> torch.Tensor:
        if keep <= 0:
            return mod.conv(hidden_states)
        prev = state.tails.get(name)
        left = hidden_states[:, :, :1].expand(-1, -1, keep, -1, -1) if prev is None else prev
        padded = torch.cat([left, hidden_states], dim=2)
        state.tails[name] = padded[:, :, -keep:].clone()  # a copy: a view would pin the whole chunk
        return mod.conv(padded)

    return forward


def _time_space_unfold(x: torch.Tensor, stride: tuple[int, int, int], frames: int, h: int, w: int) -> torch.Tensor:
    """(B, C*st*sh*sw, F, H, W) -> (B, C, F*st, H*sh, W*sw): channel groups become sub-frames and sub-pixels."""
    st, sh, sw = stride
    b = x.shape[0]
    x = x.reshape(b, -1, st, sh, sw, frames, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)  # B, C, F, st, H, sh, W, sw
    return x.reshape(b, x.shape[1], frames * st, h * sh, w * sw)


def _upsampler_forward(mod, state: CausalDecodeState, name: str):
    """An upsampler's forward that drops its leading `stride_t - 1` frames on the stream's first chunk only."""
    stride = tuple(int(s) for s in mod.stride)

    def forward(hidden_states: torch.Tensor, causal: bool = True) -> torch.Tensor:
        _, _, frames, h, w = hidden_states.shape
        drop = 0 if name in state.trimmed else stride[0] - 1
        state.trimmed.add(name)
        out = _time_space_unfold(mod.conv(hidden_states), stride, frames, h, w)[:, :, drop:]
        if mod.residual:
            res = _time_space_unfold(hidden_states, stride, frames, h, w)
            res = res.repeat(1, (stride[0] * stride[1] * stride[2]) // mod.upscale_factor, 1, 1, 1)
            out = out + res[:, :, drop:]
        return out

    return forward


@contextlib.contextmanager
def _stateful(decoder: torch.nn.Module, state: CausalDecodeState) -> Iterator[None]:
    """Route the decoder's causal convs and upsamplers through `state` for the duration (instance forwards)."""
    lib = require("diffusers.models.autoencoders.autoencoder_kl_ltx2", "The causal LTX-2 VAE", "diffusers>=0.42.1")
    patched = []
    try:
        for name, mod in decoder.named_modules():
            if isinstance(mod, lib.LTX2VideoCausalConv3d):
                mod.forward = _conv_forward(mod, state, name)
            elif isinstance(mod, lib.LTX2VideoUpsampler3d):
                mod.forward = _upsampler_forward(mod, state, name)
            else:
                continue
            patched.append(mod)
        yield
    finally:
        for mod in patched:
            del mod.forward  # back to the class's forward


def _check(vae: LTX2Vae, latents: torch.Tensor) -> None:
    if not vae.is_causal:
        raise ValueError("streaming decode needs the causal LTX-2 VAE (decoder_causal=True: the streaming release's "
                         "ltx2_causal_vae/); this VAE decodes bidirectionally, so chunks would not join up. "
                         "Decode it with decode_chunks instead")
    if latents.ndim != 5 or latents.shape[0] != 1:
        raise ValueError(f"latents must be (1,C,l,h,w), got {tuple(latents.shape)}")
    if latents.shape[1] != vae.latent_channels:
        raise ValueError(f"latents have {latents.shape[1]} channels, the VAE expects {vae.latent_channels}")
    if latents.shape[2] < 1:
        raise ValueError("a latent chunk needs at least one latent frame")


class CausalStreamDecoder:
    """Decodes consecutive latent chunks of one clip; call `reset()` (or make a new one) for the next clip.

    `decode(chunk)` takes normalised latents `(1,C,l,h,w)` (Stage-1 / refiner output) and returns pixels
    `(1,3,f,H,W)` in [-1,1] in the decoder dtype. With `drop_sink` the clip's first pixel frame (the sink, a
    reconstruction of the conditioning image) is left out, so chunk 0 of 4 latents gives 24 frames, later chunks
    of 3 latents 24 frames each.
    """

    def __init__(self, vae: LTX2Vae, *, drop_sink: bool = True):
        self.vae = vae
        self.drop_sink = bool(drop_sink)
        self.state = CausalDecodeState()

    def reset(self) -> None:
        self.state = CausalDecodeState()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        _check(self.vae, latents)
        first = self.state.latent_frames == 0
        z = self.vae.denormalize(latents)
        decoder = self.vae.vae.decoder
        with _stateful(decoder, self.state), fixed_order_norms(decoder):
            out = decoder(z, None, causal=True)
        self.state.latent_frames += int(latents.shape[2])
        return out[:, :, 1:] if first and self.drop_sink else out


@torch.no_grad()
def decode_causal(vae: LTX2Vae, latents: torch.Tensor, *, drop_sink: bool = False) -> torch.Tensor:
    """One whole causal decode of normalised latents (diffusers' decoder with the fixed-order norms, no tiling):
    what the streamed chunks join up to."""
    _check(vae, latents)
    with fixed_order_norms(vae.vae.decoder):
        out = vae.vae.decoder(vae.denormalize(latents), None, causal=True)
    return out[:, :, 1:] if drop_sink else out


def decode_causal_chunks(vae: LTX2Vae, latents: torch.Tensor, sizes: Iterable[int], *,
                         drop_sink: bool = True) -> Iterator[torch.Tensor]:
    """Streams `latents` through one `CausalStreamDecoder` in chunks of `sizes` latent frames (summing to l)."""
    sizes = [int(s) for s in sizes]
    if any(s < 1 for s in sizes) or sum(sizes) != latents.shape[2]:
        raise ValueError(f"chunk sizes {sizes} must be positive and add up to the {latents.shape[2]} latent frames")
    dec = CausalStreamDecoder(vae, drop_sink=drop_sink)
    start = 0
    for s in sizes:
        yield dec.decode(latents[:, :, start:start + s])
        start += s
