#!/usr/bin/env python
"""Stage-2 refiner benchmark: time per chunk and peak memory against video length.

    python benchmarks/bench_refiner.py                 # tiny random refiner on CPU, several lengths
    python benchmarks/bench_refiner.py --full --cuda   # full-size LTX-2 refiner (random weights) on CUDA,
                                                       # with and without block offload / fp8
    python benchmarks/bench_refiner.py --full --cuda --weights models/sana_wm/SANA-WM_bidirectional/refiner

Each length runs in its own subprocess so the peak RSS (CPU) or peak CUDA allocation is that run's
own. The sliding window bounds each chunk's attention to sink + 10 history + 3 active frames, so time
per chunk should be flat and total time linear in length; memory should not grow with length.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# LTX-2 19B video stream, as in the release's refiner/transformer/config.json.
FULL_CONFIG = dict(in_channels=128, out_channels=128, num_attention_heads=32, attention_head_dim=128,
                   cross_attention_dim=4096, num_layers=48, caption_channels=3840)


def _full_random_transformer(dtype, fp8: bool):
    """Full-size refiner with random video weights (CPU), built like the real loader does."""
    import torch
    from diffusers import SanaWMLTX2RefinerTransformer3DModel

    from sana_wm_core.runtime.fp8 import convert_linears_to_fp8
    from sana_wm_core.refiner.loading import is_video_key

    with torch.device("meta"):
        model = SanaWMLTX2RefinerTransformer3DModel(**FULL_CONFIG)
    gen = torch.Generator().manual_seed(0)
    state = {k: (torch.randn(v.shape, generator=gen, dtype=torch.float32) * 0.02).to(dtype)
             for k, v in model.state_dict().items() if is_video_key(k)}
    model.load_state_dict(state, strict=False, assign=True)
    if fp8:
        for block in model.transformer_blocks:
            for name in ("attn1", "attn2", "ff"):
                convert_linears_to_fp8(getattr(block, name), dtype)
    return model.eval().requires_grad_(False)


def one_run(args) -> dict:
    import torch

    from sana_wm_core.refiner.loop import RefineSettings, refine_latents
    from sana_wm_core.runtime.offload import BlockOffloader, move_materialised
    from sana_wm_core.refiner.runtime import _TOP_VIDEO_MODULES

    device = torch.device("cuda" if args.cuda else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)  # steadier numbers on a shared machine
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    if args.full:
        if args.weights:
            from sana_wm_core.refiner.loading import load_refiner_transformer
            net = load_refiner_transformer(Path(args.weights) / "transformer", dtype, fp8=args.fp8)
        else:
            net = _full_random_transformer(dtype, args.fp8)
        channels, ctx_dim, ctx_len, h, w = 128, 3840, 1024, 22, 40
    else:
        from sana_wm_core.testing.tiny_refiner import tiny_components
        net = tiny_components(latent_channels=16)["transformer"].to(dtype)
        channels, ctx_dim, ctx_len, h, w = 16, 64, 128, 6, 8
    for name in _TOP_VIDEO_MODULES:
        move_materialised(getattr(net, name), device)
    net.scale_shift_table.data = net.scale_shift_table.data.to(device)
    if args.offload is None:
        for block in net.transformer_blocks:
            move_materialised(block, device)
    else:
        BlockOffloader(net.transformer_blocks, device, resident=args.offload, hooks=True)
    gen = torch.Generator().manual_seed(0)
    lat = torch.randn(1, channels, args.frames, h, w, generator=gen)
    ctx = torch.randn(1, ctx_len, ctx_dim, generator=gen).to(device, dtype)
    mask = torch.ones(1, ctx_len, dtype=torch.int64, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    stamps = [time.perf_counter()]

    def on_chunk(done, total):
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    refine_latents(net, lat, ctx, mask, fps=16, generator=torch.Generator().manual_seed(42), dtype=dtype,
                   settings=RefineSettings(), on_chunk=on_chunk)
    per_chunk = [b - a for a, b in zip(stamps, stamps[1:])]
    result = {"latent_frames": args.frames, "video_frames": 8 * (args.frames - 1) + 1, "chunks": len(per_chunk),
              "total_s": round(stamps[-1] - stamps[0], 4),
              "first_chunk_s": round(per_chunk[0], 4),  # includes the sink capture
              "chunk_median_s": round(statistics.median(per_chunk), 4), "chunk_min_s": round(min(per_chunk), 4)}
    if device.type == "cuda":
        result["peak_cuda_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    else:
        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="full-size LTX-2 refiner (random weights unless --weights)")
    ap.add_argument("--cuda", action="store_true", help="run on CUDA")
    ap.add_argument("--weights", default="", help="a refiner/ folder to load instead of random weights")
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default=None)
    ap.add_argument("--fp8", action="store_true", help="fp8 e4m3 block weights")
    ap.add_argument("--offload", type=int, default=None, help="keep N blocks on the device, stream the rest")
    ap.add_argument("--lengths", default="", help="comma-separated latent frame counts")
    ap.add_argument("--frames", type=int, default=0, help=argparse.SUPPRESS)  # one run (subprocess mode)
    args = ap.parse_args()
    args.dtype = args.dtype or ("bf16" if args.cuda else "fp32")
    if args.frames:
        print(json.dumps(one_run(args)))
        return 0

    lengths = [int(x) for x in args.lengths.split(",") if x] or ([7, 13, 25] if args.full else [4, 7, 13, 25, 49, 97])
    variants = [(args.offload, args.fp8)]
    if args.full and args.cuda and args.offload is None and not args.fp8:
        variants = [(None, False), (4, False), (None, True), (4, True)]
    print(f"# refiner benchmark: {'full-size' if args.full else 'tiny'} on {'cuda' if args.cuda else 'cpu'}, "
          f"{args.dtype}, {os.cpu_count()} cpus")
    print("\n| offload blocks | fp8 | latent frames | video frames | chunks | total s | s / chunk (median) "
          "| s / video frame | peak RSS MiB | peak VRAM MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for offload, fp8 in variants:
        for n in lengths:  # one clean process per run, so each peak is its own
            cmd = [sys.executable, __file__, "--frames", str(n), "--dtype", args.dtype]
            cmd += ["--full"] * args.full + ["--cuda"] * args.cuda + ["--fp8"] * fp8
            cmd += ["--offload", str(offload)] if offload is not None else []
            cmd += ["--weights", args.weights] if args.weights else []
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"| {offload if offload is not None else 'all'} | {fp8} | {n} | FAILED: "
                      f"{proc.stderr.strip().splitlines()[-1][:120] if proc.stderr.strip() else proc.returncode} |")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            vram = f"{r['peak_cuda_gib'] * 1024:.0f}" if r.get("peak_cuda_gib") else "-"
            print(f"| {offload if offload is not None else 'all'} | {fp8} | {r['latent_frames']} | "
                  f"{r['video_frames']} | {r['chunks']} | {r['total_s']:.3f} | {r['chunk_median_s']:.4f} | "
                  f"{r['total_s'] / r['video_frames']:.5f} | {r['peak_rss_mib']:.0f} | {vram} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
