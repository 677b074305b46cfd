"""Seeing a camera path: a two-panel drawing (top-down x-z, side z-y) and a JSON summary.

The drawing is for the preview node; the JSON is saved beside videos and read by the browser editor.
Both show the path as the user gave it (not yet relative, not yet snapped).
"""
from __future__ import annotations

import colorsys
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .intrinsics import fov_degrees
from .tensors import snap_num_frames
from .types import CameraPath, Intrinsics

# One palette for this drawing and the page's live path view (web/js/sanawm_path_view.js reads the same file).
PALETTE_FILE = Path(__file__).resolve().parents[2] / "web" / "js" / "sanawm_palette.json"


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


PALETTE: dict[str, Any] = json.loads(PALETTE_FILE.read_text())
_BG = _rgb(PALETTE["background"])
_GRID = _rgb(PALETTE["grid"])
_TEXT = _rgb(PALETTE["text"])
_PANEL = _rgb(PALETTE["panel"])
_START = _rgb(PALETTE["start"])
_END = _rgb(PALETTE["end"])


def _colour(frac: float) -> tuple[int, int, int]:
    """The path colour at `frac` of the way along it: the live view's hue ramp (CSS hsl, rounded as it is)."""
    hue = PALETTE["path_hue_start"] + (PALETTE["path_hue_end"] - PALETTE["path_hue_start"]) * frac
    r, g, b = colorsys.hls_to_rgb(round(hue) / 360.0, PALETTE["path_lightness"], PALETTE["path_saturation"])
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def _half_fov(intr: Intrinsics | None) -> float:
    """Half the horizontal FOV for drawing frustums (60 degrees when unknown or pixel-only)."""
    if intr is not None and intr.fov_deg:
        return math.radians(intr.fov_deg) / 2.0
    if intr is not None and intr.values is not None and intr.image_size:
        row = np.asarray(intr.values, dtype=np.float64).reshape(-1, 4)[0]
        if row[0] > 0:
            return math.radians(fov_degrees(row, intr.image_size)[0]) / 2.0
    return math.radians(30.0)


class _Panel:
    """Maps two world axes into a square-scaled box of the canvas."""

    def __init__(self, box: tuple[int, int, int, int], pts: np.ndarray, flip_v: bool):
        self.box = box
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        span = max(float((hi - lo).max()), 1e-3)
        self.centre = (lo + hi) / 2.0
        x0, y0, x1, y1 = box
        self.scale = 0.8 * min(x1 - x0, y1 - y0 - 24) / span
        self.mid = ((x0 + x1) / 2.0, (y0 + 24 + y1) / 2.0)
        self.flip_v = flip_v

    def __call__(self, p: np.ndarray) -> tuple[float, float]:
        u = self.mid[0] + (p[0] - self.centre[0]) * self.scale
        dv = (p[1] - self.centre[1]) * self.scale
        return u, (self.mid[1] - dv if self.flip_v else self.mid[1] + dv)


def _draw_panel(draw: ImageDraw.ImageDraw, box, c2w: np.ndarray, axes: tuple[int, int], flip_v: bool,
                title: str, every_n: int, half_fov: float, spread: int) -> None:
    """One projection; frustum wedges open along camera axis ``spread`` (0 = right, 1 = down)."""
    x0, y0, x1, y1 = box
    draw.rectangle(box, fill=_PANEL, outline=_GRID)
    draw.text((x0 + 6, y0 + 4), title, fill=_TEXT)
    pos = c2w[:, :3, 3][:, axes]
    fwd = c2w[:, :3, 2][:, axes]
    right = c2w[:, :3, spread][:, axes]
    span = max(float((pos.max(axis=0) - pos.min(axis=0)).max()), 1e-3)
    depth = 0.08 * span if span > 1e-3 else 0.1
    fr_pts = [pos]
    marks = list(range(0, len(c2w), max(1, every_n)))
    if marks[-1] != len(c2w) - 1:
        marks.append(len(c2w) - 1)
    tip = math.tan(half_fov)
    wings = {i: (pos[i] + depth * (fwd[i] - tip * right[i]), pos[i] + depth * (fwd[i] + tip * right[i]))
             for i in marks}
    for a, b in wings.values():
        fr_pts += [a[None], b[None]]
    view = _Panel(box, np.concatenate(fr_pts), flip_v)
    count = len(c2w)
    if count > 1:
        for i in range(count - 1):
            draw.line([view(pos[i]), view(pos[i + 1])], fill=_colour(i / (count - 1)), width=2)
    for i in marks:
        col = _colour(i / max(count - 1, 1))
        a, b = wings[i]
        draw.polygon([view(pos[i]), view(a), view(b)], outline=col)
    ex, ey = view(pos[-1])
    draw.ellipse([ex - 4, ey - 4, ex + 4, ey + 4], fill=_END)
    sx, sy = view(pos[0])
    draw.ellipse([sx - 4, sy - 4, sx + 4, sy + 4], fill=_START)


