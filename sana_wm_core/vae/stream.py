"""Streaming decode: latents -> pixel-frame chunks, never the whole clip as one float tensor.

The decode walks diffusers' temporal windows itself (windows of `tile_frames/8 + 1` latents every
`stride_frames/8` latents; later windows lose their last decoded frame and are cross-faded linearly with the
previous window over `tile_frames - stride_frames` frames), so the concatenated chunks equal
`AutoencoderKLLTX2Video.decode` with the same tiling settings, while only two windows exist at a time. Each
window is itself tiled in space when larger than one spatial tile. With temporal tiling off, or a clip of
at most one window, the clip is decoded in one go (the reference's behaviour for short clips).

Exactness (tests/test_vae_stream.py): the chunks are bit-identical to diffusers' `decode` with the same
tiling settings, and to an untiled decode while the clip fits one window (<= 97 frames with the reference's
96/64 settings). For longer clips the windowed decode is an approximation of a one-pass decode, exactly as
in the reference (which enables the same tiling); on the tiny *random* VAE the gap reaches max 2.0 / mean
0.26 (output range ~1.7), so no bound is promised for real weights beyond "what the reference does".
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..latent import SanaWMLatent
from .ltx2 import LTX2Vae


def _decode_window(vae: LTX2Vae, z: torch.Tensor) -> torch.Tensor:
    net = vae.vae
    tile = vae.tiling.tile_px // vae.spatial_ratio
    if vae.tiling.spatial and (z.shape[-1] > tile or z.shape[-2] > tile):
        return net.tiled_decode(z, None, return_dict=True).sample
    return net.decoder(z, None)


def _crossfade_(prev: torch.Tensor, cur: torch.Tensor, extent: int) -> None:
    """In place: the head of `cur` fades in over the tail of `prev` (weights x/extent, per frame)."""
    extent = min(prev.shape[2], cur.shape[2], extent)
    for x in range(extent):
        cur[:, :, x] = prev[:, :, x - extent] * (1 - x / extent) + cur[:, :, x] * (x / extent)


@torch.no_grad()
def decode_chunks(vae: LTX2Vae, latents: torch.Tensor) -> Iterator[torch.Tensor]:
    """Normalised latents (1,C,L,h,w) -> float chunks (1,3,f,H,W) in [-1,1] (decoder dtype), in order."""
    if latents.ndim != 5 or latents.shape[0] != 1:
        raise ValueError(f"latents must be (1,C,L,h,w), got {tuple(latents.shape)}")
    if latents.shape[1] != vae.latent_channels:
        raise ValueError(f"latents have {latents.shape[1]} channels, the VAE expects {vae.latent_channels}")
    z = vae.denormalize(latents)
    L = z.shape[2]
    t = vae.temporal_ratio
    total = (L - 1) * t + 1
    win = vae.tiling.tile_frames // t
    step = vae.tiling.stride_frames // t
    if not vae.tiling.temporal or L <= win or step < 1:
        yield _decode_window(vae, z)
        return
    extent = vae.tiling.tile_frames - vae.tiling.stride_frames
    keep = vae.tiling.stride_frames
    prev: torch.Tensor | None = None
    done = 0
    for start in range(0, L, step):
        cur = _decode_window(vae, z[:, :, start:start + win + 1])
        if prev is None:
            out = cur[:, :, :keep + 1]
        else:
            cur = cur[:, :, :-1]
            _crossfade_(prev, cur, extent)
            out = cur[:, :, :keep]
        out = out[:, :, :total - done]
        if out.shape[2]:
            done += out.shape[2]
            yield out
        prev = cur


def to_uint8_frames(chunk: torch.Tensor) -> np.ndarray:
    """(1,3,f,H,W) in [-1,1] -> (f,H,W,3) uint8: clamp(127.5x+127.5) in the decoder dtype, then truncated."""
    px = (chunk[0] * 127.5 + 127.5).clamp(0, 255).to(torch.uint8)
    return px.permute(1, 2, 3, 0).contiguous().cpu().numpy()


def to_unit_frames(chunk: torch.Tensor) -> torch.Tensor:
    """(1,3,f,H,W) in [-1,1] -> (f,H,W,3) float32 in [0,1] (ComfyUI IMAGE; diffusers' `np` output)."""
    return (chunk[0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 3, 0).float().cpu()


def decode_frames(vae: LTX2Vae, latents: torch.Tensor, *, drop_first: int = 0,
                  max_chunk: int | None = None) -> Iterator[np.ndarray]:
    """Stream uint8 frame chunks (f,H,W,3); the first `drop_first` pixel frames are skipped.

    `max_chunk` splits chunks further (bounds the uint8 buffer a consumer holds at once).
    """
    skip = int(drop_first)
    for chunk in decode_chunks(vae, latents):
        if skip:
            n = min(skip, chunk.shape[2])
            chunk, skip = chunk[:, :, n:], skip - n
            if not chunk.shape[2]:
                continue
        step = max_chunk or chunk.shape[2]
        for i in range(0, chunk.shape[2], step):
            yield to_uint8_frames(chunk[:, :, i:i + step])


def decode_to_images(vae: LTX2Vae, latents: torch.Tensor, *, drop_first: int = 0,
                     max_frames: int | None = None) -> torch.Tensor:
    """The whole clip as one (F,H,W,3) float32 IMAGE batch in [0,1]; for short clips only.

    Refuses (ValueError) clips longer than `max_frames` so a 961-frame clip never becomes 10 GB of floats.
    """
    L = latents.shape[2]
    frames = (L - 1) * vae.temporal_ratio + 1 - int(drop_first)
    if max_frames is not None and frames > max_frames:
        raise ValueError(f"{frames} frames is too long to hold as one IMAGE batch (limit {max_frames}); "
                         "save it with SanaWMSaveVideo, which streams the decode into the mp4")
    parts, skip = [], int(drop_first)
    for chunk in decode_chunks(vae, latents):
        if skip:
            n = min(skip, chunk.shape[2])
            chunk, skip = chunk[:, :, n:], skip - n
        if chunk.shape[2]:
            parts.append(to_unit_frames(chunk))
    return torch.cat(parts, 0)


def decode_latent_frames(vae: LTX2Vae, latent: SanaWMLatent, *, max_chunk: int | None = None) -> Iterator[np.ndarray]:
    """`decode_frames` of a `SanaWMLatent`: the frames it keeps (its `drop_first_frames` skipped), as uint8 chunks."""
    return decode_frames(vae, latent.samples, drop_first=latent.drop_first_frames, max_chunk=max_chunk)


def decode_latent_images(vae: LTX2Vae, latent: SanaWMLatent, *, max_frames: int | None = None) -> torch.Tensor:
    """`decode_to_images` of a `SanaWMLatent`: the frames it keeps as one IMAGE batch (short clips only)."""
    return decode_to_images(vae, latent.samples, drop_first=latent.drop_first_frames, max_frames=max_frames)
