"""The streaming clip (Stage 1 -> AR refiner -> causal decode, `sana_wm_core.streaming.stream_video`) run
sequentially and overlapped (`streaming_pipeline`: worker threads on CPU, CUDA streams on a GPU), on the tiny
SANA-WM_streaming bundle (built into a temporary folder).

Per schedule: wall seconds for the clip and per chunk (median of --repeats runs, after one warm-up run), and how
much of Stage 1's time ran while a refine or decode of an earlier chunk was running (from the recorded
`StageSpan`s; on CUDA these are host enqueue times). The two schedules' chunks are checked to be bit-identical.

    .venv/bin/python benchmarks/bench_stream_overlap.py [--chunks 6] [--repeats 3] [--threads N]
        [--device cpu|cuda]

Measured on the shared (noisy) 2-core dev machine, 6 chunks, median of 3, two sessions each: with 2 torch threads
sequential 1.12-1.41 s, threads 1.83-2.22 s; with 1 torch thread 0.98-1.14 s vs 1.03-1.13 s, Stage 1 overlapping
refine/decode about half its time. The tiny networks are bound by Python overhead, which the GIL serialises,
and the threads share the cores: on CPU the overlap does not pay, which is why the CPU default stays
sequential. On one GPU the host threads only enqueue and the stages' kernels run concurrently on their streams
(not measured here: no GPU).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench_args import conditioning  # noqa: E402
from sana_wm_core.testing import tiny_config as C  # noqa: E402
from sana_wm_core.streaming import plan_stream_video, stream_video  # noqa: E402
from sana_wm_core.streaming_pipeline import pipeline_mode  # noqa: E402


def load_bundle(models: Path, device: torch.device):
    from sana_wm_core.testing.tiny import build_all
    from sana_wm_core.testing.tiny_streaming import load_streaming_bundle

    build_all(models)
    return load_streaming_bundle(models, str(device))


def overlapped_share(trace) -> float:
    """Fraction of Stage-1 time spent while a refine/decode of another chunk was running."""
    source = [s for s in trace if s.stage == "source"]
    others = [s for s in trace if s.stage != "source"]
    total = sum(s.end - s.start for s in source) or 1.0
    shared = 0.0
    for s in source:
        for o in others:
            if o.index != s.index:
                shared += max(0.0, min(s.end, o.end) - max(s.start, o.start))
    return min(1.0, shared / total)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        dit, vae, refiner = load_bundle(Path(tmp) / "models", device)
        L = 3 * args.chunks + 1
        cond = conditioning(L, C.TINY_HEIGHT // 32, C.TINY_WIDTH // 32, C.LATENT_CHANNELS,
                            int(dit.config.caption_channels))
        plan = plan_stream_video(dit, cond, vae, refiner)
        refiner.encode_prompt("a road")
        print(f"device {device}, {torch.get_num_threads()} threads, tiny bundle "
              f"{C.TINY_HEIGHT}x{C.TINY_WIDTH} px, {plan.chunks} chunks, {args.repeats} runs each\n")
        print("| schedule | mode | clip (s) | s/chunk | Stage 1 overlapped with refine/decode |")
        print("|---|---|---|---|---|")
        list(stream_video(dit, plan, vae, refiner, seed=1, refiner_prompt="a road", overlap=False))   # warm-up
        first = {}
        for overlap in (False, True):
            walls, shares = [], []
            for _ in range(args.repeats):
                trace: list = []
                t0 = time.perf_counter()
                chunks = list(stream_video(dit, plan, vae, refiner, seed=1, refiner_prompt="a road",
                                           overlap=overlap, trace=trace))
                if device.type == "cuda":
                    torch.cuda.synchronize()
                walls.append(time.perf_counter() - t0)
                shares.append(overlapped_share(trace))
                first.setdefault(overlap, chunks)
            mode = pipeline_mode(device, [device], overlap)
            wall = statistics.median(walls)
            print(f"| {'overlapped' if overlap else 'sequential'} | {mode} | {wall:.3f} | {wall / plan.chunks:.4f} "
                  f"| {100 * statistics.median(shares):.0f}% |")
        same = all(torch.equal(a.latents, b.latents) and np.array_equal(a.frames, b.frames)
                   for a, b in zip(first[False], first[True]))
        print(f"\nbit-identical chunks: {same}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