def render_camera_preview(camera: CameraPath, every_n: int = 8, size: tuple[int, int] = (768, 384)) -> np.ndarray:
    """``(H,W,3)`` uint8 drawing: left the path seen from above (x right, z up the page), right from the side
    (z right, up = -y up the page), with a frustum every ``every_n`` frames and the frame count."""
    width, height = int(size[0]), int(size[1])
    if width < 64 or height < 64:
        raise ValueError(f"preview size must be at least 64x64, got {size}")
    if every_n < 1:
        raise ValueError(f"every_n must be >= 1, got {every_n}")
    c2w = np.asarray(camera.c2w, dtype=np.float64)
    img = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(img)
    half = width // 2
    foot = 22
    half_fov = _half_fov(camera.intrinsics)
    _draw_panel(draw, (2, 2, half - 3, height - foot), c2w, (0, 2), True, "top (x-z)", every_n, half_fov, 0)
    # side view: z to the right, y down the page (OpenCV y is down), so up is up
    _draw_panel(draw, (half + 2, 2, width - 3, height - foot), c2w, (2, 1), False, "side (z-y)", every_n,
                half_fov, 1)
    seconds = len(c2w) / camera.fps if camera.fps else 0.0
    label = f"{len(c2w)} frames  {seconds:.1f}s @ {camera.fps:g} fps  frustum every {every_n}"
    draw.text((6, height - foot + 5), label, fill=_TEXT)
    return np.asarray(img, dtype=np.uint8).copy()


def _intrinsics_json(intr: Intrinsics | None) -> dict[str, Any] | None:
    if intr is None:
        return None
    return {
        "values": None if intr.values is None else np.asarray(intr.values, dtype=np.float64).reshape(-1, 4).tolist(),
        "image_size": None if intr.image_size is None else [int(v) for v in intr.image_size],
        "fov_deg": intr.fov_deg,
        "fov_y_deg": intr.fov_y_deg,
        "source": intr.source,
        "trusted": bool(intr.trusted),
    }


def camera_path_json(camera: CameraPath) -> dict[str, Any]:
    """A JSON-ready summary: frames, positions, forward vectors, the full c2w (so it loads back with
    `load_trajectory`), intrinsics, fps, source, the action string and its key map."""
    c2w = np.asarray(camera.c2w, dtype=np.float64)
    return {
        "format": "sana_wm_camera/1",
        "frames": int(c2w.shape[0]),
        "fps": float(camera.fps),
        "source": camera.source,
        "action": camera.action,
        "mapping": camera.mapping,
        "positions": c2w[:, :3, 3].tolist(),
        "forward": c2w[:, :3, 2].tolist(),
        "c2w": c2w.tolist(),
        "intrinsics": _intrinsics_json(camera.intrinsics),
    }


def _rounded(a: np.ndarray) -> list:
    return (np.round(a, 6) + 0.0).tolist()   # + 0.0 turns -0.0 into 0.0


def path_view_json(camera: CameraPath, *, num_frames: int | None = None) -> dict[str, Any]:
    """What the browser editor draws: `camera_path_json` without the full matrices, plus the camera's right
    and up axes and the frame count the sampler uses for `num_frames` (None = not asked).

    OpenCV axes: a c2w's columns are the camera's x (right), y (down) and z (forward) in world
    coordinates, so "up" is minus the second column. 6 decimals (a micro-unit) is far below a pixel and
    halves the JSON of long paths.
    """
    out = camera_path_json(camera)
    c2w = np.asarray(out.pop("c2w"), dtype=np.float64)
    out["positions"] = _rounded(c2w[:, :3, 3])
    out["forward"] = _rounded(c2w[:, :3, 2])
    out["right"] = _rounded(c2w[:, :3, 0])
    out["up"] = _rounded(-c2w[:, :3, 1])
    out["used_frames"] = None if num_frames is None else int(snap_num_frames(int(num_frames), len(c2w)))
    return out
