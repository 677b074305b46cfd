"""Streaming nodes (the distilled SANA-WM_streaming model): the pipelined "Stream to Video" (Stage 1 -> refiner ->
causal decode -> mp4, chunk by chunk) and a Stage-1-only streaming sampler that returns the latent (a core LATENT,
as the other samplers do).

Thin adapters over `sana_wm_core.streaming` and `sana_wm_core.sampling.stream_stage1`: progress counts chunks,
each decoded chunk's last frame is the node's preview, cancel lands within one chunk, and an interrupted stream
keeps what was written as `<prefix>_NNNNN_partial.mp4` (+ its camera JSON) before ComfyUI reports the cancel.
"""
from __future__ import annotations

import contextlib
import logging
import os

import torch
import folder_paths
from comfy_api.latest import io

from ..sana_wm_core.model.release import STREAM_SAMPLER
from ..sana_wm_core.sampling import plan_stage1, snap_stream_conditioning, stage1_latent, stream_stage1
from ..sana_wm_core.sampling.preview import latent_preview
from ..sana_wm_core.sampling.self_forcing import DEFAULT_SIGMAS, check_stream_model, plan_streaming
from ..sana_wm_core.streaming import CancelOnly, plan_stream_video, stream_video
from ..sana_wm_core.video.stream_save import save_stream_clip
from .comfy_model import load_for_sampling
from .host import ComfyHost
from .native_cond import stage1_from_core
from .native_latent import core_latent
from .native_model import SanaWMBaseModel, core_dit, run_it_in
from .types import Refiner, Vae

CATEGORY = "SANA-WM/streaming"
log = logging.getLogger("sana_wm")


