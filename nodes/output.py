"""Output nodes: decode a SANAWM_LATENT to an IMAGE batch (short clips) or stream it into an mp4.

`SanaWMSaveVideo` never holds the clip as floats: the VAE decodes window by window, each window is
converted to uint8 and encoded into the H.264 file at once. It writes `<prefix>_NNNNN_.mp4` and
`<prefix>_NNNNN_.camera.json` into ComfyUI's output folder, shows the video in the UI and also returns
ComfyUI's VIDEO type so core video nodes can take it.
"""
from __future__ import annotations

import os
from typing import Any

import folder_paths

from ..sana_wm_core.latent import require_latent
from ..sana_wm_core.vae import LTX2Vae, decode_latent_frames, decode_latent_images
from ..sana_wm_core.video import save_latent_clip
from .host import ComfyHost

CATEGORY = "SANA-WM/output"


def _vae(value: Any) -> LTX2Vae:
    if not isinstance(value, LTX2Vae):
        raise ValueError(f"vae must come from the SANA-WM VAE Loader (SANAWM_VAE), got {type(value).__name__}")
    value.to_device()
    return value


class SanaWMDecode:
    DESCRIPTION = ("Decodes SANA-WM latents to an IMAGE batch. For short clips: a 961-frame clip would be 10 GB "
                   "of floats; use SANA-WM Save Video for long ones (it streams).")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": ("SANAWM_VAE", {"tooltip": "The LTX-2 VAE from the SANA-WM VAE Loader."}),
            "latent": ("SANAWM_LATENT", {"tooltip": "Latents from the SANA-WM Sampler or Refiner."}),
            "max_frames": ("INT", {"default": 321, "min": 1, "max": 100001, "tooltip": (
                "Refuse clips longer than this (they would not fit in RAM as floats); 321 frames at "
                "704x1280 is 3.5 GB.")}),
        }}

    def decode(self, vae, latent, max_frames):
        lat = require_latent(latent)
        return (decode_latent_images(_vae(vae), lat, max_frames=max_frames),)


class SanaWMSaveVideo:
    DESCRIPTION = ("Decodes SANA-WM latents window by window straight into an H.264 mp4 in ComfyUI's output "
                   "folder, with the camera path saved as JSON beside it; optional WASD + joystick overlay.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("VIDEO",)
    RETURN_NAMES = ("video",)
    FUNCTION = "save"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": ("SANAWM_VAE", {"tooltip": "The LTX-2 VAE from the SANA-WM VAE Loader."}),
            "latent": ("SANAWM_LATENT", {"tooltip": "Latents from the SANA-WM Sampler or Refiner."}),
            "filename_prefix": ("STRING", {"default": "SANA-WM/clip", "tooltip": (
                "File name prefix inside ComfyUI's output folder (subfolders allowed, %date% style "
                "variables work as in Save Image).")}),
            "overlay": ("BOOLEAN", {"default": False, "tooltip": (
                "Burn a WASD + joystick HUD into the video showing the camera motion of each frame.")}),
            "fps": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 240.0, "step": 1.0, "tooltip": (
                "Frame rate of the mp4. 0 = the camera path's fps (16 for SANA-WM).")}),
            "crf": ("INT", {"default": 25, "min": 0, "max": 51, "tooltip": (
                "H.264 quality (lower = better, bigger). 25 is what the reference writes.")}),
        }, "optional": {
            "camera": ("SANAWM_CAMERA", {"tooltip": (
                "Overrides the camera path carried by the latent (used for the overlay and the JSON).")}),
        }}

    def save(self, vae, latent, filename_prefix, overlay, fps, crf, camera=None):
        from comfy_api.input_impl import VideoFromFile

        lat = require_latent(latent)
        v = _vae(vae)
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

        info, json_path = save_latent_clip(frames(), os.path.join(folder, file), lat, camera=camera, fps=fps,
                                           overlay=bool(overlay), crf=int(crf))
        ui = {"images": [{"filename": file, "subfolder": subfolder, "type": "output"}], "animated": (True,),
              "camera_json": [{"filename": json_path.name, "subfolder": subfolder, "type": "output"}]}
        return {"ui": ui, "result": (VideoFromFile(str(info.path)),)}


NODE_CLASS_MAPPINGS = {"SanaWMDecode": SanaWMDecode, "SanaWMSaveVideo": SanaWMSaveVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"SanaWMDecode": "SANA-WM Decode (IMAGE batch)",
                              "SanaWMSaveVideo": "SANA-WM Save Video (mp4 + camera JSON)"}
