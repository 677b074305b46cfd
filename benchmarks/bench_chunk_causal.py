"""chunk_flow_euler: time per global step vs number of chunks, cached (finished chunks saved once, only the
unfinished window runs) vs recompute (the whole active prefix every step, as NVlabs' ChunkFlowEuler does).

A random chunk-causal DiT (default 4 blocks, one softmax, hidden 128, chunk size 3), CFG batch 2, a moving
camera + Plücker inputs, latent frames 4 + 3(n-1) for n chunks. Prints a markdown table per interval_k
(default: the reference's 1/num_chunks, and 1 = chunks one after another) with the ratio and the largest
difference between the two paths.

    .venv/bin/python benchmarks/bench_chunk_causal.py [--chunks 2 4 6 8] [--steps 4] [--hw 6 10]
        [--threads N] [--device cpu|cuda] [--dtype fp32|bf16] [--hidden 128] [--layers 4]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench_args import add_tiny_model_args, conditioning, runtime_from_args  # noqa: E402
from dit_oracle import make_pair  # noqa: E402
from sana_wm_core.sampling import chunk_schedule, sample_chunk_causal  # noqa: E402

CHUNK = 3


def timed(fn, device: torch.device) -> tuple[float, float, torch.Tensor]:
    """(wall s, process-CPU s, output) of one call after synchronising the device."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, nargs="+", default=[2, 4, 6, 8])
    ap.add_argument("--steps", type=int, default=4)
    add_tiny_model_args(ap)
    ap.add_argument("--interval-k", type=float, nargs="+", default=[0.0, 1.0], help="0 = 1/num_chunks")
    args = ap.parse_args()
    device, dtype = runtime_from_args(args)
    model, _ = make_pair(0, num_layers=args.layers, hidden_size=args.hidden, num_attention_heads=args.hidden // 32,
                         softmax_every_n=4, chunk_size=CHUNK, chunk_plucker_post_attn_blocks=args.layers)
    model = model.to(device=device, dtype=dtype)
    h, w = args.hw
    print(f"torch {torch.__version__}, {device}, {args.dtype}, threads {torch.get_num_threads()}; DiT {args.layers} "
          f"blocks x {args.hidden}, chunk size {CHUNK}, latent {h}x{w}, {args.steps} steps, CFG batch 2")
    for k in args.interval_k:
        interval = k if k > 0 else None
        print(f"\ninterval_k = {'1/num_chunks' if interval is None else interval}\n")
        print("| chunks | latent frames | global steps | recompute ms / step | cached ms / step | ratio "
              "| CPU ratio | max rel diff |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in args.chunks:
            L = CHUNK + 1 + CHUNK * (n - 1)
            cond = conditioning(L, h, w, model.config.in_channels, model.config.caption_channels)
            total = chunk_schedule(L, CHUNK, args.steps, 3.0, interval_k=interval).total_steps
            run = dict(steps=args.steps, guidance_scale=4.0, seed=0, flow_shift=3.0, chunk_interval_k=interval)
            sample_chunk_causal(model, conditioning(5, h, w, model.config.in_channels, model.config.caption_channels),
                                steps=1, guidance_scale=4.0)                      # warm-up
            wall_r, cpu_r, ref = timed(lambda: sample_chunk_causal(model, cond, use_cache=False, **run), device)
            wall_c, cpu_c, out = timed(lambda: sample_chunk_causal(model, cond, use_cache=True, **run), device)
            rel = float((out.float() - ref.float()).abs().max() / ref.float().abs().max())
            print(f"| {n} | {L} | {total} | {1000 * wall_r / total:.1f} | {1000 * wall_c / total:.1f} | "
                  f"{wall_r / wall_c:.2f}x | {cpu_r / max(cpu_c, 1e-9):.2f}x | {rel:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
