"""Stage-1 sampling: release settings, the conditioning bundle, the flow schedule and the denoising loop."""
from .conditioning import Stage1Conditioning
from .i2v import build_stage1_conditioning
from .latent import SanaWMLatent
from .preview import fit_latent_rgb, latent_preview
from .release import DEFAULT_FLOW_SHIFT, ReleaseInfo, Stage1Model, flow_shift_from_config, read_release
from .schedule import FlowSchedule, flow_schedule
from .stage1 import SAMPLERS, SamplingInterrupted, initial_noise, model_dtype_device, sample_stage1

__all__ = ["Stage1Conditioning", "build_stage1_conditioning", "SanaWMLatent", "fit_latent_rgb", "latent_preview",
           "DEFAULT_FLOW_SHIFT", "ReleaseInfo", "Stage1Model", "flow_shift_from_config", "read_release",
           "FlowSchedule", "flow_schedule", "SAMPLERS", "SamplingInterrupted", "initial_noise",
           "model_dtype_device", "sample_stage1"]
