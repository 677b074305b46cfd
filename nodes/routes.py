"""HTTP routes behind the camera editor in the browser (web/js/sanawm_camera_editor.js).

`POST /sana_wm/camera/preview_actions` rolls an action string out with the same parser the
`SanaWMCameraFromActions` node uses; `GET /sana_wm/camera/preview_file` loads a camera file from
ComfyUI's input folder like `SanaWMLoadCamera`. Both answer the path as JSON (per-frame positions and
camera axes, frame counts, parsed segments) or `{"error": <the parser's ValueError text>}` with 400, so
the browser never re-implements the DSL. Registered at import; without a running PromptServer (plain
imports, unit tests) nothing is registered. This module adds no nodes.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
from typing import Any, Callable

import numpy as np

log = logging.getLogger("sana_wm")

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

ACTIONS_PATH = "/sana_wm/camera/preview_actions"
FILE_PATH = "/sana_wm/camera/preview_file"
_DECIMALS = 6


def _camera_api() -> dict[str, Callable]:
    """The camera engine's functions (imported on first use so this module always imports)."""
    try:
        from ..sana_wm_core.camera import actions, tensors, trajectory
    except ImportError:  # imported as a top-level `nodes` package (unit tests run from the repo root)
        from sana_wm_core.camera import actions, tensors, trajectory
    return {"parse": actions.parse_action_string, "roll": actions.action_string_to_c2w,
            "load": trajectory.load_trajectory, "snap": tensors.snap_num_frames,
            "relative": tensors.relative_poses}


def _rounded(a: np.ndarray) -> list:
    return np.round(np.asarray(a, dtype=np.float64), _DECIMALS).tolist()


def path_payload(c2w: np.ndarray, *, num_frames: int | None, fps: float, snap: Callable) -> dict[str, Any]:
    """The JSON the editor draws: positions and the camera's right / up / forward axes per pose.

    OpenCV axes: a c2w's columns are the camera's x (right), y (down) and z (forward) in world
    coordinates, so "up" is minus the second column.
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    frames = int(c2w.shape[0])
    used = None if num_frames is None else int(snap(int(num_frames), frames))
    return {
        "frames": frames,
        "used_frames": used,
        "fps": float(fps),
        "positions": _rounded(c2w[:, :3, 3]),
        "right": _rounded(c2w[:, :3, 0]),
        "up": _rounded(-c2w[:, :3, 1]),
        "forward": _rounded(c2w[:, :3, 2]),
    }


def _number(body: dict, name: str, default: float | None = None) -> float | None:
    value = body.get(name, default)
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return out


def preview_actions(body: dict) -> dict[str, Any]:
    """Rolls out `body["action"]` with the node's parameters; raises the parser's ValueError on bad input."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object with 'action' and the node's settings")
    api = _camera_api()
    action = body.get("action", "")
    if not isinstance(action, str):
        raise ValueError(f"action must be a string like 'w-30,dw-20', got {type(action).__name__}")
    ts = _number(body, "translation_speed", 0.05)
    rot = _number(body, "rotation_speed_deg", 1.2)
    mapping = str(body.get("mapping") or "classic")
    num_frames = _number(body, "num_frames")
    fps = _number(body, "fps", 16.0) or 16.0
    segments = api["parse"](action)
    c2w = api["roll"](action, translation_speed=ts, rotation_speed_deg=rot, mapping=mapping)
    out = path_payload(c2w, num_frames=None if num_frames is None else int(num_frames), fps=fps,
                       snap=api["snap"])
    out.update(kind="action", mapping=mapping, translation_speed=ts, rotation_speed_deg=rot,
               segments=[{"keys": "".join(s["keys"]) or "none", "frames": int(s["frames"]),
                          "start": int(s["start"]), "text": s["text"]} for s in segments])
    return out


def _input_file(name: str) -> str:
    """Resolves `name` like ComfyUI's loaders do, refusing anything outside the input folder."""
    import folder_paths  # ComfyUI's; only reached from a running server

    if not name:
        raise ValueError("file is empty: pick a camera file (.npy, .json or .txt) from ComfyUI's input folder")
    path = os.path.realpath(folder_paths.get_annotated_filepath(name))
    allowed = [os.path.realpath(d) for d in (folder_paths.get_input_directory(),
                                             folder_paths.get_output_directory(),
                                             folder_paths.get_temp_directory())]
    if not any(os.path.commonpath([path, d]) == d for d in allowed):
        raise ValueError(f"file {name!r} is outside ComfyUI's input folder")
    if not os.path.isfile(path):
        raise ValueError(f"camera file {name!r} was not found in ComfyUI's input folder; upload it there first")
    return path


def preview_file(name: str, world_to_camera: bool, resolve: Callable[[str], str] = _input_file) -> dict[str, Any]:
    """Loads a camera file and answers its path relative to its first pose, as the pipeline uses it."""
    api = _camera_api()
    cam = api["load"](resolve(name), world_to_camera=world_to_camera)
    out = path_payload(api["relative"](cam.c2w), num_frames=None, fps=cam.fps, snap=api["snap"])
    out.update(kind="file", file=name, world_to_camera=bool(world_to_camera), segments=[])
    return out


def _truthy(text: str | None) -> bool:
    return str(text or "0").strip().lower() in ("1", "true", "yes", "on")


def register(routes) -> None:
    """Adds the two preview routes to an aiohttp RouteTableDef (PromptServer.instance.routes)."""
    from aiohttp import web

    async def _answer(fn: Callable[[], dict]) -> web.Response:
        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(None, fn)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(data)

    @routes.post(ACTIONS_PATH)
    async def _preview_actions(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the request body must be JSON"}, status=400)
        return await _answer(lambda: preview_actions(body))

    @routes.get(FILE_PATH)
    async def _preview_file(request: web.Request) -> web.Response:
        q = request.rel_url.query
        return await _answer(lambda: preview_file(q.get("file", ""), _truthy(q.get("world_to_camera"))))


def _register_on_server() -> None:
    try:
        from server import PromptServer
    except ImportError:
        return  # not inside ComfyUI
    inst = getattr(PromptServer, "instance", None)
    if inst is None or getattr(inst, "_sana_wm_routes", False):
        return
    register(inst.routes)
    inst._sana_wm_routes = True


_register_on_server()
