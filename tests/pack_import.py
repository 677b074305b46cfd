"""Import the pack's `nodes.<name>` modules in-process, as ComfyUI does, without registering every node."""
from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMFY = REPO / ".venv" / "ComfyUI"
PACK = "sanawm_pack_under_test"


def import_pack_module(name: str) -> types.ModuleType:
    """`nodes.<name>` inside a package (so its relative imports resolve), skipping the pack's __init__."""
    for pkg, folder in ((PACK, REPO), (f"{PACK}.nodes", REPO / "nodes")):
        if pkg not in sys.modules:
            mod = types.ModuleType(pkg)
            mod.__path__ = [str(folder)]
            sys.modules[pkg] = mod
    return importlib.import_module(f"{PACK}.nodes.{name}")
