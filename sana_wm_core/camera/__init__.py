"""Camera paths: action DSL, trajectory files, intrinsics, camera tensors, preview drawing."""
from .actions import action_string_to_c2w, parse_action_string
from .conditioning import CameraInputs, build_camera_inputs, resolve_intrinsics
from .geometry import invert_rigid, relative_poses, relative_to_first
from .image import crop_geometry, preprocess_image, resize_and_crop
from .intrinsics import (check_fov, field_of_view_deg, fit_intrinsics, fov_to_pixels, intrinsics_from_array,
                         intrinsics_from_fov, load_intrinsics_file, source_pixels, transform_for_crop)
from .keymaps import KEY_MAPS, MAPPINGS, key_labels
from .preview import camera_path_json, path_view_json, render_camera_preview
from .tensors import plucker_rays, prepare_camera, snap_num_frames
from .trajectory import TRAJECTORY_SUFFIXES, load_trajectory, validate_c2w
from .types import CameraPath, Intrinsics

__all__ = [
    "KEY_MAPS", "MAPPINGS", "TRAJECTORY_SUFFIXES", "CameraInputs", "CameraPath", "Intrinsics", "action_string_to_c2w",
    "build_camera_inputs", "camera_path_json", "check_fov", "crop_geometry", "field_of_view_deg",
    "fit_intrinsics", "fov_to_pixels", "intrinsics_from_array", "intrinsics_from_fov", "invert_rigid",
    "key_labels", "load_intrinsics_file", "load_trajectory", "parse_action_string", "path_view_json", "plucker_rays", "prepare_camera",
    "preprocess_image", "relative_poses", "relative_to_first", "render_camera_preview", "resize_and_crop", "resolve_intrinsics",
    "snap_num_frames", "source_pixels", "transform_for_crop", "validate_c2w",
]
