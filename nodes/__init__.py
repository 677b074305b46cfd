"""Collects the node families and hands their V3 nodes to ComfyUI (`comfy_entrypoint`); a family whose optional
dependency is missing is skipped with one log line.

Each module in `_FAMILIES` exports NODES, a list of `io.ComfyNode` classes (routes.py registers HTTP routes and
prompt_guard.py an aiohttp middleware; they have none). Importing this package must never take ComfyUI down, so
every family is imported on its own and every node's schema is checked on its own before ComfyUI sees it.
"""
import importlib
import logging

log = logging.getLogger("sana_wm")

_FAMILIES = ("camera", "intrinsics", "models", "sampling", "native", "refine", "output", "streaming", "routes", "prompt_guard")
_COMFYUI_MODULES = ("comfy", "comfy_api", "comfy_execution", "folder_paths", "server", "node_helpers")

NODES: list = []

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
    NODES.extend(getattr(_mod, "NODES", ()))


def checked_nodes() -> list:
    """NODES whose schema builds; ComfyUI drops the whole pack when one schema raises, so a broken node is
    logged and left out instead."""
    ok = []
    for node in NODES:
        try:
            node.GET_SCHEMA()
        except Exception as exc:  # noqa: BLE001 - one broken node must not hide the others
            log.warning("SANA-WM: node %s disabled: %s: %s", node.__name__, type(exc).__name__, exc)
            continue
        ok.append(node)
    return ok


try:
    from comfy_api.latest import ComfyExtension
except ModuleNotFoundError:  # imported outside ComfyUI: no nodes to offer
    ComfyExtension = object


class SanaWMExtension(ComfyExtension):
    """The pack as a ComfyUI V3 extension."""

    async def get_node_list(self) -> list:
        return checked_nodes()


async def comfy_entrypoint() -> SanaWMExtension:
    """ComfyUI's V3 entry point (used because the pack exports no NODE_CLASS_MAPPINGS)."""
    return SanaWMExtension()
