"""A tiny random causal LTX-2 VAE in the streaming release's layout (`SANA-WM_streaming/ltx2_causal_vae/`).

The release folder is written by NVlabs' own class (`AutoencoderKLCausalLTX2Video`): its `config.json` carries
that class name, `decoder_causal: true` and `decoder_upsample_type` (NVlabs' order, reversed before use), with
the weights under diffusers' LTX-2 module names. The tiny one is built with diffusers' class and written in that
form, with four decoder blocks whose upsamplers differ (spatial, temporal, spatiotemporal x2), so a loader that
maps the list in the wrong order fails its strict load, and the streaming decode meets spatial-only, time-only
and joint upsamplers. Same strides as the bidirectional tiny VAE (8 in time, 32 in space), same latent channels.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import tiny_config as C

SEED_CAUSAL_VAE, SEED_CAUSAL_VAE_STATS = 20, 21  # added to the tiny weights seed, beside tiny_config's seeds

# NVlabs' order (as in the release config); diffusers wants it reversed (`vae.ltx2.diffusers_overrides`).
DECODER_UPSAMPLE_TYPE = ("spatial", "temporal", "spatiotemporal", "spatiotemporal")

CAUSAL_VAE_CONFIG = dict(
    C.VAE_CONFIG,
    decoder_block_out_channels=(4, 8, 16, 32), decoder_layers_per_block=(1, 1, 1, 1, 1),
    decoder_spatio_temporal_scaling=(True, True, True, True), decoder_inject_noise=(False,) * 5,
    upsample_residual=(True,) * 4, upsample_factor=(2,) * 4, decoder_causal=True,
)


def build_causal_vae(seed: int = C.TINY_WEIGHTS_SEED) -> Any:
    """diffusers `AutoencoderKLLTX2Video` with the tiny causal config (eval, fp32); the caller's RNG is untouched."""
    import torch
    from diffusers import AutoencoderKLLTX2Video

    from .tiny_build import quiet_hf

    cfg = dict(CAUSAL_VAE_CONFIG, upsample_type=tuple(reversed(DECODER_UPSAMPLE_TYPE)))
    with torch.random.fork_rng(devices=[]), quiet_hf():
        torch.manual_seed(seed + SEED_CAUSAL_VAE)
        vae = AutoencoderKLLTX2Video(**cfg).eval()
        stats = torch.Generator().manual_seed(seed + SEED_CAUSAL_VAE_STATS)
        with torch.no_grad():  # non-trivial latent statistics, so the normalisation is exercised
            vae.latents_mean.copy_(0.1 * torch.randn(C.LATENT_CHANNELS, generator=stats))
            vae.latents_std.copy_(0.5 + torch.rand(C.LATENT_CHANNELS, generator=stats))
    return vae


def write_causal_vae(folder: str | Path, seed: int = C.TINY_WEIGHTS_SEED) -> Path:
    """Writes `folder/config.json` + `diffusion_pytorch_model.safetensors` as the release does; returns `folder`."""
    folder = Path(folder)
    build_causal_vae(seed).save_pretrained(str(folder))
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    cfg.pop("upsample_type", None)
    cfg.update(_class_name="AutoencoderKLCausalLTX2Video", decoder_upsample_type=list(DECODER_UPSAMPLE_TYPE),
               gradient_checkpointing=False)
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    return folder
