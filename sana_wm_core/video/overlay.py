"""A "WASD + joystick" HUD burnt into the frames, showing how the camera moves at each frame.

The reference's overlay source was never published, so this is our own design: bottom-left a W/A/S/D key
cluster lights the keys of the translation (forward/back, strafe left/right), bottom-right a joystick knob
shows the look motion (yaw right = knob right, pitch up = knob up). The motion of frame i is the step from
pose i-1 to pose i (frame 0 shows the first step). It comes from the action string when the path was typed
(keys read through the path's key map, `camera.keymaps`), else from the pose deltas, so any trajectory
file gets a HUD too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..camera.geometry import invert_rigid
from ..camera.keymaps import key_map, key_vector


@dataclass(frozen=True)
class Motion:
    """forward/strafe in {-1,0,1}; yaw/pitch in [-1,1] (joystick deflection)."""

    forward: int = 0
    strafe: int = 0
    yaw: float = 0.0
    pitch: float = 0.0


def motions_from_action(action: str, n_frames: int, mapping: str = "classic") -> list[Motion]:
    """Per-frame motions of an action string (N steps -> N+1 frames), padded/cut to `n_frames`."""
    from ..camera.actions import parse_action_string

    key_map(mapping)                                  # an unknown mapping fails before parsing
    steps: list[Motion] = []
    for seg in parse_action_string(action):
        move, strafe, yaw, pitch = key_vector(seg["keys"], mapping)
        steps += [Motion(move, strafe, float(yaw), float(pitch))] * seg["frames"]
    return _per_frame(steps, n_frames)


def _heading(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fwd = c2w[:, :3, 2]
    yaw = np.arctan2(fwd[:, 0], fwd[:, 2])
    pitch = np.arctan2(-fwd[:, 1], np.hypot(fwd[:, 0], fwd[:, 2]))
    return yaw, pitch


def motions_from_poses(c2w: np.ndarray, n_frames: int | None = None, rel_threshold: float = 0.25) -> list[Motion]:
    """Per-frame motions read off pose deltas: translation in the previous camera's frame lights keys when
    it exceeds `rel_threshold` of the clip's largest step; yaw/pitch rates are scaled by the largest."""
    c2w = np.asarray(c2w, dtype=np.float64)
    n = c2w.shape[0] if n_frames is None else n_frames
    if c2w.shape[0] < 2:
        return [Motion()] * n
    dt = (invert_rigid(c2w[:-1]) @ c2w[1:])[:, :3, 3]         # each step in the previous camera's frame
    yaw, pitch = _heading(c2w)
    dyaw = (np.diff(yaw) + math.pi) % (2 * math.pi) - math.pi
    dpitch = np.diff(pitch)
    move_scale = max(np.abs(dt[:, [0, 2]]).max(), 1e-9)
    rot_scale = max(np.abs(dyaw).max(), np.abs(dpitch).max(), 1e-9)

    def tri(x: float) -> int:
        return 0 if abs(x) < rel_threshold * move_scale else int(np.sign(x))

    steps = [Motion(tri(d[2]), tri(d[0]),
                    float(np.clip(y / rot_scale, -1, 1)) if rot_scale > 1e-8 else 0.0,
                    float(np.clip(p / rot_scale, -1, 1)) if rot_scale > 1e-8 else 0.0)
             for d, y, p in zip(dt, dyaw, dpitch)]
    return _per_frame(steps, n)


def _per_frame(steps: Sequence[Motion], n_frames: int) -> list[Motion]:
    frames = ([steps[0]] if steps else [Motion()]) + list(steps)
    frames = frames[:n_frames]
    return frames + [Motion()] * (n_frames - len(frames))


@lru_cache(maxsize=8)
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


@lru_cache(maxsize=256)
def _hud(motion: Motion, width: int, height: int) -> tuple[Image.Image, tuple[int, int], Image.Image, tuple[int, int]]:
    """Two RGBA layers (keys, joystick) and where they go, for one motion at one frame size."""
    u = max(8, height // 16)                   # key size
    gap = max(2, u // 6)
    keys = Image.new("RGBA", (3 * u + 2 * gap, 2 * u + gap), (0, 0, 0, 0))
    d = ImageDraw.Draw(keys)
    font = _font(max(6, int(u * 0.55)))
    lit = {"W": motion.forward > 0, "S": motion.forward < 0, "A": motion.strafe < 0, "D": motion.strafe > 0}
    for label, (cx, cy) in {"W": (1, 0), "A": (0, 1), "S": (1, 1), "D": (2, 1)}.items():
        x0, y0 = cx * (u + gap), cy * (u + gap)
        on = lit[label]
        d.rounded_rectangle([x0, y0, x0 + u - 1, y0 + u - 1], radius=max(2, u // 5),
                            fill=(255, 255, 255, 230) if on else (20, 20, 20, 140),
                            outline=(255, 255, 255, 220), width=max(1, u // 16))
        d.text((x0 + u / 2, y0 + u / 2), label, font=font, anchor="mm",
               fill=(20, 20, 20, 255) if on else (255, 255, 255, 230))
    r = int(1.1 * u)
    joy = Image.new("RGBA", (2 * r + 2, 2 * r + 2), (0, 0, 0, 0))
    d = ImageDraw.Draw(joy)
    d.ellipse([1, 1, 2 * r, 2 * r], fill=(20, 20, 20, 140), outline=(255, 255, 255, 220), width=max(1, u // 16))
    kr = max(3, r // 3)
    kx = r + 1 + motion.yaw * (r - kr)
    ky = r + 1 - motion.pitch * (r - kr)
    active = abs(motion.yaw) > 1e-3 or abs(motion.pitch) > 1e-3
    d.ellipse([kx - kr, ky - kr, kx + kr, ky + kr], fill=(255, 255, 255, 235 if active else 150))
    margin = max(4, height // 40)
    return keys, (margin, height - margin - keys.height), joy, (width - margin - joy.width, height - margin - joy.height)


def draw_hud(frame: np.ndarray, motion: Motion) -> np.ndarray:
    """One uint8 (H,W,3) frame with the HUD composited (a new array)."""
    h, w = frame.shape[:2]
    img = Image.fromarray(frame)
    keys, kpos, joy, jpos = _hud(motion, w, h)
    for layer, pos in ((keys, kpos), (joy, jpos)):
        box = (pos[0], pos[1], pos[0] + layer.width, pos[1] + layer.height)
        region = img.crop(box).convert("RGBA")
        img.paste(Image.alpha_composite(region, layer).convert("RGB"), box[:2])
    return np.asarray(img)


class OverlayPainter:
    """Applies per-frame HUDs to streamed chunks; frame k of the stream uses `motions[k]`."""

    def __init__(self, motions: Sequence[Motion]):
        self.motions = list(motions)
        self._next = 0

    @classmethod
    def for_camera(cls, camera, n_frames: int, *, first_pose: int = 0, c2w: np.ndarray | None = None):
        """Motions of frames `first_pose .. first_pose+n_frames-1` of a CameraPath (action if typed)."""
        total = first_pose + n_frames
        action = camera.action if camera is not None else None
        if action:
            motions = motions_from_action(action, total, camera.mapping or "classic")
        else:
            poses = c2w if c2w is not None else np.asarray(camera.c2w)
            motions = motions_from_poses(poses, total)
        return cls(motions[first_pose:])

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        out = np.empty_like(chunk)
        for i, frame in enumerate(chunk):
            k = self._next + i
            out[i] = draw_hud(frame, self.motions[k] if k < len(self.motions) else Motion())
        self._next += len(chunk)
        return out
