"""The pipelined streaming clip (docs/autoregressive_spec.md §7): Stage-1 block k -> refiner block k -> causal
decode of chunk k -> its frames, one chunk at a time, so a clip is written while it is being made.

Order per chunk, as NVlabs' loop runs it when the three stages are not overlapped: the streaming sampler finishes
Stage-1 block k (`stream_stage1`), the autoregressive refiner refines it (`RefinerStream`, block k needs only
Stage-1 block k), the causal VAE decodes it with its per-conv state (`CausalStreamDecoder`) and the uint8 frames
are handed on. Chunk 0 is latents [0, 4): the sink (the image latent) + the first block; its sink pixel frame is
dropped when the refiner runs (24 frames), kept without it (25 frames, as a Stage-1 decode keeps it); every later
chunk of 3 latents is 24 frames. What is held between chunks is bounded by the windows (Stage-1 softmax window +
recurrent state, refiner sink + history K/V, decoder conv tails), not by the clip length; the only clip-sized
tensor is Stage 1's initial noise, drawn once as the other samplers draw it (1/8 of one chunk's pixels per
latent frame). The schedule is `streaming_pipeline`'s: on one CUDA device Stage 1 computes chunk k+1 on its own
stream while chunk k is refined, decoded and written (threads + CUDA streams and events); elsewhere the stages run
one after another (or in worker threads when asked); the bits are the same.

Every input is checked by `plan_stream_video` before any network runs.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch

from .runtime.host import Host, host_or_null
from .sampling.conditioning import Stage1Conditioning
from .sampling.self_forcing import (DEFAULT_CACHED_BLOCKS, DEFAULT_FRAMES_PER_BLOCK, DEFAULT_SIGMAS, StreamPlan,
                                    check_stream_model, plan_streaming, snap_stream_conditioning, stream_stage1)
from .sampling.stage1 import model_dtype_device
from .streaming_pipeline import ChunkPipeline, Stage, pipeline_mode
from .vae import CausalStreamDecoder, LTX2Vae, to_uint8_frames

__all__ = ["CancelOnly", "StreamVideoPlan", "StreamChunk", "plan_stream_video", "stream_video"]


@dataclass(frozen=True)
class StreamVideoPlan:
    """A checked streaming run: the (snapped) conditioning, the Stage-1 block plan, whether the refiner runs."""

    cond: Stage1Conditioning
    stage1: StreamPlan
    refine: bool
    note: Optional[str] = None      # what snapping the length changed (None: nothing)

    @property
    def chunks(self) -> int:
        return len(self.stage1.chunks)

    @property
    def drop_first_frames(self) -> int:
        """The sink's pixel frame is dropped after refining, as the streaming reference does."""
        return 1 if self.refine else 0

    def frames_after(self, k: int) -> int:
        """Pixel frames of the video once the first `k` chunks are written."""
        if k <= 0:
            return 0
        end = self.stage1.chunks[min(k, self.chunks) - 1][1]
        return self.cond.temporal_stride * (end - 1) + 1 - self.drop_first_frames

    @property
    def total_frames(self) -> int:
        return self.frames_after(self.chunks)

    def refiner_text(self, refiner_prompt: str = "") -> str:
        """The refiner's prompt: `refiner_prompt` stripped, else the Stage-1 prompt (ValueError when both are empty)."""
        text = (refiner_prompt or "").strip() or (self.cond.prompt or "").strip()
        if not text:
            raise ValueError("refiner_prompt is empty and the conditioning carries no prompt; type the refiner prompt")
        return text

    def video_c2w(self, n: Optional[int] = None) -> Optional[np.ndarray]:
        """Poses of the video's frames (of its first `n` frames when `n` is given: a partial video)."""
        if self.cond.c2w is None:
            return None
        n = self.total_frames if n is None else int(n)
        first = self.drop_first_frames
        return np.asarray(self.cond.c2w)[first:first + n]


