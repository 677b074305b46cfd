"""Optional dependencies, imported when a feature first needs them.

The pack must load in any ComfyUI (a Mac without triton, an install that skipped diffusers): nodes always
register, and the first node that needs a missing package fails with what to install instead of an
ImportError deep in a stack trace.
"""
from __future__ import annotations

import importlib
from types import ModuleType

_INSTALL = "run `pip install -r requirements.txt` in ComfyUI's Python environment, then restart ComfyUI"


def require(module: str, feature: str, package: str | None = None) -> ModuleType:
    """Imports `module` or raises ModuleNotFoundError naming the feature, the package and the fix."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name and exc.name.split(".")[0] != top:
            raise  # a different package is missing inside `module`: let its own message through
        pkg = package or top
        raise ModuleNotFoundError(f"{feature} needs the Python package {pkg!r}, which is not installed: {_INSTALL}.",
                                  name=exc.name) from None