def _stream_inputs() -> list:
    return [
        io.Int.Input("seed", default=42, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Stage-1 noise seed (the streaming reference uses 42)."),
        io.Int.Input("frames_per_block", default=3, min=1, max=64, tooltip=(
            "Latent frames per streamed block: must be the checkpoint's chunk size (3 for SANA-WM_streaming; "
            "one block = 24 video frames = 1.5 s).")),
        io.Int.Input("cached_blocks", default=2, min=0, max=1000, tooltip=(
            "Blocks whose softmax keys/values each new block sees (with the sink, block 0 is one of them); "
            "0 = all. The release uses 2: memory and time per block stay flat however long the clip.")),
        io.Boolean.Input("sink", default=True, tooltip="Keep block 0 in the window for good (the release: on)."),
    ]


def _stage1_model(node: str, model, positive, latent, frames_per_block: int):
    """(streaming DiT, the MODEL's patcher, release chi_prompt, Stage1Conditioning); any other release (the
    bidirectional model, the chunk-causal teacher) is refused, naming the node it runs in."""
    dit = core_dit(model)                       # a MODEL that is not SANA-WM's fails here, naming the input
    check_stream_model(dit, frames_per_block, asked_by=f"model: {node}", instead=run_it_in)
    base = getattr(model, "model", None)
    release = base.release if isinstance(base, SanaWMBaseModel) else None
    cond = stage1_from_core(positive, None, latent, guidance=False)
    return dit, model, tuple(release.chi_prompt) if release is not None else (), cond


def stream_report(frames: int, chunks: int, note: str | None) -> str:
    """The node's result text: the streamed length, and the 24k+1 snapping note when the clip was cut."""
    text = f"Stage 1: {frames} frames in {chunks} chunks"
    if note is None:
        return text
    log.warning(note)
    return f"{text}\n{note}"


def _load(patcher, cond, chunks) -> None:
    """ComfyUI places the MODEL for one block's forward (what streaming runs at a time, not the clip)."""
    s, e = max(chunks, key=lambda c: c[1] - c[0])
    shape = list(cond.latent_shape)
    shape[2] = e - s
    load_for_sampling(patcher, shape, 1)


class SanaWMStreamToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMStreamToVideo",
            display_name="SANA-WM Stream to Video",
            category=CATEGORY,
            description=("Real-time SANA-WM (SANA-WM_streaming): Stage 1 makes the clip block by block (4 sigmas, no "
                         "CFG, a windowed cache), each block is refined (autoregressive LTX-2 refiner), decoded by the "
                         "causal VAE and written to the mp4 at once, so the video grows while the next block is "
                         "made and memory does not grow with its length. Progress counts chunks (1.5 s each); the "
                         "preview shows each decoded chunk. Cancelling keeps what was written as "
                         "<prefix>_NNNNN_partial.mp4. The length is snapped to 24k+1 frames (961 = 60 s); the "
                         "node shows what it used."),
            inputs=[
                io.Model.Input("model", tooltip="SANA-WM_streaming from the SANA-WM Model Loader."),
                io.Conditioning.Input("positive", tooltip="From SANA-WM Image To Video (image, camera, prompt)."),
                io.Latent.Input("latent", tooltip="From SANA-WM Image To Video (first frame = the image)."),
                Vae.Input("vae", tooltip="The causal LTX-2 VAE: SANA-WM_streaming in the SANA-WM VAE Loader."),
                *_stream_inputs(),
                io.String.Input("filename_prefix", default="SANA-WM/stream", tooltip=(
                    "File name prefix inside ComfyUI's output folder (subfolders allowed).")),
                io.Int.Input("crf", default=25, min=0, max=51, tooltip="H.264 quality (lower = better, bigger)."),
                Refiner.Input("refiner", optional=True, tooltip=(
                    "SANA-WM_streaming's refiner (SANA-WM Refiner Loader). Unconnected: Stage 1 is decoded as it "
                    "is (faster, softer; the image frame is kept, 24k+1 frames).")),
                io.String.Input("refiner_prompt", multiline=True, default="", optional=True, tooltip=(
                    "The refiner's prompt (used raw). Empty = the Stage-1 prompt.")),
                io.Int.Input("refiner_seed", default=42, min=0, max=0xFFFFFFFFFFFFFFFF, optional=True,
                             tooltip="Seed of the refiner's own noise (the reference uses 42)."),
            ],
            outputs=[io.Video.Output(display_name="video")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, model, positive, latent, vae, seed, frames_per_block, cached_blocks, sink, filename_prefix, crf,
                refiner=None, refiner_prompt="", refiner_seed=42) -> io.NodeOutput:
        from comfy_api.input_impl import VideoFromFile

        from ..sana_wm_core.refiner import SanaWMRefiner

        dit, patcher, chi_prompt, conditioning = _stage1_model("SANA-WM Stream to Video", model, positive, latent,
                                                               frames_per_block)
        if refiner is not None and not isinstance(refiner, SanaWMRefiner):
            raise ValueError("refiner must come from the SANA-WM Refiner Loader")
        plan = plan_stream_video(                                       # bad inputs fail before loading
            dit, conditioning, vae, refiner, frames_per_block=frames_per_block, cached_blocks=int(cached_blocks),
            sink=bool(sink))
        text = plan.refiner_text(refiner_prompt) if refiner is not None else ""
        report = stream_report(plan.cond.num_frames, plan.chunks, plan.note)
        plan.cond.check_prefix(chi_prompt)
        cond = plan.cond
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory(), cond.width, cond.height)
        file, partial = f"{name}_{counter:05}_.mp4", f"{name}_{counter:05}_partial.mp4"
        host = ComfyHost()
        host.progress(0, plan.chunks)
        if refiner is not None:     # Gemma-3 runs (and is freed) before the DiT is placed; the stream reuses it
            refiner.encode_prompt(text)
        _load(patcher, cond, plan.stage1.chunks)
        vae.to_device()
        extra = {"prompt": cond.prompt, "stage": "refined" if plan.refine else "stage1", "seed": int(seed),
                 "sampler": STREAM_SAMPLER, "sigmas": list(DEFAULT_SIGMAS), "frames_per_block": int(frames_per_block),
                 "cached_blocks": int(cached_blocks), "sink": bool(sink), "chunks": plan.chunks,
                 **({"refine_seed": int(refiner_seed)} if plan.refine else {})}
        chunks = stream_video(dit, plan, vae, refiner, seed=int(seed), refiner_prompt=text,
                              refiner_seed=int(refiner_seed), host=host)      # overlapped on CUDA
        with contextlib.closing(chunks):    # a failed write stops (and joins) the stages at once
            saved = save_stream_clip((c.frames for c in chunks), os.path.join(folder, file),
                                     os.path.join(folder, partial), fps=cond.fps, camera=cond.camera,
                                     video_c2w=plan.video_c2w, extra=extra, crf=int(crf))
        ui = {"images": [{"filename": file, "subfolder": subfolder, "type": "output"}], "animated": (True,),
              "camera_json": [{"filename": saved.json_path.name, "subfolder": subfolder, "type": "output"}],
              "text": [report]}
        return io.NodeOutput(VideoFromFile(str(saved.info.path)), ui=ui)


class SanaWMStreamSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMStreamSampler",
            display_name="SANA-WM Stream Sampler (Stage 1)",
            category=CATEGORY,
            description=("Stage 1 of the streaming model alone: the self_forcing sampler block by block (progress "
                         "in blocks, the preview shows the finished blocks), returning the whole latent for the "
                         "SANA-WM Refine / Decode / Save Video nodes (a core LATENT carrying the clip's camera, fps "
                         "and prompt). The length is snapped to 24k+1 frames; the node shows what it used. The "
                         "chunk-causal and streaming models stay on the pack's own sampler nodes (this one, Stream "
                         "to Video, SANA-WM Sampler); core KSampler / SamplerCustomAdvanced are for the "
                         "bidirectional model."),
            inputs=[
                io.Model.Input("model", tooltip="SANA-WM_streaming from the SANA-WM Model Loader."),
                io.Conditioning.Input("positive", tooltip="From SANA-WM Image To Video."),
                io.Latent.Input("latent", tooltip="From SANA-WM Image To Video (first frame = the image)."),
                *_stream_inputs(),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
        )

    @classmethod
    def execute(cls, model, positive, latent, seed, frames_per_block, cached_blocks, sink) -> io.NodeOutput:
        dit, patcher, chi_prompt, conditioning = _stage1_model("SANA-WM Stream Sampler", model, positive, latent,
                                                               frames_per_block)   # bad inputs fail before loading
        cond, note = snap_stream_conditioning(conditioning, int(frames_per_block))
        options = dict(frames_per_block=int(frames_per_block), cached_blocks=int(cached_blocks), sink=bool(sink))
        stream = plan_streaming(dit, cond, **options)
        plan = plan_stage1(cond, steps=stream.flow.steps, guidance_scale=1.0, seed=int(seed), flow_shift=1.0,
                           sampler=STREAM_SAMPLER, **options)
        cond.check_prefix(chi_prompt)
        host = ComfyHost()
        host.progress(0, len(stream.chunks))
        _load(patcher, cond, stream.chunks)
        parts = []
        proj = cond.preview_proj
        for k, (_, _, x) in enumerate(stream_stage1(dit, cond, seed=int(seed), hooks=CancelOnly(host), **options)):
            parts.append(x.cpu())
            shown = None if proj is None else (lambda z=parts[-1]: latent_preview(z, proj))
            host.progress(k + 1, len(stream.chunks), shown)
        return io.NodeOutput(core_latent(stage1_latent(cond, torch.cat(parts, dim=2), plan)),
                             ui={"text": [stream_report(cond.num_frames, len(stream.chunks), note)]})


NODES = [SanaWMStreamToVideo, SanaWMStreamSampler]
