"""Camera nodes: build a SANAWM_CAMERA from an action string or a trajectory file, set its intrinsics,
and preview it. Thin adapters over `sana_wm_core.camera`; bad inputs fail validation with the parser's text.
"""
from __future__ import annotations

import hashlib
import os
import random
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

import folder_paths
from comfy_api.latest import io

from ..sana_wm_core.camera import (MAPPINGS, TRAJECTORY_SUFFIXES, CameraPath, action_string_to_c2w,
                                   intrinsics_from_array, intrinsics_from_fov, load_trajectory,
                                   parse_action_string, render_camera_preview)
from ..sana_wm_core.camera.input_files import list_camera_files, resolve_camera_file
from ..sana_wm_core.video.atomic import atomic_output
from .types import Camera, Intrinsics, combo_problem

CATEGORY = "SANA-WM/camera"
DEFAULT_ACTION = "w-80,jw-40,w-40,lw-60,w-100"
_NUM_FRAMES_TIP = ("Keep only the first N poses of the path (0 = the whole path). The sampler still snaps the "
                   "count to 8k+1 (the LTX-2 VAE needs it) and never goes past the path's length.")
_FPS_TIP = "Frame rate of the video this path is meant for (SANA-WM was trained at 16 fps)."
_INTR_TIP = ("Camera intrinsics (from 'Estimate Intrinsics' or 'Set Camera Intrinsics'). SANA-WM needs them; "
             "without them the sampler stops and asks for them.")


def _trim(c2w: np.ndarray, num_frames: int) -> np.ndarray:
    return c2w if num_frames <= 0 else c2w[:num_frames]


def _input_files() -> list[str]:
    """Trajectory files anywhere under ComfyUI's input/ (relative paths with '/')."""
    return list_camera_files(folder_paths.get_input_directory())


def _input_path(name: str) -> str:
    """The file a widget value names, refusing paths that leave the input folder."""
    return resolve_camera_file(name, folder_paths.get_input_directory())


class SanaWMCameraFromActions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMCameraFromActions",
            display_name="SANA-WM Camera from Actions",
            category=CATEGORY,
            description=("A camera path from a WASD/IJKL action string such as 'w-80,jw-40,w-40' (keys held, a "
                         "dash, then how many frames). N frames of actions give N+1 poses starting at the identity."),
            inputs=[
                io.String.Input("action", default=DEFAULT_ACTION, multiline=True, tooltip=(
                    "Comma-separated '<keys>-<frames>' segments. classic: w/s forward/back, a/d strafe, "
                    "j/l yaw, i/k pitch; game: a/d yaw, j/l strafe. 'none-10' holds no key. Keys combine "
                    "('dw-20'); case, spaces and full-width commas are ignored.")),
                io.Float.Input("translation_speed", default=0.05, min=0.0, max=1.0, step=0.001,
                               tooltip="Distance moved per frame while a move key is held "
                                       "(scene units; game's reference uses 0.025)."),
                io.Float.Input("rotation_speed_deg", default=1.2, min=0.0, max=15.0, step=0.05,
                               tooltip="Degrees turned per frame while a turn key is held "
                                       "(game's reference uses 0.6)."),
                io.Combo.Input("mapping", options=list(MAPPINGS), default="classic", tooltip=(
                    "classic = the released checkpoint's README and diffusers (constant speeds, pitch limit 85 "
                    "deg); game = the later NVlabs key map with eased velocities and a 60 deg pitch clamp.")),
                io.Int.Input("num_frames", default=0, min=0, max=100001, tooltip=_NUM_FRAMES_TIP),
                io.Float.Input("fps", default=16.0, min=1.0, max=120.0, step=1.0, tooltip=_FPS_TIP),
                Intrinsics.Input("intrinsics", optional=True, tooltip=_INTR_TIP),
            ],
            outputs=[Camera.Output(display_name="camera")],
        )

    @classmethod
    def validate_inputs(cls, action=None, mapping=None):
        if mapping is not None and combo_problem(cls, mapping=mapping) is not True:
            return combo_problem(cls, mapping=mapping)
        if action is None:  # linked from another node: checked when it runs
            return True
        try:
            parse_action_string(action)
        except ValueError as exc:
            return str(exc)
        return True

    @classmethod
    def execute(cls, action, translation_speed, rotation_speed_deg, mapping, num_frames, fps,
                intrinsics=None) -> io.NodeOutput:
        c2w = action_string_to_c2w(action, translation_speed, rotation_speed_deg, mapping)
        return io.NodeOutput(CameraPath(c2w=_trim(c2w, num_frames), fps=float(fps), intrinsics=intrinsics,
                                        source=f"action:{action}", action=action, mapping=mapping))


