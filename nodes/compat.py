"""Prompts saved with earlier versions of this pack's nodes: refused at POST /prompt, naming what changed.

Since the Stage-1 model became a core MODEL, "SANA-WM Image To Video" returns (positive, negative, latent) and
takes its frame count from the camera path, and "SANA-WM Sampler" takes positive / negative / latent instead of
one `conditioning`. An old prompt would otherwise fail deep inside a node (or, for `num_frames`, run with another
length than it asked for); `nodes/prompt_guard.py` answers these with HTTP 400 in ComfyUI's error format before
anything loads. UI workflows saved then are updated on load by `web/js/sanawm_workflow_update.js` where it can
do so exactly; the nodes it leaves as saved still carry the Sampler's `conditioning` and are refused here.
Each rule is one entry of `CHANGES`: (class_type, old input, what changed and the fix).
"""
from __future__ import annotations

from typing import Any

CHANGES: tuple[tuple[str, str, str], ...] = (
    ("SanaWMSampler", "conditioning",
     "SANA-WM Sampler changed: its single 'conditioning' input (SANAWM_CONDITIONING) is gone; it now takes "
     "'positive', 'negative' (CONDITIONING) and 'latent' (LATENT), the three outputs of SANA-WM Image To Video. "
     "Reconnect them (or use core KSampler / SamplerCustomAdvanced on the SANA-WM MODEL), or reload a shipped "
     "workflow from the pack's workflows/ folder. In a UI workflow saved then, SANA-WM Image To Video's widgets "
     "load one place off (width = its old num_frames, height = its old width): retype width and height and set "
     "num_frames on the camera node (the pack's web extension does all this on load when it can trace the "
     "graph)"),
    ("SanaWMImageToVideo", "num_frames",
     "SANA-WM Image To Video changed: it has no 'num_frames' any more and returns (positive, negative, latent) "
     "instead of one SANAWM_CONDITIONING; the frame count and fps come from the camera path: set 'num_frames' on "
     "the camera node (SANA-WM Camera from Actions / Load Camera) and remove it here"),
)


def _error(name: str, message: str, value: Any) -> dict:
    return {"type": "sana_wm_node_changed", "message": message, "details": name,
            "extra_info": {"input_name": name, "received_value": repr(value)[:200]}}


def changed_node_errors(prompt: dict) -> dict:
    """ComfyUI-shaped `node_errors` for nodes of `prompt` saved with an earlier version (empty when none)."""
    found: dict = {}
    for nid, node in prompt.items():
        if not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
            continue
        kind = node.get("class_type")
        errors = [_error(name, message, node["inputs"][name])
                  for cls, name, message in CHANGES if kind == cls and name in node["inputs"]]
        if errors:
            found[str(nid)] = {"errors": errors, "dependent_outputs": [], "class_type": kind}
    return found
