"""Stage-1 sampling: the flow schedule, the conditioning bundle and the denoising loop."""
from .conditioning import Stage1Conditioning
from .latent import SanaWMLatent
from .schedule import FlowSchedule, flow_schedule
from .stage1 import SAMPLERS, SamplingInterrupted, initial_noise, model_dtype_device, sample_stage1

__all__ = ["Stage1Conditioning", "SanaWMLatent", "FlowSchedule", "flow_schedule", "SAMPLERS", "SamplingInterrupted",
           "initial_noise", "model_dtype_device", "sample_stage1"]
