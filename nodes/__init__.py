"""Collects the node families; a family whose optional dependency is missing is skipped with one log line.

Each module in `_FAMILIES` exports NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS. Importing this
package must never take ComfyUI down, so every family is imported on its own.
"""
import importlib
import logging

log = logging.getLogger("sana_wm")

_FAMILIES = ("camera", "intrinsics", "models", "sampling", "native", "refine", "output", "routes", "prompt_guard")
_COMFYUI_MODULES = ("comfy", "comfy_api", "comfy_execution", "folder_paths", "server", "node_helpers")

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

for _name in _FAMILIES:
    try:
        _mod = importlib.import_module(f".{_name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith(f"nodes.{_name}"):
            continue  # family not written yet / removed
        if exc.name and exc.name.split(".")[0] in _COMFYUI_MODULES:
            log.debug("SANA-WM: %s nodes need ComfyUI (imported outside it, e.g. by pytest)", _name)
            continue
        log.warning("SANA-WM: %s nodes disabled: missing dependency %r; install it with "
                    "`pip install -r requirements.txt` in ComfyUI's environment", _name, exc.name)
        continue
    except Exception as exc:  # noqa: BLE001 - a broken family must not break ComfyUI
        log.warning("SANA-WM: %s nodes disabled: %s: %s", _name, type(exc).__name__, exc)
        continue
    NODE_CLASS_MAPPINGS.update(getattr(_mod, "NODE_CLASS_MAPPINGS", {}))
    NODE_CLASS_MAPPINGS.update({node.__name__: node for node in getattr(_mod, "NODES", ())})  # V3 families
    NODE_DISPLAY_NAME_MAPPINGS.update(getattr(_mod, "NODE_DISPLAY_NAME_MAPPINGS", {}))
