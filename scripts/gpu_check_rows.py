"""What every `make gpu-check` section shares: one printed row per check, and the few measuring helpers.

A check is a function returning (status, figure); `guarded` runs it and prints its `ROW {...}` line at once, so
a section that runs out of time keeps the rows it finished (gpu_check.py collects them into the table).
"""
from __future__ import annotations

import json
import sys
import traceback

import torch

GIB = 2 ** 30


def emit(check: str, status: str, figure: str) -> None:
    print("ROW " + json.dumps({"check": check, "status": status, "figure": figure}), flush=True)


def guarded(check: str, fn) -> None:
    """Runs one check; an exception becomes a `failed` row with its last line, and the section goes on."""
    try:
        status, figure = fn()
    except Exception as exc:  # noqa: BLE001 - the table must say what broke, not stop
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()
        traceback.print_exc(file=sys.stderr)
        status, figure = "failed", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc) else ''}"
    emit(check, status, figure)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak(device: torch.device) -> str:
    return f"peak {torch.cuda.max_memory_allocated() / GIB:.1f} GiB" if device.type == "cuda" else "peak n/a on cpu"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def bench_config(smoke: bool, device: torch.device):
    """The Stage-1 DiT config, dtype and latent (h, w) the benchmark sections measure (tiny in smoke mode)."""
    from sana_wm_core.model import SanaWMConfig

    if smoke:
        return SanaWMConfig(in_channels=16, num_layers=4, hidden_size=128, num_attention_heads=4, linear_head_dim=32,
                            caption_channels=64, chunk_plucker_post_attn_blocks=4), torch.float32, (4, 6)
    return SanaWMConfig(), torch.bfloat16, (22, 40)
