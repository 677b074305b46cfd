"""Camera paths: action DSL, trajectory files, intrinsics, camera tensors, preview drawing."""
from .types import CameraPath, Intrinsics

__all__ = ["CameraPath", "Intrinsics"]
