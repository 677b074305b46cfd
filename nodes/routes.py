"""HTTP routes behind the camera editor and upload button in the browser (web/js/sanawm_camera_*.js).

`POST /sana_wm/camera/preview_actions` rolls an action string out with the same parser the
`SanaWMCameraFromActions` node uses, and answers the key map's labels with it (the timeline keeps no copy);
`GET /sana_wm/camera/preview_file` loads a camera file from ComfyUI's input folder like `SanaWMLoadCamera`.
Both answer the path as JSON (`sana_wm_core.camera.preview.path_view_json`: per-frame positions and camera
axes, frame counts, parsed segments) or `{"error": <the parser's ValueError text>}` with 400, so the browser
never re-implements the DSL. `GET /sana_wm/camera/file_types` lists the camera-file suffixes the loader
reads (the upload button's filter). Registered at import; without a running PromptServer (plain imports,
unit tests) nothing is registered. This module adds no nodes.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, Callable

ACTIONS_PATH = "/sana_wm/camera/preview_actions"
FILE_PATH = "/sana_wm/camera/preview_file"
FILE_TYPES_PATH = "/sana_wm/camera/file_types"


def _camera():
    """The camera engine (imported on first use so this module always imports)."""
    try:
        from ..sana_wm_core import camera
    except ImportError:  # imported as a top-level `nodes` package (unit tests run from the repo root)
        from sana_wm_core import camera
    return camera


def _number(body: dict, name: str, default: float | None = None) -> float | None:
    """A numeric setting, passed on unchanged so the parser's own range checks (and messages) apply."""
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return value


def preview_actions(body: dict) -> dict[str, Any]:
    """Rolls out `body["action"]` with the node's parameters; raises the parser's ValueError on bad input."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object with 'action' and the node's settings")
    cam_api = _camera()
    action = body.get("action", "")
    if not isinstance(action, str):
        raise ValueError(f"action must be a string like 'w-30,dw-20', got {type(action).__name__}")
    ts = _number(body, "translation_speed", 0.05)
    rot = _number(body, "rotation_speed_deg", 1.2)
    mapping = body.get("mapping") or "classic"
    num_frames = _number(body, "num_frames")
    fps = _number(body, "fps", 16.0)
    segments = cam_api.parse_action_string(action)
    c2w = cam_api.action_string_to_c2w(action, translation_speed=ts, rotation_speed_deg=rot, mapping=mapping)
    path = cam_api.CameraPath(c2w=c2w, fps=float(fps), source=f"action:{action}", action=action, mapping=mapping)
    out = cam_api.path_view_json(path, num_frames=None if num_frames is None else int(num_frames))
    out.update(kind="action", mapping=mapping, key_map=cam_api.key_labels(mapping), translation_speed=ts,
               rotation_speed_deg=rot,
               segments=[{"keys": "".join(s["keys"]) or "none", "frames": int(s["frames"]),
                          "start": int(s["start"]), "text": s["text"]} for s in segments])
    return out


def _input_file(name: str) -> str:
    """Resolves `name` with the rule SanaWMLoadCamera uses (sana_wm_core.camera.input_files)."""
    import folder_paths  # ComfyUI's; only reached from a running server

    try:
        from ..sana_wm_core.camera.input_files import resolve_camera_file
    except ImportError:  # imported as a top-level `nodes` package
        from sana_wm_core.camera.input_files import resolve_camera_file
    return resolve_camera_file(name, folder_paths.get_input_directory())


def preview_file(name: str, world_to_camera: bool, num_frames: int | None = None, fps: float = 16.0,
                 resolve: Callable[[str], str] = _input_file) -> dict[str, Any]:
    """Loads a camera file and answers its path relative to its first pose, as the pipeline uses it."""
    cam_api = _camera()
    cam = cam_api.load_trajectory(resolve(name), world_to_camera=world_to_camera, fps=fps)
    rel = replace(cam, c2w=cam_api.relative_poses(cam.c2w))
    out = cam_api.path_view_json(rel, num_frames=num_frames)
    out.update(kind="file", file=name, world_to_camera=bool(world_to_camera), segments=[])
    return out


def file_types() -> dict[str, Any]:
    """The camera-file suffixes `load_trajectory` reads, for the upload button's filter and check."""
    return {"suffixes": list(_camera().TRAJECTORY_SUFFIXES)}


def _query_number(q, name: str, cast: Callable, default):
    text = q.get(name)
    if text in (None, ""):
        return default
    try:
        return cast(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None


def _truthy(text: str | None) -> bool:
    return str(text or "0").strip().lower() in ("1", "true", "yes", "on")


def register(routes) -> None:
    """Adds the preview and file-type routes to an aiohttp RouteTableDef (PromptServer.instance.routes)."""
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
        return await _answer(lambda: preview_file(
            q.get("file", ""), _truthy(q.get("world_to_camera")),
            num_frames=_query_number(q, "num_frames", int, None), fps=_query_number(q, "fps", float, 16.0)))

    @routes.get(FILE_TYPES_PATH)
    async def _file_types(request: web.Request) -> web.Response:
        return web.json_response(file_types())


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
