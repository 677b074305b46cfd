"""GPU speed and memory of one full-size Stage-1 forward (random bf16 weights): ours vs diffusers.

For 161 and 961 frames (21 / 121 latent frames of 22x40, CFG batch 2): seconds per forward, peak
memory, ratio to diffusers on the same GPU, and ratio to the FLOP floor (analytic FLOPs at 800 TFLOP/s).
Both models share the same weight tensors. diffusers is expected to run out of memory at 961 frames (its
fp32 camera SDPA gets non-contiguous inputs and falls back to the N^2 math kernel).

    .venv/bin/python benchmarks/bench_dit_gpu.py [--frames 161 961] [--repeats 3] [--no-diffusers]
    .venv/bin/python benchmarks/bench_dit_gpu.py --smoke     # tiny model on CPU: checks the script itself
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]

from dit_flops import forward_flops  # noqa: E402
from sana_wm_core.model import SanaWMConfig, SanaWMTransformer  # noqa: E402

PEAK_TFLOPS = 800.0


def build(cfg: SanaWMConfig, device, dtype, with_ref: bool):
    from diffusers import SanaWMTransformer3DModel

    torch.manual_seed(0)
    with torch.device(device):
        ref = SanaWMTransformer3DModel(**cfg.to_diffusers()).to(dtype).eval()
    with torch.no_grad():
        for p in ref.parameters():  # random, including the zero-initialised branches
            if bool((p == 0).all()):
                p.normal_(0, 0.02)
    with torch.device("meta"):
        ours = SanaWMTransformer(cfg)
    ours.load_state_dict(ref.state_dict(), assign=True)  # shares the weight tensors: no second copy
    ours.eval()
    return ours, (ref if with_ref else None)


def make_inputs(cfg, latent_frames, h, w, device, dtype):
    import math

    g = torch.Generator(device="cpu").manual_seed(0)
    B, L = 2, 300
    t = torch.full((B, 1, latent_frames), 700.0)
    t[:, :, 0] = 0
    cam = torch.eye(4).repeat(B, latent_frames, 1, 1)
    for f in range(latent_frames):
        a = 0.02 * f
        cam[:, f, :3, :3] = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
        cam[:, f, 2, 3] = 0.05 * f
    intr = torch.tensor([w * 0.9, w * 0.9, w / 2, h / 2]).repeat(B, latent_frames, 1)
    mask = torch.ones(B, L)
    mask[0, 1:] = 0
    return dict(
        hidden_states=torch.randn(B, cfg.in_channels, latent_frames, h, w, generator=g).to(device, dtype),
        timestep=t.to(device),
        encoder_hidden_states=torch.randn(B, 1, L, cfg.caption_channels, generator=g).to(device, dtype),
        encoder_attention_mask=mask.to(device),
        camera_conditions=torch.cat([cam.reshape(B, latent_frames, 16), intr], -1).to(device, dtype),
        chunk_plucker=torch.randn(B, cfg.chunk_plucker_channels, latent_frames, h, w, generator=g).to(device, dtype),
    )


def measure(fn, repeats: int, device) -> tuple[float, float]:
    """(seconds per call, peak GiB) or raises torch.cuda.OutOfMemoryError."""
    cuda = device.type == "cuda"
    with torch.no_grad():
        fn()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        if cuda:
            torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else float("nan")
    return (time.perf_counter() - t0) / repeats, peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[161, 961])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-diffusers", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny model on CPU (validates the script)")
    args = ap.parse_args()
    if args.smoke:
        cfg = SanaWMConfig(in_channels=16, num_layers=4, hidden_size=128, num_attention_heads=4, linear_head_dim=32,
                           caption_channels=64, chunk_plucker_post_attn_blocks=4)
        device, dtype, (h, w) = torch.device("cpu"), torch.float32, (4, 6)
        frames = [17]
    else:
        if not torch.cuda.is_available():
            print("bench_dit_gpu: no CUDA device; nothing to measure (use --smoke to check the script on CPU)")
            return 0
        cfg, device, dtype, (h, w), frames = SanaWMConfig(), torch.device("cuda"), torch.bfloat16, (22, 40), args.frames
    ours, ref = build(cfg, device, dtype, with_ref=not args.no_diffusers)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, {cfg.num_layers} blocks x {cfg.hidden_size}, {dtype}, CFG batch 2")
    print()
    print("| frames | latent | ours s/fwd | ours peak GiB | diffusers s/fwd | diffusers peak GiB | ours/diffusers "
          "| TFLOP/fwd | ours/FLOP-floor |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for nf in frames:
        lf = (nf - 1) // 8 + 1
        kw = make_inputs(cfg, lf, h, w, device, dtype)
        flops = forward_flops(cfg, 2, lf, h, w)["total"]
        s_ours, m_ours = measure(lambda: ours(**kw), args.repeats, device)
        s_ref = m_ref = float("nan")
        ref_note = "skipped"
        if ref is not None:
            try:
                s_ref, m_ref = measure(lambda: ref(**kw, return_dict=False)[0], args.repeats, device)
                ref_note = f"{s_ref:.2f}"
            except torch.cuda.OutOfMemoryError:
                ref_note = "OOM"
                torch.cuda.empty_cache()
        floor = flops / (PEAK_TFLOPS * 1e12)
        ratio = f"{s_ours / s_ref:.2f}" if s_ref == s_ref else "-"
        print(f"| {nf} | {lf}x{h}x{w} | {s_ours:.2f} | {m_ours:.1f} | {ref_note} | {m_ref:.1f} | {ratio} | "
              f"{flops / 1e12:.0f} | {s_ours / floor:.1f}x |")
        del kw
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print()
    print(f"FLOP floor = analytic FLOPs of the CFG-batch-2 forward at {PEAK_TFLOPS:.0f} TFLOP/s "
          "(~1.5 PFLOP per sample at 961 frames).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
