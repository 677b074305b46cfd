"""self_forcing streaming: time and memory per block as the clip grows, and streaming vs the bidirectional
sampler for the same frames.

Table 1: for clips of n blocks (latent frames 3n + 1), the seconds per block (first, median, last), the
carried state the model reads per block (the `DiTCache`: GDN states, conv tails, the softmax K/V window) and
the peak memory growth during a block (CUDA: max allocated; CPU: the process RSS peak above its level at the
block's start, sampled every 2 ms). Both should be flat in n. Table 2: the same frames with the
bidirectional model (same weights, `flow_euler_ltx`, 60 steps, CFG 5, i.e. batch 2) vs streaming (4 steps per
block + 1 cache pass, no CFG): the time ratio. Table 3: the whole per-chunk pipeline (Stage 1 + AR refiner +
causal decode to uint8 frames, `stream_video` run sequentially) on the tiny SANA-WM_streaming bundle (96x128 px,
built into a temporary folder) for clips of n chunks: seconds and peak memory growth per chunk as in table 1,
and the process RSS after the last chunk minus after the first (what the clip holds beyond one chunk; frames are
not kept). All should be flat in n.

Tables 1-2: a random tiny DiT (default 4 blocks, one softmax, hidden 128), a moving camera + Plücker inputs.

    .venv/bin/python benchmarks/bench_streaming.py [--blocks 1 4 16 40] [--compare 4 8] [--pipeline 1 4 16 40]
        [--hw 6 10] [--threads N] [--device cpu|cuda] [--dtype fp32|bf16] [--hidden 128] [--layers 4] [--steps 60]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench_args import add_tiny_model_args, conditioning, runtime_from_args  # noqa: E402
from bench_stream_overlap import load_bundle  # noqa: E402
from dit_oracle import make_pair  # noqa: E402
from sana_wm_core.model import SanaWMConfig, SanaWMTransformer  # noqa: E402
from sana_wm_core.sampling import sample_stage1, stream_stage1  # noqa: E402
from sana_wm_core.streaming import plan_stream_video, stream_video  # noqa: E402
from sana_wm_core.testing import tiny_config as C  # noqa: E402


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class PeakMemory:
    """Peak memory above the level at `start()`: CUDA max allocated, else a sampled process RSS."""

    def __init__(self, device: torch.device) -> None:
        self.device, self._peak, self._base, self._on = device, 0, 0, False
        if device.type != "cuda":
            threading.Thread(target=self._poll, daemon=True).start()

    def _poll(self) -> None:
        while True:
            if self._on:
                self._peak = max(self._peak, _rss())
            time.sleep(0.002)

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._base = self._peak = _rss()
            self._on = True

    def stop(self) -> int:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self._base
        self._on = False
        return max(0, self._peak - self._base)


def _cache_bytes(cache) -> int:
    """The carried state a forward reads (`DiTCache.nbytes`; 0 for the first chunk's cache-free calls)."""
    return 0 if cache is None else cache.nbytes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, nargs="*", default=[1, 4, 16, 40])
    ap.add_argument("--compare", type=int, nargs="*", default=[4, 8], help="block counts for table 2 (none: skip)")
    ap.add_argument("--steps", type=int, default=60, help="bidirectional sampler steps (CFG 5)")
    ap.add_argument("--pipeline", type=int, nargs="*", default=[1, 4, 16, 40],
                    help="chunk counts for table 3 (Stage 1 + refine + decode); none: skip it")
    add_tiny_model_args(ap)
    args = ap.parse_args()
    device, dtype = runtime_from_args(args)
    h, w = args.hw
    heads = max(1, args.hidden // 32)
    bidir, _ = make_pair(0, num_layers=args.layers, hidden_size=args.hidden, num_attention_heads=heads,
                         chunk_plucker_post_attn_blocks=args.layers)
    stream = SanaWMTransformer(SanaWMConfig(**{**bidir.config.to_dict(), "chunk_size": 3})).eval()
    stream.load_state_dict(bidir.state_dict())
    bidir, stream = bidir.to(device, dtype), stream.to(device, dtype)
    cfg = stream.config
    held = []
    stream.register_forward_pre_hook(lambda m, a, kw: held.append(_cache_bytes(kw.get("cache"))), with_kwargs=True)
    mem = PeakMemory(device)

    print(f"device {device}, {args.dtype}, {torch.get_num_threads()} threads, DiT {cfg.num_layers} blocks hidden "
          f"{cfg.hidden_size}, latent {h}x{w}, 3-frame blocks, cached_blocks 2 + sink\n")
    if args.blocks:
        print("| blocks | latent frames | s/block first | s/block median | s/block last | state read (KiB) max "
              "| peak mem / block (MiB) median, max |")
        print("|---|---|---|---|---|---|---|")
    for n in args.blocks:
        L = 3 * n + 1
        cond = conditioning(L, h, w, cfg.in_channels, cfg.caption_channels)
        held.clear()
        times, peaks, _ = _timed_chunks(stream_stage1(stream, cond, seed=1), device, mem)
        state = [b / 1024 for b in held]
        print(f"| {n} | {L} | {times[0]:.4f} | {statistics.median(times):.4f} | {times[-1]:.4f} | "
              f"{max(state):.0f} | {statistics.median(peaks):.2f}, {max(peaks):.2f} |")

    if args.compare:
        print(f"\n| blocks | latent frames | bidirectional {args.steps} steps CFG 5 (s) | streaming 4+1/block (s) "
              "| ratio |")
        print("|---|---|---|---|---|")
    for n in args.compare:
        L = 3 * n + 1
        cond = conditioning(L, h, w, cfg.in_channels, cfg.caption_channels)
        t0 = time.perf_counter()
        sample_stage1(bidir, cond, steps=args.steps, guidance_scale=5.0, seed=1, flow_shift=9.8)
        tb = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in stream_stage1(stream, cond, seed=1):
            pass
        ts = time.perf_counter() - t0
        print(f"| {n} | {L} | {tb:.3f} | {ts:.3f} | {tb / ts:.1f}x |")
    if args.pipeline:
        pipeline_table(args.pipeline, device, mem)
    return 0


def _timed_chunks(chunks, device: torch.device, mem: PeakMemory) -> tuple[list, list, list]:
    """Seconds, peak memory growth (MiB) and RSS after each item of a chunk generator (items are dropped)."""
    times, peaks, rss = [], [], []
    while True:
        mem.start()
        t0 = time.perf_counter()
        try:
            next(chunks)
        except StopIteration:
            mem.stop()
            return times, peaks, rss
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        peaks.append(mem.stop() / 2 ** 20)
        rss.append(_rss())


def pipeline_table(counts: list, device: torch.device, mem: PeakMemory) -> None:
    """Table 3: Stage 1 + refine + decode per chunk on the tiny streaming bundle (sequential schedule)."""
    with tempfile.TemporaryDirectory() as tmp:
        dit, vae, refiner = load_bundle(Path(tmp) / "models", device)
        h, w = C.TINY_HEIGHT // 32, C.TINY_WIDTH // 32
        refiner.encode_prompt("a road")                     # the prompt is encoded once, before chunk 0
        warm = conditioning(3 * 2 + 1, h, w, C.LATENT_CHANNELS, int(dit.config.caption_channels))
        list(stream_video(dit, plan_stream_video(dit, warm, vae, refiner), vae, refiner, seed=1,
                          refiner_prompt="a road", overlap=False))
        print(f"\ntiny SANA-WM_streaming bundle {C.TINY_HEIGHT}x{C.TINY_WIDTH} px, Stage 1 + AR refiner + causal "
              "decode per chunk, sequential\n")
        print("| chunks | latent frames | video frames | s/chunk first | s/chunk median | s/chunk last "
              "| peak mem / chunk (MiB) median, max | RSS last - first chunk (MiB) |")
        print("|---|---|---|---|---|---|---|---|")
        for n in counts:
            L = 3 * n + 1
            cond = conditioning(L, h, w, C.LATENT_CHANNELS, int(dit.config.caption_channels))
            plan = plan_stream_video(dit, cond, vae, refiner)
            chunks = stream_video(dit, plan, vae, refiner, seed=1, refiner_prompt="a road", overlap=False)
            times, peaks, rss = _timed_chunks(chunks, device, mem)
            assert len(times) == n
            print(f"| {n} | {L} | {plan.total_frames} | {times[0]:.4f} | {statistics.median(times):.4f} | "
                  f"{times[-1]:.4f} | {statistics.median(peaks):.2f}, {max(peaks):.2f} | "
                  f"{(rss[-1] - rss[0]) / 2 ** 20:+.1f} |")


if __name__ == "__main__":
    sys.exit(main())
