"""SANA-WM for ComfyUI: camera-controlled image-to-video world model nodes."""
from .nodes import comfy_entrypoint

WEB_DIRECTORY = "./web/js"

__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
