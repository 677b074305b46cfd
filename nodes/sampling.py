"""Stage-1 nodes: image + camera + prompt -> SANAWM_CONDITIONING, and the sampler -> SANAWM_LATENT.

Thin adapters over `sana_wm_core.sampling`: ComfyUI's progress bar, latent previews and interrupt reach
the engine through the one host adapter (`nodes/host.py`): progress per step, cancel per DiT block.
"""
from __future__ import annotations

from comfy_api.latest import io

from ..sana_wm_core.model import Stage1Model
from ..sana_wm_core.sampling import (CHUNK_SAMPLER, SAMPLERS, STREAM_SAMPLER, build_stage1_conditioning,
                                     check_sampler_for_model, check_self_forcing, plan_chunk_causal, plan_stage1,
                                     run_stage1, stage1_latent)
from .comfy_model import load_for_sampling, wrap_for_comfy
from .host import ComfyHost
from .types import Camera, Conditioning, Latent, Model, TextEncoder, Vae, combo_problem

CATEGORY = "SANA-WM/sampling"


class SanaWMImageToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMImageToVideo",
            display_name="SANA-WM Image To Video (conditioning)",
            category=CATEGORY,
            description=("Encodes the first frame (LTX-2 VAE) and the prompt (Gemma-2) and builds the camera "
                         "tensors: everything the SANA-WM sampler needs for one clip."),
            inputs=[
                io.Image.Input("image", tooltip="The first frame. It is resized to cover width x height and "
                                                "centre-cropped."),
                Camera.Input("camera", tooltip="The camera path (action string or trajectory file) with intrinsics."),
                TextEncoder.Input("text_encoder", tooltip="Gemma-2 from the SANA-WM Text Encoder Loader."),
                Vae.Input("vae", tooltip="The LTX-2 VAE from the SANA-WM VAE Loader."),
                io.String.Input("prompt", multiline=True, default="", tooltip=(
                    "What the scene looks like. It is appended to SANA-WM's instruction prefix, as in training.")),
                io.String.Input("negative_prompt", multiline=True, default="", tooltip=(
                    "Used for classifier-free guidance (the reference uses an empty one).")),
                io.Int.Input("num_frames", default=161, min=0, max=100001, step=1, tooltip=(
                    "Frames to generate, snapped to 8k+1 (LTX-2 VAE) and never past the camera path's end. "
                    "0 = the whole path. 161 = 10 s, 961 = 60 s at 16 fps.")),
                io.Int.Input("width", default=1280, min=32, max=4096, step=32, tooltip=(
                    "Output width, a multiple of 32. The model was trained at 1280x704.")),
                io.Int.Input("height", default=704, min=32, max=4096, step=32, tooltip=(
                    "Output height, a multiple of 32. The model was trained at 1280x704.")),
                Model.Input("model", optional=True, tooltip=(
                    "The Stage-1 model the sampler will use: the prompt is prefixed with its release config.yaml's "
                    "instruction lines (chi_prompt). Unconnected: the released default lines.")),
            ],
            outputs=[Conditioning.Output(display_name="conditioning")],
        )

    @classmethod
    def execute(cls, image, camera, text_encoder, vae, prompt, negative_prompt, num_frames, width, height,
                model=None) -> io.NodeOutput:
        if model is not None and not isinstance(model, Stage1Model):
            raise ValueError("model must come from the SANA-WM Model Loader (SANAWM_MODEL)")
        cond = build_stage1_conditioning(image, camera, text_encoder, vae, prompt, negative_prompt,
                                         num_frames=num_frames, height=height, width=width,
                                         chi_prompt=(model.chi_prompt or None) if model is not None else None)
        return io.NodeOutput(cond)


class SanaWMSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMSampler",
            display_name="SANA-WM Sampler (Stage 1)",
            category=CATEGORY,
            description=("Stage-1 denoising: flow-matching Euler with the first latent frame pinned to the image "
                         "(flow_euler_ltx, the reference default), classifier-free guidance batched as "
                         "[uncond, cond]. The chunk-causal model runs chunk_flow_euler: chunks start on a staggered "
                         "schedule, progress counts global steps and the preview shows the finished frames."),
            inputs=[
                Model.Input("model", tooltip="The Stage-1 DiT from the SANA-WM Model Loader."),
                Conditioning.Input("conditioning", tooltip="From SANA-WM Image To Video."),
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
                    "Schedule shift. 0 = the release config's value (inference_flow_shift 9.8); the run script "
                    "uses 8.0.")),
                io.Float.Input("chunk_interval_k", default=0.0, min=0.0, max=1.0, step=0.005, optional=True,
                               tooltip=(
                    "chunk_flow_euler only: the fraction of the steps between two chunks' starts. 0 = 1/number of "
                    "chunks (the reference); 1 = each chunk starts when the previous one is done.")),
            ],
            outputs=[Latent.Output(display_name="latent")],
        )

    @classmethod
    def validate_inputs(cls, sampler=None):
        return combo_problem(cls, sampler=sampler)

    @classmethod
    def execute(cls, model, conditioning, seed, steps, cfg, sampler, flow_shift=0.0,
                chunk_interval_k=0.0) -> io.NodeOutput:
        """ComfyUI's model management places the DiT first (`load_models_gpu` with the DiT's activation
        estimate; a no-op move on a --cpu server) and keeps it loaded afterwards: ComfyUI frees it when another
        model needs the memory or on POST /free. Cancel is checked before every DiT block and every step."""
        if not isinstance(model, Stage1Model):
            raise ValueError("model must come from the SANA-WM Model Loader (SANAWM_MODEL)")
        shift = float(flow_shift) if flow_shift and flow_shift > 0 else float(model.flow_shift)
        patcher = getattr(model, "patcher", None)
        if patcher is None:                      # a Stage1Model built outside the loader
            patcher = wrap_for_comfy(model.transformer)
        check_sampler_for_model(model.transformer, sampler)          # bad inputs fail before loading
        options = {}
        if sampler == CHUNK_SAMPLER:
            k = float(chunk_interval_k or 0.0)
            options["chunk_interval_k"] = k if k > 0 else None       # 0 = the reference's 1/num_chunks
            plan_chunk_causal(model.transformer, conditioning, steps=steps, flow_shift=shift, **options)
        if sampler == STREAM_SAMPLER:                                # its own sigmas: steps / flow_shift unused
            check_self_forcing(model.transformer, conditioning, cfg)
        plan = plan_stage1(conditioning, steps=steps, guidance_scale=cfg, seed=seed, flow_shift=shift,
                           sampler=sampler, **options)
        conditioning.check_prefix(tuple(model.chi_prompt))
        dit = load_for_sampling(patcher, plan.latent_shape, plan.batch)
        return io.NodeOutput(stage1_latent(conditioning, run_stage1(dit, conditioning, plan, host=ComfyHost()),
                                           plan))


NODES = [SanaWMImageToVideo, SanaWMSampler]
