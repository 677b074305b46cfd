"""The camera value that flows between nodes (ComfyUI type `SANAWM_CAMERA`) and its intrinsics.

Kept as plain numpy so it pickles, caches and serialises (the camera path JSON beside a video) without torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .keymaps import MAPPINGS


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in one of two forms (ComfyUI type `SANAWM_INTRINSICS`).

    * pixels: `values` is `(F,4)` `[fx, fy, cx, cy]` in pixels of an image of size `image_size` (W, H),
      normally the source image; F may be 1 (shared by every frame).
    * fov: `fov_deg` is the horizontal field of view (and `fov_y_deg` optionally the vertical one),
      turned into pixels once the source image size is known.
    `source` says where they came from ("user", "file:<name>", "pi3x", "exif", "fov").
    `trusted` skips the 25-120 degree field-of-view guard (for deliberately wide or narrow lenses).
    Normalised intrinsics (RealEstate10K) are pixels of a 1x1 image: `image_size=(1, 1)`.
    """

    values: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    fov_deg: float | None = None
    fov_y_deg: float | None = None
    source: str = "user"
    trusted: bool = False

    def with_source(self, source: str) -> "Intrinsics":
        return replace(self, source=source)


@dataclass(frozen=True)
class CameraPath:
    """A camera trajectory as camera-to-world matrices, `(F,4,4)` float64, OpenCV axes (x right, y down, z forward).

    `c2w` is stored as given (not yet made relative to frame 0, not yet snapped to 8k+1 frames): the
    conditioning step applies the reference's rules, so previews and saved JSON show the user's path.
    """

    c2w: np.ndarray
    fps: float = 16.0
    intrinsics: Intrinsics | None = None
    source: str = ""                      # "action:<string>" or "file:<name>"
    action: str | None = None             # the action string, when the path came from one
    mapping: str | None = None            # its key map (`keymaps.MAPPINGS`); None = not from keys
    meta: dict = field(default_factory=dict)   # what a file said beyond the poses (timestamps, ...)

    def __post_init__(self) -> None:
        if self.mapping is not None and self.mapping not in MAPPINGS:
            raise ValueError(f"mapping must be one of {MAPPINGS}, got {self.mapping!r}")

    @property
    def num_frames(self) -> int:
        return int(self.c2w.shape[0])

    def with_intrinsics(self, intrinsics: Intrinsics | None) -> "CameraPath":
        return replace(self, intrinsics=intrinsics)
