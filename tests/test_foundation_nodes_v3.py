"""Every pack node is declared with ComfyUI's V3 schema and registered through `comfy_entrypoint`, under the
node ids saved workflows use; one display-name prefix; one logger name.

The registration check runs ComfyUI 0.3.75's own custom-node loader (`nodes.load_custom_node`) on this pack in
a fresh interpreter, so it sees exactly what a server would register.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMFY = REPO / ".venv" / "ComfyUI"

# The node ids of today's saved workflows and of the ids ComfyUI has always known the pack by: never change them.
NODE_IDS = {
    "SanaWMCameraFromActions", "SanaWMLoadCamera", "SanaWMSetIntrinsics", "SanaWMCameraPreview",
    "SanaWMEstimateIntrinsics", "SanaWMLoadIntrinsics",
    "SanaWMModelLoader", "SanaWMTextEncoderLoader", "SanaWMVAELoader",
    "SanaWMImageToVideo", "SanaWMSampler", "SanaWMScheduler", "SanaWMRefinerLoader", "SanaWMRefine",
    "SanaWMDecode", "SanaWMSaveVideo", "SanaWMStreamToVideo", "SanaWMStreamSampler",
}
# Nodes kept on the V1 declaration because V3 on ComfyUI 0.3.75 cannot express something they need:
# node id -> what. Empty: every node is V3.
V1_EXCEPTIONS: dict[str, str] = {}

_PROBE = r'''
import asyncio, io as _io, json, logging, sys
comfy_dir, pack = sys.argv[1], sys.argv[2]
sys.path.insert(0, comfy_dir)
stream = _io.StringIO()
logging.basicConfig(level=logging.INFO, stream=stream, force=True)
import comfy.cli_args
comfy.cli_args.args.cpu = True
import nodes
from comfy_api.latest import io
before = set(nodes.NODE_CLASS_MAPPINGS)
ok = asyncio.run(nodes.load_custom_node(pack))
module = sys.modules[pack.replace(".", "_x_")]
declared = {t.io_type: t for t in sys.modules[module.__name__ + ".nodes.types"].ALL}
out = {"loaded": ok, "mappings": hasattr(module, "NODE_CLASS_MAPPINGS"),
       "entrypoint": callable(getattr(module, "comfy_entrypoint", None)), "nodes": {}}
for name in set(nodes.NODE_CLASS_MAPPINGS) - before:
    cls = nodes.NODE_CLASS_MAPPINGS[name]
    row = {"v3": isinstance(cls, type) and issubclass(cls, io.ComfyNode),
           "display_name": nodes.NODE_DISPLAY_NAME_MAPPINGS.get(name), "module": cls.RELATIVE_PYTHON_MODULE}
    if row["v3"]:
        schema = cls.GET_SCHEMA()
        socks = list(schema.inputs or []) + list(schema.outputs or [])
        # (io_type, its type class) of every socket; a MultiType socket accepts several types
        typed = [(str(t.io_type), t) for s in socks for t in (s.io_types if hasattr(s, "io_types") else [s.Parent])]
        row["node_id"] = schema.node_id
        row["own_types"] = sorted({name for name, _ in typed if name.startswith("SANAWM_")})
        row["undeclared"] = sorted({name for name, t in typed if name.startswith("SANAWM_")
                                    and t is not declared.get(name)})
    out["nodes"][name] = row
out["log"] = stream.getvalue()
print("@@" + json.dumps(out))
'''


@pytest.fixture(scope="module")
def registered() -> dict:
    if not (COMFY / "nodes.py").is_file():
        pytest.skip("ComfyUI runtime not installed (.venv/ComfyUI)")
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(COMFY), str(REPO)], cwd=COMFY, capture_output=True,
                          text=True, timeout=240, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    line = [x for x in proc.stdout.splitlines() if x.startswith("@@")]
    assert proc.returncode == 0 and line, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(line[-1][2:])


def test_pack_registers_through_the_v3_entrypoint(registered):
    assert registered["loaded"], registered["log"]
    assert registered["entrypoint"] and not registered["mappings"], \
        "ComfyUI uses comfy_entrypoint only when the package exports no NODE_CLASS_MAPPINGS"
    assert "SANA-WM:" not in registered["log"], "a node family or node was disabled:\n" + registered["log"]
    assert set(registered["nodes"]) == NODE_IDS, sorted(set(registered["nodes"]) ^ NODE_IDS)


def test_every_node_is_v3_under_its_saved_id(registered):
    for name, row in registered["nodes"].items():
        if name in V1_EXCEPTIONS:
            continue
        assert row["v3"], f"{name} is not an io.ComfyNode (add it to V1_EXCEPTIONS with the reason, or port it)"
        assert row["node_id"] == name
    assert not set(V1_EXCEPTIONS) - NODE_IDS


def test_custom_types_come_from_one_declaration(registered):
    used = set()
    for name, row in registered["nodes"].items():
        assert row.get("undeclared") == [], f"{name} builds its own io.Custom for {row.get('undeclared')}"
        used.update(row.get("own_types", []))
    assert {"SANAWM_CAMERA", "SANAWM_VAE", "SANAWM_TEXT_ENCODER"} <= used
    # the Stage-1 model and its conditioning are core MODEL / CONDITIONING sockets now, no pack type
    assert not {"SANAWM_MODEL", "SANAWM_CONDITIONING"} & used, used
    stray = [p for p in (REPO / "nodes").glob("*.py") if p.name != "types.py" and "io.Custom(" in p.read_text()]
    assert not stray, f"io.Custom outside nodes/types.py: {stray}"


def test_display_names_share_the_pack_prefix(registered):
    names = {k: v["display_name"] for k, v in registered["nodes"].items()}
    assert all(n and n.startswith("SANA-WM ") for n in names.values()), names


def test_saved_workflows_only_use_registered_ids():
    used = set()
    for path in (REPO / "workflows").glob("*.json"):
        doc = json.loads(path.read_text())
        if "nodes" in doc:   # UI format
            used.update(n["type"] for n in doc["nodes"])
        else:                # API format
            used.update(n["class_type"] for n in doc.values())
    ours = {u for u in used if u.startswith("SanaWM")}
    assert ours and ours <= NODE_IDS, sorted(ours - NODE_IDS)


def test_one_logger_name_across_the_pack():
    names, root_calls = set(), []
    for path in list((REPO / "nodes").rglob("*.py")) + list((REPO / "sana_wm_core").rglob("*.py")):
        text = path.read_text()
        names.update(re.findall(r"getLogger\(([^)]*)\)", text))
        root_calls += [f"{path.name}: {m}" for m in re.findall(r"\blogging\.(?:debug|info|warning|error|exception)\(",
                                                                 text)]
    assert names == {'"sana_wm"'}, names
    assert not root_calls, f"log through the pack's logger, not the root logger: {root_calls}"
