"""The `streaming` section of `make gpu-check`: the distilled streaming variant's speed at full size, and the
streaming paths' bit-exactness on the device (stages overlapped vs sequential, chunked vs one-shot decode)."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from gpu_check_rows import bench_config, guarded, peak, rel, reset_peak, sync


def section_streaming(smoke: bool, device: torch.device) -> None:
    """The streaming sampler (self_forcing) on a random-weight streaming DiT at full size: seconds per block
    (3 latent frames = 24 video frames = 1.5 s at 16 fps, 4 steps + 1 cache pass, no CFG), the real-time
    factor and the peak, over blocks 2.. of a 5-block clip (3 in smoke mode) (block 0 is 4 frames and warms up)."""
    from sana_wm_core.model import SanaWMConfig, SanaWMTransformer
    from sana_wm_core.sampling import Stage1Conditioning, stream_stage1

    from dit_oracle import camera_conditions

    cfg, dtype, (h, w) = bench_config(smoke, device)
    cfg = SanaWMConfig(**{**cfg.to_dict(), "chunk_size": 3})
    blocks = 3 if smoke else 5
    L = 3 * blocks + 1

    def run():
        with torch.device(device):
            model = SanaWMTransformer(cfg).to(dtype).eval()
        g = torch.Generator().manual_seed(0)
        cond = Stage1Conditioning(
            prompt_embeds=torch.randn(1, 1, 300, cfg.caption_channels, generator=g),
            prompt_mask=torch.ones(1, 300, dtype=torch.long), negative_embeds=None, negative_mask=None,
            image_latent=torch.randn(1, cfg.in_channels, 1, h, w, generator=g),
            raymap=camera_conditions(1, L, h, w)[0], chunk_plucker=torch.randn(48, L, h, w, generator=g),
            num_frames=8 * (L - 1) + 1, height=32 * h, width=32 * w)
        reset_peak(device)
        times = []
        gen = stream_stage1(model, cond, seed=0)
        while True:
            sync(device)
            t0 = time.perf_counter()
            if next(gen, None) is None:
                break
            sync(device)
            times.append(time.perf_counter() - t0)
        s = statistics.median(times[1:])
        return "ok", (f"{s:.3f} s/block (1.5 s of video, {3 * h * w} tokens), real-time factor {1.5 / s:.2f}x, "
                      f"{peak(device)}, {'tiny CPU smoke model' if smoke else 'random bf16 weights, full size'}")

    guarded("streaming s per 1.5 s chunk / real-time factor", run)
    guarded("streaming stages overlapped == sequential", lambda: _overlap_check(smoke, device))
    guarded("causal VAE chunked == one-shot decode (fp32)", lambda: _causal_decode_check(smoke, device))


def _causal_decode_check(smoke: bool, device: torch.device):
    """The causal VAE on this device, fp32: chunked decode (the streaming plan's chunks) vs one-shot decode. On
    the CPU they are bit-identical (`vae/fixed_norm.py`); on CUDA cuDNN may pick another conv algorithm for
    another length, so the figure says whether the bits still agree and how far apart they are if not."""
    import tempfile

    from sana_wm_core.testing import tiny_causal_vae
    from sana_wm_core.vae import CAUSAL_VAE_DIR, LTX2Vae, decode_causal, decode_causal_chunks

    sizes = [4, 3, 3, 3, 3]
    with tempfile.TemporaryDirectory() as root:
        tiny_causal_vae.write_causal_vae(Path(root) / CAUSAL_VAE_DIR)
        vae = LTX2Vae.from_folder(Path(root), dtype=torch.float32, device=str(device))
        g = torch.Generator().manual_seed(0)
        h, w = (2, 3) if smoke else (8, 12)
        z = torch.randn(1, vae.latent_channels, sum(sizes), h, w, generator=g).to(device)
        with torch.no_grad():
            whole = decode_causal(vae, z)
            joined = torch.cat(list(decode_causal_chunks(vae, z, sizes, drop_sink=False)), 2)
    same = torch.equal(whole, joined)
    return ("ok" if same or rel(joined, whole) < 1e-5 else "failed",
            f"{len(sizes)} chunks at {32 * h}x{32 * w} px: bits {'identical' if same else 'differ'}, "
            f"max rel {rel(joined, whole):.1e}")


def _overlap_check(smoke: bool, device: torch.device):
    """Stream to Video's three stages on the tiny streaming bundle, overlapped (CUDA streams on a GPU, worker
    threads in smoke mode) vs one after another: the same bits, and Stage 1 of chunk k+1 started before the
    decode of chunk k ended (`sana_wm_core.streaming_pipeline`; the timing is `bench_stream_overlap.py`)."""
    import tempfile

    from bench_args import conditioning
    from bench_stream_overlap import load_bundle
    from sana_wm_core.streaming import plan_stream_video, stream_video
    from sana_wm_core.testing import tiny_config as C

    with tempfile.TemporaryDirectory() as models:   # the refiner reads its files when it first runs
        dit, vae, refiner = load_bundle(Path(models), device)
        cond = conditioning(13, C.TINY_HEIGHT // 32, C.TINY_WIDTH // 32, C.LATENT_CHANNELS,
                            int(dit.config.caption_channels))
        plan = plan_stream_video(dit, cond, vae, refiner)
        trace: list = []
        run = dict(seed=5, refiner_prompt="a road")
        seq = list(stream_video(dit, plan, vae, refiner, overlap=False, **run))
        ovl = list(stream_video(dit, plan, vae, refiner, overlap=None if device.type == "cuda" else True,
                                trace=trace, **run))
    same = len(seq) == len(ovl) and all(torch.equal(a.latents, b.latents) and (a.frames == b.frames).all()
                                        for a, b in zip(seq, ovl))
    source = {t.index: t for t in trace if t.stage == "source"}
    decode = {t.index: t for t in trace if t.stage == "decode"}
    ahead = sum(source[k + 1].start < decode[k].end for k in range(len(ovl) - 1) if k + 1 in source)
    mode = "CUDA streams" if device.type == "cuda" else "threads (smoke)"
    return ("ok" if same and ahead > 0 else "failed",
            f"{len(ovl)} chunks, {mode}: bits {'identical' if same else 'DIFFER'}, "
            f"Stage 1 ahead of decode at {ahead} of {len(ovl) - 1} hand-offs")
