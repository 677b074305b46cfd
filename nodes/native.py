"""Nodes that let core samplers drive SANA-WM: the release sigma schedule as core SIGMAS.

With `SamplerCustom` / `SamplerCustomAdvanced`, sampler `euler`, these sigmas, the same seed and cfg, the
core path reproduces the pack's own sampler (tests/test_native_model.py).
"""
from __future__ import annotations

from comfy_api.latest import io

from ..sana_wm_core.sampling import flow_schedule

CATEGORY = "SANA-WM/sampling"


class SanaWMScheduler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMScheduler",
            display_name="SANA-WM Scheduler",
            category=CATEGORY,
            description=("The release's flow-matching schedule (diffusers' FlowMatchEulerDiscreteScheduler with "
                         "the flow shift, number for number) as SIGMAS for SamplerCustom / "
                         "SamplerCustomAdvanced with the euler sampler."),
            inputs=[
                io.Model.Input("model", tooltip=(
                    "A SANA-WM MODEL: its flow shift (the release config's, or ModelSamplingSD3's) is used "
                    "unless flow_shift is set.")),
                io.Int.Input("steps", default=60, min=1, max=1000, tooltip="Euler steps (reference: 60)."),
                io.Float.Input("flow_shift", default=0.0, min=0.0, max=100.0, step=0.05, tooltip=(
                    "Schedule shift. 0 = the model's (the release config's inference_flow_shift, 9.8).")),
            ],
            outputs=[io.Sigmas.Output(display_name="sigmas")],
        )

    @classmethod
    def execute(cls, model, steps: int, flow_shift: float) -> io.NodeOutput:
        shift = float(flow_shift) if flow_shift and flow_shift > 0 else model_shift(model)
        return io.NodeOutput(flow_schedule(int(steps), shift).sigmas)


def model_shift(model) -> float:
    """The flow shift of a core MODEL (the release config's, or ModelSamplingSD3's); ValueError if none."""
    sampling = model.get_model_object("model_sampling")
    shift = getattr(sampling, "shift", None)
    if shift is None:
        raise ValueError("model has no flow shift (not a flow model): connect a SANA-WM MODEL or set flow_shift")
    return float(shift)


NODES = (SanaWMScheduler,)
