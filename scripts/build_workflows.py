#!/usr/bin/env python3
"""Writes workflows/<name>_api.json and the UI-format workflows/<name>.json from workflows/definitions.py.

The UI format is produced by the real ComfyUI frontend (headless Chromium, `app.loadApiJson` then
`app.graph.serialize()`), so widget order, links and node sizes are exactly what the frontend expects; the
layout (groups, room for results, the Note, the opening view) comes from workflows/layout.py.
usage: .venv/bin/python scripts/build_workflows.py [--api-only]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from workflows.definitions import WORKFLOWS  # noqa: E402
from workflows.layout import NOTE_TEXT, NOTE_TYPE, lay_out  # noqa: E402


def write_api(out: Path) -> dict[str, dict]:
    graphs = {name: build() for name, build in WORKFLOWS.items()}
    for name, graph in graphs.items():
        (out / f"{name}_api.json").write_text(json.dumps(graph, indent=2) + "\n")
    return graphs


# Loads an API graph, fixes the seeds, adds the "what to edit first" Note, and returns the serialized UI graph.
FROM_API = """const [api, name, note, done] = arguments;
Promise.resolve(window.app.loadApiJson(api, name)).then(() => {
    for (const node of window.app.graph._nodes)   // same seed, same video
        for (const w of node.widgets || [])
            if (w.name === "control_after_generate") w.value = "fixed";
    const n = LiteGraph.createNode(note.type);
    n.widgets[0].value = note.text;
    n.title = "Start here";
    window.app.graph.add(n);
    // JSON.stringify drops undefined fields, which Selenium would turn into schema-breaking nulls
    setTimeout(() => done(JSON.stringify(window.app.graph.serialize())), 300);
}).catch(e => done({error: String(e)}));"""

# Loads a UI graph and returns it serialized again: the sizes the frontend settles on (widgets can grow a node).
RELOAD = """const [ui, done] = arguments;
Promise.resolve(window.app.loadGraphData(ui)).then(() => {
    setTimeout(() => done(JSON.stringify(window.app.graph.serialize())), 500);
}).catch(e => done({error: String(e)}));"""


def _in_page(drv, script: str, name: str, *args) -> dict:
    ui = drv.execute_async_script(script, *args)
    if isinstance(ui, dict) and "error" in ui:
        raise RuntimeError(f"{name}: the frontend could not load it: {ui['error']}")
    return json.loads(ui)


def _settled(drv, ui: dict, name: str, categories: dict[str, str]) -> dict:
    """Lays `ui` out, loads it, and lays it out again until the sizes the frontend settles on stop changing."""
    for _ in range(4):
        ui = lay_out(ui, categories)
        loaded = _in_page(drv, RELOAD, name, ui)
        sizes = {str(n["id"]): n["size"] for n in loaded["nodes"]}
        grown = [n for n in ui["nodes"] if any(b > a + 0.5 for a, b in zip(n["size"], sizes[str(n["id"])]))]
        if not grown:
            return ui
        for n in grown:
            n["size"] = [max(a, b) for a, b in zip(n["size"], sizes[str(n["id"])])]
    raise RuntimeError(f"{name}: node sizes did not settle: {[n['type'] for n in grown]}")


def api_to_ui(graphs: dict[str, dict], out: Path) -> None:
    from browser import make_driver, open_comfy
    from scripts.comfy_api import ComfyClient
    from scripts.comfy_server import ComfyServer

    with tempfile.TemporaryDirectory() as base, ComfyServer(Path(base)) as srv:
        categories = {k: v.get("category", "") for k, v in ComfyClient(srv.url).object_info().items()}
        drv = make_driver()
        try:
            open_comfy(drv, srv.url)
            for name, graph in graphs.items():
                ui = _in_page(drv, FROM_API, name, graph, name, {"type": NOTE_TYPE, "text": NOTE_TEXT})
                missing = [n["type"] for n in ui["nodes"] if n.get("has_errors")]
                if missing:
                    raise RuntimeError(f"{name}: nodes with errors {missing}")
                ui = _settled(drv, ui, name, categories)
                (out / f"{name}.json").write_text(json.dumps(ui, indent=2) + "\n")
                time.sleep(0.2)
        finally:
            drv.quit()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--api-only", action="store_true")
    args = ap.parse_args()
    out = REPO / "workflows"
    graphs = write_api(out)
    if not args.api_only:
        api_to_ui(graphs, out)
    print("wrote", ", ".join(sorted(p.name for p in out.glob("*.json"))))


if __name__ == "__main__":
    main()
