"""Pi3X, the geometry network that estimates camera intrinsics for the input image (the reference's method), with EXIF and FOV fallbacks."""
from .checkpoint import (HUB_CHOICE, PI3X_FILENAME, PI3X_REPO_ID, check_keys, expected_shapes, load_pi3x,
                         local_checkpoints, resolve_checkpoint)
from .config import Pi3XConfig
from .estimate import (METHODS, IntrinsicsEstimate, MethodUnavailable, estimate_intrinsics, estimate_with_pi3x,
                       image_from_tensor, pi3x_intrinsics)
from .exif import focal_35mm_from_exif, intrinsics_from_35mm
from .focal import focal_from_rays, pi3x_input_size, scale_to_source
from .network import Pi3XNetwork

__all__ = [
    "HUB_CHOICE", "METHODS", "PI3X_FILENAME", "PI3X_REPO_ID", "IntrinsicsEstimate", "MethodUnavailable",
    "Pi3XConfig", "Pi3XNetwork", "check_keys", "estimate_intrinsics", "estimate_with_pi3x",
    "expected_shapes", "focal_35mm_from_exif", "focal_from_rays", "image_from_tensor",
    "intrinsics_from_35mm", "load_pi3x", "local_checkpoints", "pi3x_input_size", "pi3x_intrinsics",
    "resolve_checkpoint", "scale_to_source",
]
