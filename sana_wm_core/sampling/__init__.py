"""Stage-1 sampling: the conditioning bundle, the flow schedule and the denoising loop."""
from .conditioning import Stage1Conditioning
from .i2v import build_stage1_conditioning
from .preview import fit_latent_rgb, latent_preview
from .schedule import FlowSchedule, flow_schedule
from .stage1 import (SAMPLERS, SamplingInterrupted, initial_noise, model_dtype_device, sample_stage1,
                     sample_stage1_latent)

__all__ = ["Stage1Conditioning", "build_stage1_conditioning", "fit_latent_rgb", "latent_preview",
           "FlowSchedule", "flow_schedule", "SAMPLERS", "SamplingInterrupted", "initial_noise",
           "model_dtype_device", "sample_stage1", "sample_stage1_latent"]
