"""What the tiny-model benchmarks share: options (model size, threads, device, dtype) and random inputs."""
from __future__ import annotations

import argparse

import torch

from dit_oracle import camera_conditions
from sana_wm_core.sampling import Stage1Conditioning

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def add_tiny_model_args(ap: argparse.ArgumentParser) -> None:
    """--hw, --hidden, --layers, --threads, --device, --dtype."""
    ap.add_argument("--hw", type=int, nargs=2, default=[6, 10])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=list(DTYPES), default="fp32")


def runtime_from_args(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    """Apply --threads and return (device, dtype)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return torch.device(args.device), DTYPES[args.dtype]


def conditioning(L: int, h: int, w: int, channels: int, text_dim: int, seed: int = 0) -> Stage1Conditioning:
    """A random conditioning of L latent frames (64 text tokens, all valid, with a negative prompt)."""
    g = torch.Generator().manual_seed(seed)
    return Stage1Conditioning(
        prompt_embeds=torch.randn(1, 1, 64, text_dim, generator=g), prompt_mask=torch.ones(1, 64, dtype=torch.long),
        negative_embeds=torch.randn(1, 1, 64, text_dim, generator=g), negative_mask=torch.ones(1, 64, dtype=torch.long),
        image_latent=torch.randn(1, channels, 1, h, w, generator=g), raymap=camera_conditions(1, L, h, w)[0],
        chunk_plucker=torch.randn(48, L, h, w, generator=g), num_frames=8 * (L - 1) + 1, height=32 * h, width=32 * w)
