"""A missing dependency never takes ComfyUI down: every node still registers, nodes that need no such package
run, and the first node that needs it fails with what to install; the server stays healthy."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from workflows.definitions import ASSETS, tiny_overrides

from scripts.comfy_api import ComfyClient
from scripts.comfy_server import ComfyServer

pytestmark = pytest.mark.server

BLOCKER = '''
import sys
class _Blocked:
    """Acts as if these packages were not installed (as on a machine without them)."""
    names = ("diffusers", "triton", "fla")
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Blocked())
'''


WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


def test_pack_without_diffusers_and_triton_keeps_comfyui_healthy(tmp_path, tiny_models):
    from sana_wm_core.testing.tiny import TINY_HEIGHT, TINY_WIDTH

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    base = tmp_path / "base"
    base.mkdir()
    (base / "models").symlink_to(tiny_models, target_is_directory=True)
    (base / "input").mkdir()
    for name in ASSETS:
        shutil.copyfile(WORKFLOWS / "assets" / name, base / "input" / name)
    with ComfyServer(base, env={"PYTHONPATH": str(site)}) as srv:
        log = srv.log()
        assert "IMPORT FAILED" not in log and "nodes disabled" not in log, log
        client = ComfyClient(srv.url)
        ours = [k for k in client.object_info() if k.startswith("SanaWM")]
        assert len(ours) >= 15 and {"SanaWMVAELoader", "SanaWMSampler", "SanaWMRefine"} <= set(ours), ours
        wf = tiny_overrides(json.loads((WORKFLOWS / "sana_wm_fast_preview_api.json").read_text()),
                            height=TINY_HEIGHT, width=TINY_WIDTH, frames=9, steps=1)
        res = client.run(wf)
        assert res.status == "error"
        msg = res.error["exception_message"]
        assert "'diffusers>=0.42.1', which is not installed" in msg and "pip install -r requirements.txt" in msg
        res = client.run({
            "1": {"class_type": "SanaWMCameraFromActions",
                  "inputs": {"action": "w-16,jw-8", "translation_speed": 0.05, "rotation_speed_deg": 1.2,
                             "mapping": "classic", "num_frames": 0, "fps": 16.0}},
            "2": {"class_type": "SanaWMCameraPreview", "inputs": {"camera": ["1", 0], "every_n": 4}},
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},   # preview: not an output node
        })
        assert res.status == "success", res.error
        assert srv.alive()
