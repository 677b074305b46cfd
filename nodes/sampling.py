"""Stage-1 nodes: image + camera + prompt -> core (positive, negative, LATENT), and the pack's own sampler.

"SANA-WM Image To Video" returns what core WanCameraImageToVideo returns, so core samplers (KSampler,
SamplerCustomAdvanced with the SANA-WM Scheduler) drive the core MODEL from the loader. "SANA-WM Sampler" stays
as the option that runs the engine's registry samplers (flow_euler_ltx = diffusers' SanaWMPipeline; the
chunk-causal model's chunk_flow_euler) on those same core values and returns a core LATENT. ComfyUI's progress
bar, latent previews and interrupt reach the engine through the one host adapter (`nodes/host.py`).
"""
from __future__ import annotations

import logging

from comfy_api.latest import io

from ..sana_wm_core.sampling import (CHUNK_SAMPLER, SAMPLERS, STREAM_SAMPLER, build_stage1_conditioning,
                                     check_sampler_for_model, check_self_forcing, plan_chunk_causal, plan_stage1,
                                     run_stage1, stage1_latent)
from .comfy_model import load_for_sampling
from .host import ComfyHost
from .native import model_shift
from .native_cond import CLIP_KEY, core_conditioning, stage1_from_core
from .native_model import SanaWMBaseModel, core_dit
from .types import Camera, TextEncoder, Vae, combo_problem

CATEGORY = "SANA-WM/sampling"
log = logging.getLogger("sana_wm")


def _release(model):
    """The loader's `Stage1Model` (flow shift, chi_prompt, sampler) behind a SANA-WM core MODEL, or None."""
    base = getattr(model, "model", None)
    return base.release if isinstance(base, SanaWMBaseModel) else None


def frames_report(requested: int, used: int, fps: float, latent_frames: int) -> tuple[str, str | None]:
    """The node's result text, and the snapping notice when the camera path's length was not 8k+1."""
    text = (f"{used} frames at {fps:g} fps ({used / fps:.2f} s) from the camera path, {latent_frames} latent "
            f"frames")
    if used == requested:
        return text, None
    note = (f"the camera path has {requested} poses but the LTX-2 VAE needs 8k+1 frames: using {used} "
            f"(set the camera node's num_frames to {used} to make this exact)")
    return f"{text}\n{note}", note


class SanaWMImageToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMImageToVideo",
            display_name="SANA-WM Image To Video",
            category=CATEGORY,
            description=("Encodes the first frame (LTX-2 VAE) and the prompt (Gemma-2) and builds the camera "
                         "tensors, as core positive / negative CONDITIONING and a LATENT whose first frame is the "
                         "image (noise_mask 0 there): wire them to KSampler, SamplerCustomAdvanced (CFGGuider + "
                         "SANA-WM Scheduler) or the SANA-WM Sampler. The frame count and fps are the camera "
                         "path's (its num_frames / fps widgets), snapped to 8k+1; the node shows what it used."),
            inputs=[
                io.Image.Input("image", tooltip="The first frame. It is resized to cover width x height and "
                                                "centre-cropped."),
                Camera.Input("camera", tooltip=(
                    "The camera path (action string or trajectory file) with intrinsics. Its length sets the frame "
                    "count (snapped down to 8k+1) and its fps the video's frame rate.")),
                TextEncoder.Input("text_encoder", tooltip="Gemma-2 from the SANA-WM Text Encoder Loader."),
                Vae.Input("vae", tooltip="The LTX-2 VAE from the SANA-WM VAE Loader."),
                io.String.Input("prompt", multiline=True, default="", tooltip=(
                    "What the scene looks like. It is appended to SANA-WM's instruction prefix, as in training.")),
                io.String.Input("negative_prompt", multiline=True, default="", tooltip=(
                    "Used for classifier-free guidance (the reference uses an empty one).")),
                io.Int.Input("width", default=1280, min=32, max=4096, step=32, tooltip=(
                    "Output width, a multiple of 32. The model was trained at 1280x704.")),
                io.Int.Input("height", default=704, min=32, max=4096, step=32, tooltip=(
                    "Output height, a multiple of 32. The model was trained at 1280x704.")),
                io.Model.Input("model", optional=True, tooltip=(
                    "The SANA-WM MODEL the sampler will use: the prompt is prefixed with its release config.yaml's "
                    "instruction lines (chi_prompt). Unconnected: the released default lines.")),
            ],
            outputs=[io.Conditioning.Output(display_name="positive"),
                     io.Conditioning.Output(display_name="negative"),
                     io.Latent.Output(display_name="latent")],
        )

    @classmethod
    def execute(cls, image, camera, text_encoder, vae, prompt, negative_prompt, width, height,
                model=None) -> io.NodeOutput:
        release = None
        if model is not None:
            core_dit(model)                       # a MODEL that is not SANA-WM's fails here, naming the input
            release = _release(model)
        cond = build_stage1_conditioning(image, camera, text_encoder, vae, prompt, negative_prompt,
                                         num_frames=0, height=height, width=width,
                                         chi_prompt=(release.chi_prompt or None) if release is not None else None)
        text, note = frames_report(int(camera.num_frames), cond.num_frames, cond.fps, cond.latent_frames)
        if note:
            log.warning("SANA-WM Image To Video: %s", note)
        positive, negative, latent = core_conditioning(cond)
        return io.NodeOutput(positive, negative, latent, ui={"text": [text]})


class SanaWMSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMSampler",
            display_name="SANA-WM Sampler (Stage 1)",
            category=CATEGORY,
            description=("The pack's own Stage-1 sampler on the core MODEL, CONDITIONING and LATENT: flow-matching "
                         "Euler with the first latent frame pinned to the image (flow_euler_ltx, the reference "
                         "default, equal to diffusers' SanaWMPipeline), classifier-free guidance batched as "
                         "[uncond, cond]. The chunk-causal model runs only here, with chunk_flow_euler: chunks start "
                         "on a staggered schedule, progress counts global steps and the preview shows the finished "
                         "frames. Returns a core LATENT."),
            inputs=[
                io.Model.Input("model", tooltip="The SANA-WM MODEL from the SANA-WM Model Loader."),
                io.Conditioning.Input("positive", tooltip="From SANA-WM Image To Video."),
                io.Conditioning.Input("negative", tooltip="From SANA-WM Image To Video."),
                io.Latent.Input("latent", tooltip="From SANA-WM Image To Video (first frame = the image)."),
                io.Int.Input("seed", default=42, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed (a CPU generator, as diffusers draws it; reference default 42)."),
                io.Int.Input("steps", default=60, min=1, max=1000, tooltip="Euler steps (reference: 60)."),
                io.Float.Input("cfg", default=5.0, min=0.0, max=30.0, step=0.1, tooltip=(
                    "Classifier-free guidance scale (reference: 5.0); 1.0 or less runs without guidance "
                    "(2x faster).")),
                io.Combo.Input("sampler", options=list(SAMPLERS), default="flow_euler_ltx", tooltip=(
                    "flow_euler_ltx keeps the first frame fixed to the image (reference default); flow_euler "
                    "denoises every frame, the first included. chunk_flow_euler is the chunk-causal model's "
                    "sampler (SANA-WM_chunk_causal only; the other two need the bidirectional model). self_forcing "
                    "is the distilled SANA-WM_streaming model's: 4 fixed sigmas per block, cfg 1.0, steps and "
                    "flow_shift unused.")),
                io.Float.Input("flow_shift", default=0.0, min=0.0, max=100.0, step=0.05, optional=True, tooltip=(
                    "Schedule shift. 0 = the model's (the release config's inference_flow_shift 9.8, or what "
                    "ModelSamplingSD3 set); the run script uses 8.0.")),
                io.Float.Input("chunk_interval_k", default=0.0, min=0.0, max=1.0, step=0.005, optional=True,
                               tooltip=(
                    "chunk_flow_euler only: the fraction of the steps between two chunks' starts. 0 = 1/number of "
                    "chunks (the reference); 1 = each chunk starts when the previous one is done.")),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
        )

    @classmethod
    def validate_inputs(cls, sampler=None):
        return combo_problem(cls, sampler=sampler)

    @classmethod
    def execute(cls, model, positive, negative, latent, seed, steps, cfg, sampler, flow_shift=0.0,
                chunk_interval_k=0.0) -> io.NodeOutput:
        """ComfyUI's model management places the DiT first (`load_models_gpu` with the DiT's activation
        estimate; a no-op move on a --cpu server) and keeps it loaded afterwards: ComfyUI frees it when another
        model needs the memory or on POST /free. Cancel is checked before every DiT block and every step."""
        dit = core_dit(model)
        shift = float(flow_shift) if flow_shift and flow_shift > 0 else model_shift(model)
        check_sampler_for_model(dit, sampler)                        # bad inputs fail before loading
        conditioning = stage1_from_core(positive, negative, latent, guidance=cfg > 1.0)
        options = {}
        if sampler == CHUNK_SAMPLER:
            k = float(chunk_interval_k or 0.0)
            options["chunk_interval_k"] = k if k > 0 else None       # 0 = the reference's 1/num_chunks
            plan_chunk_causal(dit, conditioning, steps=steps, flow_shift=shift, **options)
        if sampler == STREAM_SAMPLER:                                # its own sigmas: steps / flow_shift unused
            check_self_forcing(dit, conditioning, cfg)
        plan = plan_stage1(conditioning, steps=steps, guidance_scale=cfg, seed=seed, flow_shift=shift,
                           sampler=sampler, **options)
        release = _release(model)
        conditioning.check_prefix(tuple(release.chi_prompt) if release is not None else ())
        load_for_sampling(model, plan.latent_shape, plan.batch)
        done = stage1_latent(conditioning, run_stage1(dit, conditioning, plan, host=ComfyHost()), plan)
        out = dict(latent)                       # like core KSampler: the input's keys, new samples
        out["samples"] = done.samples
        out[CLIP_KEY] = {**latent[CLIP_KEY], "generation": dict(done.generation)}
        return io.NodeOutput(out)


NODES = [SanaWMImageToVideo, SanaWMSampler]
