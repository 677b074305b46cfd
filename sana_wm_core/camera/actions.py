"""The WASD/IJKL action language: text -> segments -> a camera-to-world trajectory.

Two key maps exist because the reference changed after its first release (the table: `keymaps`):

* ``classic`` (first release, what diffusers implements): w/s forward/back, a/d strafe, j/l yaw,
  i/k pitch; constant speeds; a pitch step that would leave +-85 deg is dropped.
* ``game`` (current NVlabs demo + inference): w/s forward/back, a/d yaw, j/l strafe, i/k pitch;
  velocities are exponentially smoothed at 16 fps (instant on a fresh key press, eased otherwise);
  pitch is clamped at +-60 deg.

Both integrate the same geometry: rotation ``Ry(yaw) . R . Rx(pitch)`` (never roll), translation on the
horizontal plane along the heading. Poses are OpenCV camera-to-world (x right, y down, z forward),
pose 0 is the identity, N action frames give N+1 poses.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .keymaps import ALLOWED_KEYS, MAPPINGS, key_vector

MAX_TOTAL_FRAMES = 100_000
PITCH_LIMIT_DEG = {"classic": 85.0, "game": 60.0}

# game-map smoothing constants (seconds); the reference steps the smoother at 16 fps.
_GAME_DT = 1.0 / 16.0
_TAU_PRESS = 0.45
_TAU_COAST = 1.0

_FULLWIDTH_COMMA = "\uff0c"


def _clean(action: str) -> str:
    """Full-width commas become commas and every whitespace character disappears (reference grammar)."""
    if not isinstance(action, str):
        raise ValueError(f"action must be a string like 'w-30,dw-20', got {type(action).__name__}")
    return "".join(action.replace(_FULLWIDTH_COMMA, ",").split())


def _segment_error(index: int, text: str, rule: str) -> ValueError:
    return ValueError(f"action segment {index} ({text!r}): {rule}")


def parse_action_string(action: str) -> list[dict[str, Any]]:
    """Split an action string into segments, validating each one.

    Returns a JSON-friendly list, one dict per comma-separated segment:
    ``{"index": 1-based position, "text": cleaned segment, "keys": sorted unique keys ([] for none),
    "frames": duration, "start": first action frame (0-based)}``.
    Raises ValueError naming the segment, its position and the broken rule.
    """
    cleaned = _clean(action)
    if not cleaned:
        raise ValueError("action string is empty: write segments like 'w-30,dw-20' "
                         "(keys, a dash, then a frame count)")
    segments: list[dict[str, Any]] = []
    start = 0
    for index, text in enumerate(cleaned.split(","), start=1):
        if not text:
            raise _segment_error(index, text, "empty segment (two commas in a row, or a leading/trailing "
                                 "comma); remove it or write '<keys>-<frames>'")
        if "-" not in text:
            raise _segment_error(index, text, "missing '-': expected '<keys>-<frames>', e.g. 'w-30'")
        keys_part, count = text.rsplit("-", 1)
        frames = None
        if count.isdigit():
            try:
                frames = int(count)
            except ValueError:
                frames = None
        if frames is None or frames <= 0:
            raise _segment_error(index, text, f"the frame count {count!r} must be a positive whole number "
                                 "(e.g. 'w-30'); 0, decimals and signs are not allowed")
        lowered = keys_part.lower()
        if lowered == "none":
            keys: list[str] = []
        else:
            unknown = sorted({c for c in lowered if c not in ALLOWED_KEYS})
            if unknown:
                raise _segment_error(index, text, f"unknown keys {unknown}; allowed keys are "
                                     f"{', '.join(ALLOWED_KEYS)} or 'none' for no key")
            keys = sorted(set(lowered))
        segments.append({"index": index, "text": text, "keys": keys, "frames": frames, "start": start})
        start += frames
        if start > MAX_TOTAL_FRAMES:
            raise _segment_error(index, text, f"the total length reaches {start} frames, over the limit of "
                                 f"{MAX_TOTAL_FRAMES}; shorten the durations")
    return segments


def _per_frame_keys(segments: list[dict[str, Any]]) -> list[frozenset[str]]:
    frames: list[frozenset[str]] = []
    for seg in segments:
        frames.extend([frozenset(seg["keys"])] * seg["frames"])
    return frames


def _rx(angle: float, cos=np.cos, sin=np.sin) -> np.ndarray:
    c, s = cos(angle), sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=np.float64)


def _ry(angle: float, cos=np.cos, sin=np.sin) -> np.ndarray:
    c, s = cos(angle), sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=np.float64)


def _flat_axis(rot: np.ndarray, column: int, eps: float) -> np.ndarray:
    """A rotation column projected on the horizontal plane and normalised (by norm + eps)."""
    axis = rot[:, column].copy()
    axis[1] = 0.0
    norm = float(np.linalg.norm(axis))
    if norm > 0:
        axis /= norm + eps if eps else norm
    return axis


def _pose(rot: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = np.eye(4, dtype=np.float64)
    out[:3, :3] = rot
    out[:3, 3] = t
    return out


def _roll_classic(frames: list[frozenset[str]], ts: float, rot_rad: float, limit_rad: float) -> np.ndarray:
    """First-release integrator: constant speeds, pitch steps past the limit are dropped whole."""
    pose = np.eye(4, dtype=np.float64)
    out = [pose]
    pitch = 0.0
    for held in frames:
        move, strafe, yaw, tilt = key_vector(held, "classic")
        dpitch = tilt * rot_rad
        if -limit_rad <= pitch + dpitch <= limit_rad:
            pitch = pitch + dpitch
        else:
            dpitch = 0.0
        rot = _ry(yaw * rot_rad) @ pose[:3, :3] @ _rx(dpitch)
        fwd, right = _flat_axis(rot, 2, 0.0), _flat_axis(rot, 0, 0.0)
        pose = _pose(rot, pose[:3, 3] + (fwd * (move * ts) + right * (strafe * ts)))
        out.append(pose)
    return np.stack(out)


def _game_target(held: frozenset[str], ts: float, rot_rad: float) -> list[float]:
    units = key_vector(held, "game")
    scale = (ts, ts, rot_rad, rot_rad)
    return [u * s for u, s in zip(units, scale)]


def _roll_game(frames: list[frozenset[str]], ts: float, rot_rad: float, limit_rad: float) -> np.ndarray:
    """Current integrator: smoothed velocities (snap on a fresh press), pitch clamped at the limit."""
    alpha_press = 1.0 - math.exp(-_GAME_DT / _TAU_PRESS)
    alpha_coast = 1.0 - math.exp(-_GAME_DT / _TAU_COAST)
    vel = [0.0, 0.0, 0.0, 0.0]             # forward, strafe-right, yaw-right, pitch-up
    previous: frozenset[str] = frozenset()
    pose = np.eye(4, dtype=np.float64)
    out = [pose]
    pitch = 0.0
    for held in frames:
        target = _game_target(held, ts, rot_rad)
        # a control is fresh when its key was not held last frame (opposite keys are distinct controls)
        if held - previous:
            vel = list(target)
        else:
            vel = [v + (alpha_press if abs(g) > 1e-12 else alpha_coast) * (g - v) for v, g in zip(vel, target)]
        previous = held
        clamped = max(-limit_rad, min(limit_rad, pitch + vel[3]))
        dpitch = clamped - pitch
        pitch = clamped
        rot = _ry(vel[2], math.cos, math.sin) @ pose[:3, :3] @ _rx(dpitch, math.cos, math.sin)
        fwd, right = _flat_axis(rot, 2, 1e-6), _flat_axis(rot, 0, 1e-6)
        pose = _pose(rot, pose[:3, 3] + fwd * vel[0] + right * vel[1])
        out.append(pose)
    return np.stack(out)


def action_string_to_c2w(action: str, translation_speed: float = 0.05, rotation_speed_deg: float = 1.2,
                         mapping: str = "classic", *, pitch_limit_deg: float | None = None) -> np.ndarray:
    """Roll an action string out into ``(N+1,4,4)`` float64 camera-to-world poses (pose 0 = identity).

    ``classic`` equals diffusers' ``action_string_to_c2w`` (which returns the same numbers cast to float32);
    ``game`` follows the current NVlabs key map (its reference speeds are 0.025 and 0.6 deg).
    ``pitch_limit_deg`` defaults to the mapping's own limit (85 classic, 60 game).
    """
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")
    for name, value in (("translation_speed", translation_speed), ("rotation_speed_deg", rotation_speed_deg)):
        if not math.isfinite(float(value)) or float(value) < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    limit = PITCH_LIMIT_DEG[mapping] if pitch_limit_deg is None else float(pitch_limit_deg)
    if not 0 <= limit <= 90:
        raise ValueError(f"pitch_limit_deg must be within 0..90 degrees, got {pitch_limit_deg!r}")
    frames = _per_frame_keys(parse_action_string(action))
    roll = _roll_classic if mapping == "classic" else _roll_game
    return roll(frames, float(translation_speed), math.radians(float(rotation_speed_deg)), math.radians(limit))
