"""Peak memory of one Stage-1 forward vs number of latent frames: ours vs diffusers.

CPU: peak process RSS above the pre-forward baseline (sampled every 2 ms in a fresh subprocess per run);
CUDA: torch.cuda.max_memory_allocated. Model: the CPU-benchmark config (4 blocks x 256, 22x40 latent,
CFG batch 2) by default, or the full-size bf16 model on CUDA with --full.

    .venv/bin/python benchmarks/bench_dit_memory.py [--frames 2 4 8] [--diffusers-max-frames 4] [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]


def child(impl: str, frames: int, device: str, full: bool) -> dict:
    import psutil

    from bench_dit_cpu import CONFIG
    from bench_dit_gpu import build, make_inputs
    from sana_wm_core.model import SanaWMConfig

    dev = torch.device(device)
    cfg = SanaWMConfig() if full else SanaWMConfig(**CONFIG)
    dtype = torch.bfloat16 if (full or dev.type == "cuda") else torch.float32
    ours, ref = build(cfg, dev, dtype, with_ref=impl == "diffusers")
    model = ours if impl == "ours" else (lambda **kw: ref(**kw, return_dict=False)[0])
    kw = make_inputs(cfg, frames, 22, 40, dev, dtype)
    proc = psutil.Process()
    peak = [proc.memory_info().rss]
    base = peak[0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.002)

    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    with torch.no_grad():
        model(**kw)
    stop.set()
    th.join()
    out = {"impl": impl, "frames": frames, "cpu_peak_mib": (peak[0] - base) / 2 ** 20}
    if dev.type == "cuda":
        out["cuda_peak_mib"] = (torch.cuda.max_memory_allocated() - base_cuda) / 2 ** 20
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[2, 4, 8], help="latent frames")
    ap.add_argument("--diffusers-max-frames", type=int, default=4,
                    help="skip diffusers above this (its camera attention memory grows with N^2)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full", action="store_true", help="full-size bf16 model (CUDA)")
    ap.add_argument("--child", nargs=2, metavar=("IMPL", "FRAMES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.device, args.full)))
        return 0
    key = "cuda_peak_mib" if args.device.startswith("cuda") else "cpu_peak_mib"
    print(f"peak {'CUDA' if key == 'cuda_peak_mib' else 'RSS'} memory of one forward above the loaded model, "
          f"latent F x 22 x 40, CFG batch 2, {'full size' if args.full else '4 blocks x 256'}")
    print()
    print("| latent frames | tokens | ours MiB | diffusers MiB |")
    print("|---:|---:|---:|---:|")
    for f in args.frames:
        row = {}
        for impl in ("ours", "diffusers"):
            if impl == "diffusers" and f > args.diffusers_max_frames:
                row[impl] = "skipped"
                continue
            cmd = [sys.executable, __file__, "--child", impl, str(f), "--device", args.device]
            cmd += ["--full"] if args.full else []
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                row[impl] = "failed: " + (res.stderr.strip().splitlines() or ["?"])[-1][:60]
                continue
            row[impl] = f"{json.loads(res.stdout.strip().splitlines()[-1])[key]:.0f}"
        print(f"| {f} | {2 * f * 880} | {row['ours']} | {row['diffusers']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