@dataclass(frozen=True)
class StreamChunk:
    """One finished chunk: its index, the latent frames [start, end) it covers, the latents that were decoded
    (refined when the refiner ran; on the refiner's / model's device) and its uint8 frames (f, H, W, 3)."""

    index: int
    start: int
    end: int
    latents: torch.Tensor
    frames: np.ndarray


class CancelOnly:
    """A host that forwards only cancel: the stages' own per-step progress is replaced by per-chunk progress."""

    def __init__(self, host: Host) -> None:
        self._host = host

    def progress(self, done, total, preview=None) -> None:
        return None

    def check_interrupt(self) -> None:
        self._host.check_interrupt()


def _refiner_channels(refiner: Any) -> Optional[int]:
    fn = getattr(refiner, "in_channels", None)
    return int(fn()) if callable(fn) else None


def plan_stream_video(transformer: Any, cond: Stage1Conditioning, vae: LTX2Vae, refiner: Any = None, *,
                      sigmas: Sequence[float] = DEFAULT_SIGMAS, frames_per_block: int = DEFAULT_FRAMES_PER_BLOCK,
                      cached_blocks: int = DEFAULT_CACHED_BLOCKS, sink: bool = True,
                      refiner_settings: Any = None) -> StreamVideoPlan:
    """Every check of a streaming clip, naming the input and the fix (ValueError); no network runs. The clip is
    snapped to 24k+1 frames (`snap_stream_frames`; the plan's `note` says so)."""
    transformer = getattr(transformer, "transformer", transformer)
    check_stream_model(transformer, frames_per_block)      # first: the fix names the checkpoint's block size
    if not isinstance(vae, LTX2Vae):
        raise ValueError(f"vae must come from the SANA-WM VAE Loader, got {type(vae).__name__}")
    if not vae.is_causal:
        raise ValueError("vae: streaming decodes chunk by chunk and needs the causal LTX-2 VAE (the ltx2_causal_vae/ "
                         "folder of SANA-WM_streaming); this VAE is bidirectional. Set the VAE loader to "
                         "SANA-WM_streaming")
    if int(frames_per_block) < 1:
        raise ValueError(f"frames_per_block must be >= 1 latent frame, got {frames_per_block}")
    snapped, note = snap_stream_conditioning(cond, int(frames_per_block))
    stage1 = plan_streaming(transformer, snapped, sigmas=sigmas, frames_per_block=int(frames_per_block),
                            cached_blocks=cached_blocks, sink=sink)
    if refiner is not None:
        from .refiner import RefineSettings

        settings = refiner_settings or RefineSettings()
        settings.validate()
        if settings.mode != "autoregressive":
            raise ValueError(f"refiner: streaming refines block by block, so its mode must be autoregressive, "
                             f"got {settings.mode!r}")
        if int(settings.sink_size) != 1 or int(settings.block_size) != int(frames_per_block):
            raise ValueError(f"refiner: streaming needs a 1-frame sink and blocks of frames_per_block "
                             f"({frames_per_block}) latent frames, got sink_size {settings.sink_size}, "
                             f"block_size {settings.block_size}")
        channels = _refiner_channels(refiner)
        if channels is not None and channels != int(snapped.image_latent.shape[1]):
            raise ValueError(f"refiner takes {channels}-channel latents but Stage 1 makes "
                             f"{int(snapped.image_latent.shape[1])}: load the refiner of the same release "
                             "(SANA-WM_streaming's refiner_diffusers)")
    return StreamVideoPlan(cond=snapped, stage1=stage1, refine=refiner is not None, note=note)


