"""Stage-1 sampling: the conditioning bundle, the flow schedule, the sampler registry
and its loops."""
from .chunk_causal import (CHUNK_SAMPLER, check_sampler_for_model, chunk_flow_euler, is_chunk_causal,
                           plan_chunk_causal, sample_chunk_causal)
from .chunk_schedule import ChunkSchedule, chunk_schedule
from .conditioning import Stage1Conditioning
from .i2v import build_stage1_conditioning
from .preview import fit_latent_rgb, latent_preview
from .schedule import FlowSchedule, flow_schedule
from .self_forcing import (DEFAULT_SIGMAS, check_self_forcing, STREAM_SAMPLER, StreamPlan, plan_streaming, sample_streaming,
                           snap_stream_conditioning, snap_stream_frames, stream_stage1)
from .registry import Sampler, get_sampler
from .stage1 import (SAMPLERS, SamplingInterrupted, Stage1Plan, initial_noise, model_dtype_device, plan_stage1,
                     run_stage1, sample_stage1, sample_stage1_latent, stage1_latent)
from .steps import SamplingRun

__all__ = ["Stage1Conditioning", "build_stage1_conditioning", "fit_latent_rgb", "latent_preview",
           "FlowSchedule", "flow_schedule", "SAMPLERS", "SamplingInterrupted", "initial_noise",
           "model_dtype_device", "sample_stage1", "sample_stage1_latent", "stage1_latent", "plan_stage1", "run_stage1",
           "Stage1Plan", "Sampler", "get_sampler", "SamplingRun",
           "CHUNK_SAMPLER", "check_sampler_for_model", "chunk_flow_euler", "is_chunk_causal", "plan_chunk_causal",
           "sample_chunk_causal", "ChunkSchedule", "chunk_schedule",
           "DEFAULT_SIGMAS", "check_self_forcing", "STREAM_SAMPLER", "StreamPlan", "plan_streaming", "sample_streaming",
           "snap_stream_conditioning", "snap_stream_frames", "stream_stage1"]
