"""Node: estimate the input image's camera intrinsics (Pi3X like the reference, or EXIF, or a typed FOV).

Thin adapter: picks files from ComfyUI's folders, hands the engine the device, shows the result as UI text.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import folder_paths
from comfy_api.latest import io

from ..sana_wm_core.camera import load_intrinsics_file
from ..sana_wm_core.camera.input_files import list_camera_files, resolve_camera_file
from ..sana_wm_core.pi3x import HUB_CHOICE, METHODS, estimate_intrinsics, image_from_tensor, resolve_checkpoint
from .types import Intrinsics, combo_problem

log = logging.getLogger("sana_wm")
PI3X_FOLDER = "pi3x"
NO_FILE = "none"
INTRINSICS_SUFFIXES = (".npy", ".json")
PI3X_GPU_BYTES = int(4.5e9)

if PI3X_FOLDER not in folder_paths.folder_names_and_paths:
    folder_paths.folder_names_and_paths[PI3X_FOLDER] = (
        [os.path.join(folder_paths.models_dir, PI3X_FOLDER)], {".safetensors"})


def _pi3x_choices() -> list[str]:
    return list(folder_paths.get_filename_list(PI3X_FOLDER)) + [HUB_CHOICE]


def _input_images() -> list[str]:
    folder = folder_paths.get_input_directory()
    try:
        files = [f for f in os.listdir(folder) if os.path.isfile(os.path.join(folder, f))]
    except OSError:
        files = []
    return [NO_FILE] + sorted(folder_paths.filter_files_content_types(files, ["image"]))


def _host():
    from .host import ComfyHost  # ComfyUI is imported only when a node runs
    return ComfyHost()


def _device():
    import comfy.model_management as mm
    return mm.get_torch_device()


class SanaWMEstimateIntrinsics(io.ComfyNode):
    """Camera intrinsics (fx, fy, cx, cy) of the input image for the camera nodes' `intrinsics` input."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMEstimateIntrinsics",
            display_name="SANA-WM Estimate Intrinsics",
            category="SANA-WM/camera",
            description=("Estimates the input image's camera intrinsics with Pi3X (or from EXIF, or from a FOV) and "
                         "shows fx, fy, the fields of view and the source used."),
            inputs=[
                io.Image.Input("image", tooltip="The first frame (the image SANA-WM will animate), uncropped. "
                                                "Only the first image of a batch is used."),
                io.Combo.Input("method", options=list(METHODS), default="pi3x", tooltip=
                               "pi3x: estimate with the Pi3X network, as the reference does when no intrinsics are "
                               "given. exif: the photo's 35 mm-equivalent focal length (needs exif_image). fov: the "
                               "horizontal field of view typed in fov_deg."),
                io.Float.Input("fov_deg", default=60.0, min=1.0, max=179.0, step=0.5, tooltip=
                               "Horizontal field of view in degrees for method 'fov' and as the last fallback. "
                               "SANA-WM accepts 25-120 degrees on both axes (square pixels)."),
                io.Boolean.Input("fallback", default=True, tooltip=
                                 "When the chosen method cannot answer (no Pi3X weights offline, no EXIF focal, an "
                                 "implausible estimate), try the next: pi3x -> exif -> fov. The output says which "
                                 "was used."),
                io.Combo.Input("pi3x_checkpoint", options=_pi3x_choices(), tooltip=
                               "Pi3X weights from models/pi3x/, or the hub repo yyfz233/Pi3X "
                               "(downloaded once into models/pi3x/Pi3X/)."),
                io.Combo.Input("exif_image", options=_input_images(), default=NO_FILE, optional=True, tooltip=
                               "The same picture as a file in ComfyUI's input folder, to read its EXIF focal "
                               "length (IMAGE tensors carry no EXIF). 'none' skips EXIF."),
            ],
            outputs=[Intrinsics.Output(display_name="intrinsics", tooltip=(
                "Intrinsics in pixels of the input image, for a camera node's optional intrinsics input."))],
            # Not an output node (its intrinsics always feed a camera node): a prompt whose video branch is
            # invalid is then refused whole (HTTP 400). ComfyUI still sends and stores the `ui` text of every
            # node that runs.
            is_output_node=False,
        )

    @classmethod
    def validate_inputs(cls, method=None, pi3x_checkpoint=None, exif_image=None):
        return combo_problem(cls, method=method, pi3x_checkpoint=pi3x_checkpoint, exif_image=exif_image)

    @classmethod
    def execute(cls, image, method: str, fov_deg: float, fallback: bool, pi3x_checkpoint: str,
                exif_image: str = NO_FILE) -> io.NodeOutput:
        pil = image_from_tensor(image)
        exif_source = None
        if exif_image and exif_image != NO_FILE:
            if not folder_paths.exists_annotated_filepath(exif_image):
                raise ValueError(f"exif_image: {exif_image!r} is not in ComfyUI's input folder; upload it or "
                                 "choose 'none'")
            exif_source = Path(folder_paths.get_annotated_filepath(exif_image))

        host = _host()

        def checkpoint() -> Path:
            import comfy.model_management as mm
            host.check_interrupt()
            device = mm.get_torch_device()
            if getattr(device, "type", "cpu") == "cuda":
                mm.free_memory(PI3X_GPU_BYTES, device)  # room for Pi3X's ~0.85B fp32 weights + activations
            folders = [Path(p) for p in folder_paths.get_folder_paths(PI3X_FOLDER)]
            return resolve_checkpoint(pi3x_checkpoint, folders, download_dir=folders[0] if folders else None,
                                      progress=lambda done, total: total > 0 and host.progress(done, total))

        result = estimate_intrinsics(pil, method, fov_deg=fov_deg, exif_source=exif_source,
                                     checkpoint=checkpoint if method == "pi3x" else None, device=_device(),
                                     fallback=fallback)
        text = result.summary()
        log.info("SANA-WM intrinsics:\n%s", text)
        return io.NodeOutput(result.intrinsics, ui={"text": [text]})