class SanaWMLoadCamera(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMLoadCamera",
            display_name="SANA-WM Load Camera Path",
            category=CATEGORY,
            description=("A camera path from a file in ComfyUI's input folder: .npy (F,4,4) camera-to-world, .json "
                         "(list of 4x4 or {c2w, intrinsics}) or RealEstate10K/CameraCtrl .txt."),
            inputs=[
                io.Combo.Input("file", options=_input_files(), tooltip=(
                    f"Trajectory file in ComfyUI's input folder ({', '.join(TRAJECTORY_SUFFIXES)}), subfolders "
                    "included. Upload one with the node's upload button (or POST /upload/image), or copy it into "
                    "input/ and refresh.")),
                io.Boolean.Input("world_to_camera", default=False, tooltip=(
                    "Turn on when the .npy/.json matrices are world-to-camera (extrinsics); they are inverted. "
                    ".txt RealEstate10K files are always world-to-camera.")),
                io.Int.Input("num_frames", default=0, min=0, max=100001, tooltip=_NUM_FRAMES_TIP),
                io.Float.Input("fps", default=16.0, min=1.0, max=120.0, step=1.0,
                               tooltip=_FPS_TIP + " A .json that stores its own fps keeps it."),
                Intrinsics.Input("intrinsics", optional=True,
                                 tooltip=_INTR_TIP + " Overrides intrinsics stored in the file."),
            ],
            outputs=[Camera.Output(display_name="camera")],
        )

    @classmethod
    def fingerprint_inputs(cls, file, **_):
        try:
            with open(_input_path(file), "rb") as fh:
                return hashlib.sha256(fh.read()).hexdigest()
        except (OSError, ValueError):
            return float("nan")

    @classmethod
    def validate_inputs(cls, file=None):
        if file is None:
            return True
        try:
            load_trajectory(_input_path(file))
        except ValueError as exc:
            return str(exc)
        return True

    @classmethod
    def execute(cls, file, world_to_camera, num_frames, fps, intrinsics=None) -> io.NodeOutput:
        cam = load_trajectory(_input_path(file), world_to_camera=world_to_camera, fps=fps)
        intr = intrinsics if intrinsics is not None else cam.intrinsics
        return io.NodeOutput(replace(cam, c2w=_trim(cam.c2w, num_frames), intrinsics=intr))


