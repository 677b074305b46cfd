"""Camera trajectory files (.npy, .json, RealEstate10K/CameraCtrl .txt) and pose validation.

Every loader returns a `CameraPath` of camera-to-world matrices in OpenCV axes, checked to be rigid
(orthonormal rotation, det +1, last row 0 0 0 1) so a bad file fails here, naming the frame, instead of
producing a silently wrong video.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .file_values import check_file_size, finite_number, load_npy
from .geometry import invert_rigid
from .intrinsics import FPS_MAX, intrinsics_from_array, intrinsics_from_fov
from .types import CameraPath, Intrinsics

RIGID_TOL = 1e-3


def validate_c2w(poses: Any, *, name: str = "camera", tol: float = RIGID_TOL) -> np.ndarray:
    """Check an ``(F,4,4)`` stack of rigid transforms and return it as float64.

    Raises ValueError naming ``name`` and the first bad frame (shape, non-finite, non-orthonormal or
    mirrored rotation, last row not [0,0,0,1]).
    """
    try:
        arr = np.asarray(poses, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: camera poses must be numbers in a (F,4,4) array ({exc})") from None
    if arr.ndim != 3 or arr.shape[1:] != (4, 4) or arr.shape[0] < 1:
        raise ValueError(f"{name}: camera poses must have shape (F,4,4) with F >= 1, got {tuple(arr.shape)}")
    finite = np.isfinite(arr).all(axis=(1, 2))
    if not finite.all():
        i = int(np.argmin(finite))
        raise ValueError(f"{name}: frame {i} contains NaN or infinite values")
    rot = arr[:, :3, :3]
    ortho_err = np.abs(np.einsum("fji,fjk->fik", rot, rot) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(rot)
    last_err = np.abs(arr[:, 3, :] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1)
    bad = (ortho_err > tol) | (np.abs(det - 1.0) > tol) | (last_err > 1e-6)
    if bad.any():
        i = int(np.argmax(bad))
        if last_err[i] > 1e-6:
            why = f"its last row is {arr[i, 3].tolist()}, expected [0, 0, 0, 1]"
        elif ortho_err[i] > tol:
            why = (f"its 3x3 rotation is not orthonormal (max |R^T R - I| = {ortho_err[i]:.3g} > {tol}); "
                   "scaled or sheared poses are not camera poses")
        else:
            why = f"its rotation has determinant {det[i]:.4f}, expected +1 (a mirrored/left-handed pose)"
        raise ValueError(f"{name}: frame {i} is not a rigid camera pose: {why}")
    return arr


def _load_npy(path: Path) -> tuple[np.ndarray, Intrinsics | None, dict]:
    return load_npy(path), None, {}


def _json_intrinsics(value: Any, name: str) -> Intrinsics:
    if isinstance(value, dict):
        fov = value.get("fov_deg")
        size = value.get("image_size")
        if size is not None:
            if not isinstance(size, (list, tuple)) or len(size) != 2:
                raise ValueError(f"{name}: intrinsics 'image_size' must be [width, height], got {size!r}"[:300])
            size = tuple(int(finite_number(s, f"{name}: intrinsics image_size", low=1, high=1e6)) for s in size)
        if value.get("values") is None:
            if fov is None:
                raise ValueError(f"{name}: 'intrinsics' needs 'values' ([fx,fy,cx,cy] or K) or 'fov_deg'")
            fov_y = value.get("fov_y_deg")
            try:
                intr = intrinsics_from_fov(fov, fov_y, trusted=bool(value.get("trusted", False)))
            except ValueError as exc:
                raise ValueError(f"{name}: intrinsics {exc}") from None
            return intr.with_source(f"file:{name}")
        return intrinsics_from_array(value["values"], image_size=size, source=f"file:{name}", name=name,
                                     trusted=bool(value.get("trusted", False)))
    return intrinsics_from_array(value, source=f"file:{name}", name=name)


def _load_json(path: Path) -> tuple[np.ndarray, Intrinsics | None, dict]:
    check_file_size(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path.name}: not valid JSON ({exc})") from None
    meta: dict = {}
    intr = None
    if isinstance(data, dict):
        if "c2w" not in data:
            raise ValueError(f"{path.name}: a JSON object must hold 'c2w' (a list of 4x4 matrices), "
                             f"found keys {sorted(data)}")
        if data.get("intrinsics") is not None:
            intr = _json_intrinsics(data["intrinsics"], path.name)
        if data.get("fps") is not None:
            meta["fps"] = finite_number(data["fps"], f"{path.name}: 'fps'", low=0.0, high=FPS_MAX,
                                        strict_low=True)
        poses = data["c2w"]
    else:
        poses = data
    try:
        arr = np.asarray(poses, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path.name}: 'c2w' must be a list of 4x4 number matrices") from None
    return arr, intr, meta


def _load_txt(path: Path) -> tuple[np.ndarray, Intrinsics, dict]:
    """RealEstate10K / CameraCtrl: per line `timestamp fx fy cx cy 0 0 <3x4 world-to-camera>`, intrinsics
    normalised by the image size; the first line may be the video URL."""
    check_file_size(path)
    rows, stamps, lines = [], [], path.read_text(encoding="utf-8", errors="replace").splitlines()
    for lineno, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or (lineno == 1 and len(parts) == 1 and not _is_number(parts[0])):
            continue
        if len(parts) != 19:
            raise ValueError(f"{path.name}: line {lineno} has {len(parts)} values; a RealEstate10K line has 19 "
                             "(timestamp fx fy cx cy 0 0 and a 3x4 world-to-camera matrix)")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"{path.name}: line {lineno} holds a value that is not a number") from None
        stamps.append(vals[0])
        rows.append(vals[1:])
    if not rows:
        raise ValueError(f"{path.name}: no camera lines found")
    data = np.asarray(rows, dtype=np.float64)
    w2c = np.tile(np.eye(4), (len(rows), 1, 1))
    w2c[:, :3, :] = data[:, 6:18].reshape(-1, 3, 4)
    # normalised intrinsics are pixels of a 1x1 image: rescaling to the source size gives true pixels
    intr = Intrinsics(values=data[:, 0:4].copy(), image_size=(1, 1), source=f"file:{path.name}")
    return w2c, intr, {"timestamps": stamps, "world_to_camera": True}


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


# the one camera-file registry: suffix -> loader (the input-folder listing, the routes and the upload button
# read their suffix lists from it)
_LOADERS = {".npy": _load_npy, ".json": _load_json, ".txt": _load_txt}
TRAJECTORY_SUFFIXES = tuple(_LOADERS)
# suffixes whose matrices are world-to-camera by definition of the format
_WORLD_TO_CAMERA = (".txt",)


def load_trajectory(path: str | Path, *, world_to_camera: bool = False, fps: float = 16.0) -> CameraPath:
    """Load a camera path file into a `CameraPath` (camera-to-world, float64).

    ``.npy``: ``(F,4,4)``. ``.json``: a list of 4x4, or ``{"c2w": [...], "intrinsics": ..., "fps": ...}``
    (the camera JSON this pack writes loads back). ``.txt``: RealEstate10K lines, always world-to-camera by
    definition of the format. ``world_to_camera=True`` says the .npy/.json matrices are world-to-camera.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"camera file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        raise ValueError(f"{path.name}: unsupported camera file type {suffix!r}; use one of {TRAJECTORY_SUFFIXES}")
    arr, intr, meta = loader(path)
    poses = validate_c2w(arr, name=path.name)
    if suffix in _WORLD_TO_CAMERA or world_to_camera:
        poses = invert_rigid(poses)
    return CameraPath(c2w=poses, fps=float(meta.pop("fps", fps)), intrinsics=intr,
                      source=f"file:{path.name}", meta=meta)