def stream_video(transformer: Any, plan: StreamVideoPlan, vae: LTX2Vae, refiner: Any = None, *, seed: int = 42,
                 refiner_prompt: str = "", refiner_seed: int = 42, refiner_settings: Any = None,
                 host: Optional[Host] = None, overlap: Optional[bool] = None,
                 trace: Optional[list] = None) -> Iterator[StreamChunk]:
    """The chunks of a planned clip, in order (a generator: nothing runs before the first `next`). `host`: cancel
    is checked inside Stage 1 (per DiT block), before each refine and decode, and before each chunk is handed
    out, so it lands within one chunk and no chunk comes out after it; progress is `host.progress(k, chunks,
    preview)` after chunk k with its last frame as the preview. `refiner_prompt`: the refiner's text (empty =
    the Stage-1 prompt). `overlap`: the stages' schedule (`streaming_pipeline.pipeline_mode`: None = overlapped
    on CUDA, sequential elsewhere; True forces worker threads on CPU); same bits either way. `trace`: a list
    that receives the stages' `StageSpan`s."""
    transformer = getattr(transformer, "transformer", transformer)
    if (refiner is None) != (not plan.refine):
        raise ValueError("refiner: pass the refiner the plan was made with (plan_stream_video)")
    host = host_or_null(host)
    p = plan.stage1
    text = plan.refiner_text(refiner_prompt) if refiner is not None else ""
    pipeline = _pipeline(transformer, vae, refiner, overlap, trace)
    blocks = stream_stage1(transformer, plan.cond, sigmas=[float(s) for s in p.flow.sigmas[:-1]],
                           frames_per_block=p.frames_per_block, cached_blocks=p.cached_blocks, sink=p.sink,
                           seed=int(seed), hooks=CancelOnly(pipeline.guard(host)))
    return _run(pipeline, blocks, plan, vae, refiner, text, int(refiner_seed), refiner_settings, host)


def _pipeline(transformer, vae: LTX2Vae, refiner, overlap: Optional[bool], trace) -> ChunkPipeline:
    """The schedule for these stages' devices (overlapped on one CUDA device; see `pipeline_mode`)."""
    first = model_dtype_device(transformer)[1] if isinstance(transformer, torch.nn.Module) else torch.device("cpu")
    others = [vae.device] + ([refiner.device] if refiner is not None and hasattr(refiner, "device") else [])
    mode = pipeline_mode(first, others, overlap)
    return ChunkPipeline(mode, device=first if mode == "cuda" else None, trace=trace)


@torch.no_grad()
def _run(pipeline: ChunkPipeline, blocks, plan: StreamVideoPlan, vae: LTX2Vae, refiner, text: str,
         refiner_seed: int, settings, host: Host) -> Iterator[StreamChunk]:
    decoder = CausalStreamDecoder(vae, drop_sink=plan.refine)
    with contextlib.ExitStack() as stack:
        held: dict[str, Any] = {}       # the refiner stream, opened on block 0 (in the refine stage's thread)

        def refine(item):
            k, (s, e, x) = item
            host.check_interrupt()
            if "rs" not in held:
                from .refiner import RefineSettings

                held["rs"] = stack.enter_context(refiner.stream(
                    x[:, :, :1], text, seed=refiner_seed, fps=plan.cond.fps, settings=settings or RefineSettings()))
            rs = held["rs"]
            body = rs.refine(x[:, :, rs.next_start - s:])
            z = body if k else torch.cat([x[:, :, :1].to(device=body.device, dtype=body.dtype), body], dim=2)
            return k, (s, e, z)

        def decode(item):
            k, (s, e, z) = item
            host.check_interrupt()
            frames = to_uint8_frames(decoder.decode(z.to(device=vae.device, dtype=vae.dtype)))
            return StreamChunk(index=k, start=s, end=e, latents=z, frames=frames)

        stages = ([Stage("refine", refine)] if refiner is not None else []) + [Stage("decode", decode)]
        with contextlib.closing(pipeline.run(enumerate(blocks), stages)) as chunks:   # joined before the refiner
            for chunk in chunks:                                                        # stream is closed
                host.check_interrupt()  # overlapped: later chunks may be done already; none comes out after a cancel
                yield chunk
                host.progress(chunk.index + 1, plan.chunks, lambda f=chunk.frames: f[-1])
