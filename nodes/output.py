"""Output nodes: decode a Stage-1 or refined latent to an IMAGE batch (short clips) or stream it into an mp4.

The latent is a core LATENT (`native_latent`). Where a core node dropped
the clip info it carried (Save Latent / Load Latent), Decode needs nothing (every frame is decoded; a refined
latent then keeps its sink frame) and Save Video takes fps / camera from its own inputs.

`SanaWMSaveVideo` never holds the clip as floats: the VAE decodes window by window, each window is
converted to uint8 and encoded into the H.264 file at once. It writes `<prefix>_NNNNN_.mp4` and
`<prefix>_NNNNN_.camera.json` into ComfyUI's output folder, shows the video in the UI and also returns
ComfyUI's VIDEO type so core video nodes can take it.
"""
from __future__ import annotations

import os
from typing import Any

import folder_paths
from comfy_api.latest import io

from ..sana_wm_core.vae import LTX2Vae, decode_latent_frames, decode_latent_images
from ..sana_wm_core.video import save_latent_clip
from .host import ComfyHost
from .native_latent import engine_latent, latent_input
from .types import Camera, Vae

CATEGORY = "SANA-WM/output"


def _vae(value: Any) -> LTX2Vae:
    if not isinstance(value, LTX2Vae):
        raise ValueError(f"vae must come from the SANA-WM VAE Loader (SANAWM_VAE), got {type(value).__name__}")
    return value


LATENT_TOOLTIP = ("Latents from a sampler driving the SANA-WM model, SANA-WM Refine, or core Load Latent. "
                  "The latent's noise mask is ignored.")


class SanaWMDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMDecode",
            display_name="SANA-WM Decode (IMAGE batch)",
            category=CATEGORY,
            description=("Decodes SANA-WM latents to an IMAGE batch. For short clips: a 961-frame clip would be "
                         "10 GB of floats; use SANA-WM Save Video for long ones (it streams)."),
            inputs=[
                Vae.Input("vae", tooltip="The LTX-2 VAE from the SANA-WM VAE Loader."),
                latent_input(LATENT_TOOLTIP + " Needs no camera or fps: a latent that lost its SANA-WM clip "
                             "info (core Load Latent) decodes every frame, a refined one then with its sink frame "
                             "first."),
                io.Int.Input("max_frames", default=321, min=1, max=100001, tooltip=(
                    "Refuse clips longer than this (they would not fit in RAM as floats); 321 frames at "
                    "704x1280 is 3.5 GB.")),
            ],
            outputs=[io.Image.Output(display_name="images")],
        )

    @classmethod
    def execute(cls, vae, latent, max_frames) -> io.NodeOutput:
        v = _vae(vae)
        lat = engine_latent(latent, temporal_stride=v.temporal_ratio)
        v.to_device()
        return io.NodeOutput(decode_latent_images(v, lat, max_frames=max_frames))


class SanaWMSaveVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMSaveVideo",
            display_name="SANA-WM Save Video (mp4 + camera JSON)",
            category=CATEGORY,
            description=("Decodes SANA-WM latents window by window straight into an H.264 mp4 in ComfyUI's output "
                         "folder, with the camera path saved as JSON beside it; optional WASD + joystick overlay."),
            inputs=[
                Vae.Input("vae", tooltip="The LTX-2 VAE from the SANA-WM VAE Loader."),
                latent_input(LATENT_TOOLTIP + " One that lost its SANA-WM clip info (core Load Latent) needs "
                             "'fps' or 'camera', and a refined one then also writes its sink frame first (the "
                             "saved latent no longer says to drop it: one frame more than the refined clip)."),
                io.String.Input("filename_prefix", default="SANA-WM/clip", tooltip=(
                    "File name prefix inside ComfyUI's output folder (subfolders allowed, %date% style "
                    "variables work as in Save Image).")),
                io.Boolean.Input("overlay", default=False, tooltip=(
                    "Burn a WASD + joystick HUD into the video showing the camera motion of each frame.")),
                io.Float.Input("fps", default=0.0, min=0.0, max=240.0, step=1.0, tooltip=(
                    "Frame rate of the mp4. 0 = the camera path's fps (16 for SANA-WM), from 'camera' or the latent. "
                    "A latent from core Load Latent carries none: set it here or connect 'camera'.")),
                io.Int.Input("crf", default=25, min=0, max=51, tooltip=(
                    "H.264 quality (lower = better, bigger). 25 is what the reference writes.")),
                Camera.Input("camera", optional=True, tooltip=(
                    "Overrides the camera path carried by the latent (used for the overlay and the JSON). A latent "
                    "from core Load Latent carries none: connect the path it was generated with for the overlay, "
                    "the poses in the JSON and the fps.")),
            ],
            outputs=[io.Video.Output(display_name="video")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, vae, latent, filename_prefix, overlay, fps, crf, camera=None) -> io.NodeOutput:
        from comfy_api.input_impl import VideoFromFile

        v = _vae(vae)
        lat = engine_latent(latent, temporal_stride=v.temporal_ratio).with_clip_inputs(camera, fps)
        lat.require_fps()          # before the VAE moves (save_clip checks the overlay's camera before decoding)
        v.to_device()
        _, _, _, h, w = lat.samples.shape
        out_dir = folder_paths.get_output_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, out_dir, w * v.spatial_ratio, h * v.spatial_ratio)
        file = f"{name}_{counter:05}_.mp4"
        total = lat.output_frames
        host = ComfyHost()

        def frames():
            done = 0
            for chunk in decode_latent_frames(v, lat):
                host.check_interrupt()
                done += len(chunk)
                host.progress(done, total)
                yield chunk

        info, json_path = save_latent_clip(frames(), os.path.join(folder, file), lat,
                                           overlay=bool(overlay), crf=int(crf))
        ui = {"images": [{"filename": file, "subfolder": subfolder, "type": "output"}], "animated": (True,),
              "camera_json": [{"filename": json_path.name, "subfolder": subfolder, "type": "output"}]}
        return io.NodeOutput(VideoFromFile(str(info.path)), ui=ui)


NODES = [SanaWMDecode, SanaWMSaveVideo]