def _intrinsics_files() -> list[str]:
    return [f for f in list_camera_files(folder_paths.get_input_directory())
            if f.lower().endswith(INTRINSICS_SUFFIXES)]


class SanaWMLoadIntrinsics(io.ComfyNode):
    """Intrinsics from a file the user already has (the reference's `--intrinsics` .npy)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SanaWMLoadIntrinsics",
            display_name="SANA-WM Load Intrinsics",
            category="SANA-WM/camera",
            description="Loads camera intrinsics (fx, fy, cx, cy in source-image pixels) from a .npy or .json file.",
            inputs=[io.Combo.Input("file", options=_intrinsics_files(), tooltip=
                    "A .npy (or .json) in ComfyUI's input folder holding [fx, fy, cx, cy], a 3x3 K, or one of those "
                    "per frame ((F,4) / (F,3,3)), in pixels of the source image.")],
            outputs=[Intrinsics.Output(display_name="intrinsics", tooltip=(
                "Intrinsics in source-image pixels, for a camera node's optional intrinsics input."))],
        )

    @classmethod
    def validate_inputs(cls, file):
        try:
            cls._read(file)
        except ValueError as exc:
            return f"file: {exc}"
        return True

    @classmethod
    def fingerprint_inputs(cls, file):
        try:
            return os.path.getmtime(resolve_camera_file(file, folder_paths.get_input_directory()))
        except (ValueError, OSError):
            return float("nan")

    @staticmethod
    def _read(file: str):
        if not str(file).lower().endswith(INTRINSICS_SUFFIXES):
            raise ValueError(f"{file!r}: intrinsics files must be .npy or .json")
        return load_intrinsics_file(resolve_camera_file(file, folder_paths.get_input_directory()))

    @classmethod
    def execute(cls, file: str) -> io.NodeOutput:
        return io.NodeOutput(cls._read(file))


NODES = [SanaWMEstimateIntrinsics, SanaWMLoadIntrinsics]
