"""Command-line options the tiny-model benchmarks share: model size, threads, device and dtype."""
from __future__ import annotations

import argparse

import torch

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
