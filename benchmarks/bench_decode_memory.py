"""Peak memory of SANA-WM's streamed decode + mp4 save vs the size of the clip as one float tensor.

Runs the real LTX-2 decode path (`sana_wm_core.vae.decode_frames` -> `sana_wm_core.video.save_clip`) on
the tiny random LTX-2 VAE (real 32x/8x strides, tiny channels) at the full 704x1280 frame size, so the
pixel-sized buffers (decoded windows, uint8 chunks, the encoder) are real while the network is cheap.
Host RAM is sampled from /proc every 10 ms; on CUDA the peak allocated VRAM is reported too.

    python benchmarks/bench_decode_memory.py                          # 481 frames, 704x1280, CPU
    python benchmarks/bench_decode_memory.py --frames 961 --device cuda
    python benchmarks/bench_decode_memory.py --frames 97 --whole      # also a one-shot decode, for contrast
    python benchmarks/bench_decode_memory.py --frames 97,193,481 --height 352 --width 640   # growth table
    python benchmarks/bench_decode_memory.py --tiling low_memory      # the loader's low_memory preset

Several frame counts run one per subprocess, so each peak is measured from a clean process.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

GB = 1024 ** 3


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Max RSS seen while the block runs (polled), relative to RSS at entry."""

    def __enter__(self):
        self.base = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def delta(self) -> int:
        return self.peak - self.base


def build_vae(device: str, tiling: str = "reference"):
    import test_sampling_support as tiny
    from sana_wm_core.vae import TILING_PRESETS, LTX2Vae

    return LTX2Vae(tiny.vae().to(device), device=device, tiling=TILING_PRESETS[tiling])


def run_streamed(vae, z, out: Path, fps: float) -> dict:
    from sana_wm_core.vae import decode_frames
    from sana_wm_core.video import save_clip

    if z.is_cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with PeakRSS() as mem:
        info, _ = save_clip(decode_frames(vae, z), out, fps=fps)
    dt = time.perf_counter() - t0
    vram = torch.cuda.max_memory_allocated() if z.is_cuda else 0
    return {"mode": "streamed", "frames": info.frames, "rss": mem.delta, "vram": vram, "sec": dt}


def run_whole(vae, z, out: Path, fps: float) -> dict:
    """The naive path for contrast: decode everything, convert everything, then write."""
    from sana_wm_core.vae import NO_TILING, decode_chunks, to_uint8_frames
    from sana_wm_core.video import write_mp4

    saved = vae.tiling
    vae.set_tiling(NO_TILING)
    if z.is_cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        with PeakRSS() as mem:
            clip = next(decode_chunks(vae, z)).float().cpu()
            info = write_mp4(out, [to_uint8_frames(clip)], fps)
            del clip
    finally:
        vae.set_tiling(saved)
    dt = time.perf_counter() - t0
    vram = torch.cuda.max_memory_allocated() if z.is_cuda else 0
    return {"mode": "whole", "frames": info.frames, "rss": mem.delta, "vram": vram, "sec": dt}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", default="481", help="pixel frames (8k+1), comma-separated for several runs; "
                    "961 = 60 s at 16 fps")
    ap.add_argument("--height", type=int, default=704)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--whole", action="store_true", help="also run a one-shot decode for contrast")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument("--tiling", default="reference", choices=["reference", "low_memory"],
                    help="the VAE loader's tiling preset")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    counts = [int(x) for x in str(args.frames).split(",") if x.strip()]
    if any((n - 1) % 8 or n < 1 for n in counts):
        ap.error("--frames must be 8k+1 (comma-separated for several runs)")
    if len(counts) > 1:
        return run_many(args, counts)
    args.frames = counts[0]
    if args.threads:
        torch.set_num_threads(args.threads)
    L = (args.frames - 1) // 8 + 1
    vae = build_vae(args.device, args.tiling)
    z = torch.randn(1, vae.latent_channels, L, args.height // 32, args.width // 32,
                    generator=torch.Generator().manual_seed(0)).to(args.device)
    whole_f32 = args.frames * args.height * args.width * 3 * 4
    whole_u8 = whole_f32 // 4
    rows = []
    with tempfile.TemporaryDirectory() as d:
        rows.append(run_streamed(vae, z, Path(d) / "streamed.mp4", 16.0))
        rows[-1]["mode"] = f"streamed ({args.tiling})"
        if args.whole:
            rows.append(run_whole(vae, z, Path(d) / "whole.mp4", 16.0))
    if args.json:
        print("JSON " + json.dumps({"rows": rows, "f32": whole_f32}))
        return 0
    print(f"\nSANA-WM decode + save, tiny LTX-2 VAE, {args.frames} frames ({L} latents) at "
          f"{args.width}x{args.height}, device {args.device}, torch {torch.__version__}")
    print(f"whole clip as float32: {whole_f32 / GB:.2f} GB; as uint8: {whole_u8 / GB:.2f} GB\n")
    print("| mode | frames | peak RAM over baseline | vs float32 clip | peak VRAM | time | frames/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        vram = f"{r['vram'] / GB:.2f} GB" if r["vram"] else "-"
        print(f"| {r['mode']} | {r['frames']} | {r['rss'] / GB:.2f} GB | {100 * r['rss'] / whole_f32:.0f}% | "
              f"{vram} | {r['sec']:.1f} s | {r['frames'] / r['sec']:.1f} |")
    return 0


def run_many(args, counts: list[int]) -> int:
    """One clean subprocess per frame count; prints the growth table."""
    print(f"SANA-WM decode + save, tiny LTX-2 VAE at {args.width}x{args.height}, device {args.device}\n")
    print("| frames | float32 clip | streamed peak RAM over baseline | vs float32 clip | peak VRAM | time |")
    print("|---|---|---|---|---|---|")
    for n in counts:
        cmd = [sys.executable, __file__, "--frames", str(n), "--height", str(args.height), "--width",
               str(args.width), "--device", args.device, "--threads", str(args.threads), "--tiling", args.tiling,
               "--json"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        res = json.loads(next(l for l in out.splitlines() if l.startswith("JSON "))[5:])
        r, f32 = res["rows"][0], res["f32"]
        vram = f"{r['vram'] / GB:.2f} GB" if r["vram"] else "-"
        print(f"| {n} | {f32 / GB:.2f} GB | {r['rss'] / GB:.2f} GB | {100 * r['rss'] / f32:.0f}% | {vram} | "
              f"{r['sec']:.1f} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
