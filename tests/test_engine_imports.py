"""The engine never imports ComfyUI: a fresh interpreter imports every `sana_wm_core` module (the whole package,
walked) and afterwards no ComfyUI module is loaded, so the library works, and is tested, without ComfyUI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMFY = REPO / ".venv" / "ComfyUI"        # on the path too when installed: an import of it would succeed and show
COMFY_TOP_LEVEL = ("folder_paths", "nodes", "server", "execution", "latent_preview", "node_helpers")

PROBE = r'''
import importlib, json, pkgutil, sys
import sana_wm_core
names = sorted(m.name for m in pkgutil.walk_packages(sana_wm_core.__path__, "sana_wm_core."))
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted(sys.modules)}))
'''


def _is_comfyui(name: str) -> bool:
    top = name.split(".")[0]
    return top.startswith("comfy") or top in COMFY_TOP_LEVEL


def test_importing_every_engine_module_loads_no_comfyui_module():
    path = [str(REPO)] + ([str(COMFY)] if COMFY.is_dir() else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report["modules"]) > 50 and "sana_wm_core.model.variants" in report["modules"]
    comfy = [m for m in report["loaded"] if _is_comfyui(m)]
    assert comfy == [], f"sana_wm_core imported ComfyUI modules: {comfy}"
