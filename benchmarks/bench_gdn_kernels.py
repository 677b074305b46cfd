"""Frame-wise GDN scan: PyTorch `frame_gdn` vs the Triton kernel at the released model's full size.

Shapes: batch 2 (CFG), 20 heads x 112, 121 latent frames x 880 tokens (60 s at 704x1280), bf16 inputs as
the DiT passes them. Two calls per GDN block: the main branch (with the normaliser stream) and the camera
branch (numerator only). Prints ms per call, speed-up, max |diff| against the torch path, peak memory and
the effective bandwidth against the bytes that must move at least (inputs read once, fp32 output once).

    .venv/bin/python benchmarks/bench_gdn_kernels.py [--frames 121] [--tokens 880] [--repeats 5]

Without CUDA it says so and runs the interpreter correctness check (TRITON_INTERPRET=1) at a small size.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_inputs(B, H, T, S, D, device, dtype, seed=0):
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)

    def rnd(*shape, scale=1.0, normal=False):
        x = torch.randn(*shape, generator=g) if normal else torch.rand(*shape, generator=g)
        return (x * scale).to(device=device, dtype=dtype)

    ks = (D * S) ** -0.5  # the model's key scale: ReLU(k) / sqrt(D * S)
    q, k, v = rnd(B, H, T, S, D), rnd(B, H, T, S, D, scale=ks), rnd(B, H, T, S, D, normal=True)
    qd, kd = rnd(B, H, T, S, D), rnd(B, H, T, S, D, scale=ks)
    beta = rnd(B, T, S, H).permute(0, 3, 1, 2)  # the model's (B, H, T, S) view of a (B, N, H) tensor
    decay = (0.5 + 0.5 * torch.rand(B, T, H, generator=g)).to(device).transpose(1, 2)
    return q, k, v, qd, kd, beta, decay


def run_gpu(args) -> None:
    import torch

    from sana_wm_core.model.kernels import gdn

    B, H, T, S, D = 2, 20, args.frames, args.tokens, 112
    q, k, v, qd, kd, beta, decay = make_inputs(B, H, T, S, D, "cuda", torch.bfloat16)
    print(f"device: {torch.cuda.get_device_name()}  shapes: B={B} H={H} T={T} S={S} D={D} bf16 inputs")
    rows = []
    for branch, kw in (("main (num/den)", dict(q_den=qd, k_den=kd)), ("camera (num)", {})):
        in_bytes = sum(t.numel() * t.element_size() for t in (q, k, v, beta, *kw.values()))
        min_bytes = in_bytes + q.numel() * 4
        ref = None
        for impl, prec in (("torch", ""), ("triton", "ieee"), ("triton", "tf32x3"), ("triton", "tf32")):
            os.environ[gdn.KERNEL_ENV] = impl
            os.environ[gdn.PRECISION_ENV] = prec
            try:
                out = gdn.frame_gdn(q, k, v, beta, decay, **kw)  # warm-up / compile
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    out = gdn.frame_gdn(q, k, v, beta, decay, **kw)
                    torch.cuda.synchronize()
                    times.append(time.perf_counter() - t0)
                peak = (torch.cuda.max_memory_allocated() - base) / 2**30
            except Exception as exc:  # report and keep benchmarking the other variants
                err = f"{type(exc).__name__}: {exc}"
                rows.append((branch, f"{impl} {prec}".strip(), None, None, None, None, err))
                continue
            ms = 1e3 * sorted(times)[len(times) // 2]
            if ref is None:
                ref, ref_ms = out, ms
            diff = (out - ref).abs().max().item()
            bw = f"{min_bytes / ms / 1e6:.0f} GB/s"
            rows.append((branch, f"{impl} {prec}".strip(), ms, ref_ms / ms, diff, peak, bw))
            del out
        del ref
    print(f"{'branch':16} {'impl':15} {'ms':>9} {'speed-up':>9} {'max|diff|':>10} {'extra GiB':>9}  note")
    for branch, impl, ms, sp, diff, peak, note in rows:
        if ms is None:
            print(f"{branch:16} {impl:15} {'failed':>9} {'':>9} {'':>10} {'':>9}  {note}")
        else:
            print(f"{branch:16} {impl:15} {ms:9.2f} {sp:9.2f} {diff:10.2e} {peak:9.2f}  {note}")


CHECK = r'''
import json, os, sys, time
os.environ["TRITON_INTERPRET"] = "1"
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/benchmarks"]
import torch
from bench_gdn_kernels import make_inputs
from sana_wm_core.model.kernels.gdn import frame_gdn
from sana_wm_core.model.kernels.gdn_triton import frame_gdn_triton
B, H, T, S, D = 1, 2, 6, 40, 112
q, k, v, qd, kd, beta, decay = make_inputs(B, H, T, S, D, "cpu", torch.bfloat16)
for name, kw in (("main (num/den)", dict(q_den=qd, k_den=kd)), ("camera (num)", {})):
    t0 = time.perf_counter(); ref = frame_gdn(q, k, v, beta, decay, **kw); t1 = time.perf_counter()
    out = frame_gdn_triton(q, k, v, beta, decay, **kw); t2 = time.perf_counter()
    print(json.dumps(dict(branch=name, shape=[B, H, T, S, D], max_abs_diff=(out - ref).abs().max().item(),
                          ref_max=ref.abs().max().item(), torch_s=t1 - t0, interpreter_s=t2 - t1)))
'''


def run_interpreter_check() -> int:
    print("bench_gdn_kernels: timing needs a CUDA GPU; running the Triton interpreter correctness check "
          "(TRITON_INTERPRET=1, CPU) at a small size instead.")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANA_WM_GDN_")}
    proc = subprocess.run([sys.executable, "-c", CHECK, str(ROOT)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-4000:])
        return proc.returncode
    worst = 0.0
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        worst = max(worst, r["max_abs_diff"])
        print(f"  {r['branch']:15} {r['shape']}: max|diff| {r['max_abs_diff']:.2e} (|ref| up to "
              f"{r['ref_max']:.2f}); torch {r['torch_s'] * 1e3:.1f} ms, interpreter {r['interpreter_s']:.2f} s")
    print("  OK" if worst < 1e-4 else "  MISMATCH")
    return 0 if worst < 1e-4 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=121)
    p.add_argument("--tokens", type=int, default=880)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    import torch

    if not torch.cuda.is_available():
        return run_interpreter_check()
    run_gpu(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