class SanaWMSetIntrinsics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        px = {"min": 0.0, "max": 100000.0, "step": 0.5}
        return io.Schema(
            node_id="SanaWMSetIntrinsics",
            display_name="SANA-WM Set Camera Intrinsics",
            category=CATEGORY,
            description=("Attach pinhole intrinsics to a camera path: fx fy cx cy in pixels of an image of the "
                         "given size, or a horizontal field of view (principal point centred)."),
            inputs=[
                Camera.Input("camera", tooltip="The camera path to attach intrinsics to."),
                io.Combo.Input("mode", options=["fov", "pixels"], default="fov", tooltip=(
                    "fov: use fov_deg (and fov_y_deg); pixels: use fx, fy, cx, cy.")),
                io.Float.Input("fov_deg", default=60.0, min=1.0, max=179.0, step=0.5, tooltip=(
                    "Horizontal field of view in degrees (mode fov). SANA-WM expects 25-120.")),
                io.Float.Input("fov_y_deg", default=0.0, min=0.0, max=179.0, step=0.5, tooltip=(
                    "Vertical field of view in degrees (mode fov); 0 = square pixels (fy = fx).")),
                io.Float.Input("fx", default=1000.0, tooltip="Focal length x in pixels (mode pixels).", **px),
                io.Float.Input("fy", default=1000.0, tooltip="Focal length y in pixels (mode pixels).", **px),
                io.Float.Input("cx", default=640.0, tooltip="Principal point x in pixels (mode pixels).", **px),
                io.Float.Input("cy", default=360.0, tooltip="Principal point y in pixels (mode pixels).", **px),
                io.Int.Input("image_width", default=0, min=0, max=32768, tooltip=(
                    "Width of the image fx/cx refer to; 0 = the first-frame image as loaded (mode pixels).")),
                io.Int.Input("image_height", default=0, min=0, max=32768, tooltip=(
                    "Height of the image fy/cy refer to; 0 = the first-frame image as loaded (mode pixels).")),
                io.Boolean.Input("trust_intrinsics", default=False, tooltip=(
                    "Skip the 25-120 degree field-of-view sanity check (for lenses you know are that wide or "
                    "narrow).")),
            ],
            outputs=[Camera.Output(display_name="camera"), Intrinsics.Output(display_name="intrinsics")],
        )

    @classmethod
    def validate_inputs(cls, mode=None):
        return combo_problem(cls, mode=mode)

    @classmethod
    def execute(cls, camera, mode, fov_deg, fov_y_deg, fx, fy, cx, cy, image_width, image_height,
                trust_intrinsics) -> io.NodeOutput:
        if mode == "fov":
            intr = intrinsics_from_fov(fov_deg, fov_y_deg or None, trusted=trust_intrinsics)
        elif mode == "pixels":
            if (image_width == 0) != (image_height == 0):
                raise ValueError("image_width and image_height must both be 0 (the first-frame image) or both "
                                 f"set; got {image_width}x{image_height}")
            size = (image_width, image_height) if image_width else None
            intr = intrinsics_from_array([fx, fy, cx, cy], image_size=size, source="user",
                                         name="Set Camera Intrinsics", trusted=trust_intrinsics)
        else:
            raise ValueError(f"mode must be 'fov' or 'pixels', got {mode!r}")
        return io.NodeOutput(camera.with_intrinsics(intr), intr)


class SanaWMCameraPreview(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMCameraPreview",
            display_name="SANA-WM Camera Preview",
            category=CATEGORY,
            description=("Draws the camera path from above and from the side, with a frustum every N frames, and "
                         "passes the path on: wire its camera output onward so the drawing is part of the run. "
                         "ComfyUI re-runs it only when the path changes; an unchanged path keeps the drawing shown "
                         "by the last run in this page (after reopening a workflow, change the path or free ComfyUI's "
                         "node cache to draw it again)."),
            inputs=[
                Camera.Input("camera", tooltip="The camera path to draw."),
                io.Int.Input("every_n", default=8, min=1, max=1000, tooltip=(
                    "Draw a camera frustum every N frames (8 = one per latent frame).")),
            ],
            outputs=[io.Image.Output(display_name="preview", tooltip="The drawing as an IMAGE."),
                     Camera.Output(display_name="camera",
                                   tooltip="The same camera path, unchanged, for the next node.")],
            # Not an output node: a workflow whose video branch is invalid must be refused as a whole (HTTP 400),
            # not run for its preview alone. ComfyUI still shows the `ui` drawing of any node that runs.
            is_output_node=False,
        )

    @classmethod
    def execute(cls, camera, every_n) -> io.NodeOutput:
        pixels = render_camera_preview(camera, every_n=every_n)
        out_dir = folder_paths.get_temp_directory()
        os.makedirs(out_dir, exist_ok=True)
        name = f"sanawm_camera_{random.getrandbits(48):012x}.png"
        with atomic_output(os.path.join(out_dir, name)) as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG", compress_level=1)
        image = torch.from_numpy(pixels.astype(np.float32) / 255.0)[None]
        return io.NodeOutput(image, camera, ui={"images": [{"filename": name, "subfolder": "", "type": "temp"}]})


NODES = [SanaWMCameraFromActions, SanaWMLoadCamera, SanaWMSetIntrinsics, SanaWMCameraPreview]
