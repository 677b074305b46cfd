"""How refined latents travel and how decoders must treat them.

A refined latent keeps the untouched Stage-1 sink frame at latent index 0. Decoding it gives the
usual `8*(L-1)+1` pixel frames; the first `drop_sink` pixel frames (1: the conditioning image's
reconstruction) must then be dropped, so 41 latents give 320 frames, not 321, and the camera path
for overlays becomes `c2w[drop_sink:]`. Stage-1 latents have `drop_sink == 0`.

Works on the SANAWM_LATENT value whether it is a dict (`{"samples": (1,C,T,h,w), ...}`), an object
with a `samples`/`latents` attribute (dataclass or plain), or a bare tensor.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch

_TENSOR_KEYS = ("samples", "latents", "latent")


def latent_tensor(latent: Any) -> torch.Tensor:
    """The `(B,C,T,h,w)` tensor inside a SANAWM_LATENT value."""
    if isinstance(latent, torch.Tensor):
        return latent
    for key in _TENSOR_KEYS:
        value = latent.get(key) if isinstance(latent, dict) else getattr(latent, key, None)
        if isinstance(value, torch.Tensor):
            return value
    raise ValueError(f"latent input holds no latent tensor (looked for {_TENSOR_KEYS}); got {type(latent).__name__}")


def latent_field(latent: Any, name: str, default: Any = None) -> Any:
    if isinstance(latent, dict):
        return latent.get(name, default)
    return getattr(latent, name, default)


def sink_frames_to_drop(latent: Any) -> int:
    """Pixel frames a decoder must drop from the front of this latent's decode (0 for Stage-1 latents).

    Reads `SanaWMLatent.drop_first_frames`, else a `drop_sink` key/attribute, else `meta["drop_sink"]`.
    """
    meta = latent_field(latent, "meta", None)
    value = latent_field(latent, "drop_first_frames", None)
    if value is None:
        value = latent_field(latent, "drop_sink", None)
    if value is None and isinstance(meta, dict):
        value = meta.get("drop_sink")
    return int(value or 0)


def drop_sink_pixels(frames, latent: Any, frame_axis: int = 0):
    """Drops the sink's pixel frames from decoded `frames` (any array/tensor, frames along `frame_axis`)."""
    n = sink_frames_to_drop(latent)
    if n == 0:
        return frames
    index = [slice(None)] * frames.ndim
    index[frame_axis] = slice(n, None)
    return frames[tuple(index)]


def with_refined(latent: Any, refined: torch.Tensor, sink_size: int) -> Any:
    """A copy of `latent` (same kind) holding `refined`, flagged as refined with `sink_size` frames to drop.

    For `sampling.SanaWMLatent` that is `drop_first_frames=sink_size, stage="refined"` plus
    `meta["refined"]`; dicts and other objects get `refined=True, drop_sink=sink_size`.
    """
    n = int(sink_size)
    flags = {"refined": True, "drop_sink": n}
    if isinstance(latent, torch.Tensor):
        return {"samples": refined, **flags}
    if isinstance(latent, dict):
        key = next(k for k in _TENSOR_KEYS if isinstance(latent.get(k), torch.Tensor))
        return {**latent, key: refined, **flags}
    key = next(k for k in _TENSOR_KEYS if isinstance(getattr(latent, k, None), torch.Tensor))
    if dataclasses.is_dataclass(latent):
        names = {f.name for f in dataclasses.fields(latent)}
        wanted = {**flags, "drop_first_frames": n, "stage": "refined"}
        direct = {k: v for k, v in wanted.items() if k in names}
        if isinstance(getattr(latent, "meta", None), dict):
            direct["meta"] = {**latent.meta, **flags}
        out = dataclasses.replace(latent, **{key: refined}, **direct)
        if "drop_first_frames" not in names and "meta" not in direct:
            for k, v in flags.items():
                object.__setattr__(out, k, v)
        return out
    out = copy.copy(latent)
    setattr(out, key, refined)
    for k, v in flags.items():
        setattr(out, k, v)
    return out
