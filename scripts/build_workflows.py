#!/usr/bin/env python3
"""Writes workflows/<name>_api.json and the UI-format workflows/<name>.json from workflows/definitions.py.

The UI format is produced by the real ComfyUI frontend (headless Chromium, `app.loadApiJson` then
`app.graph.serialize()`), so widget order, links and node sizes are exactly what the frontend expects.
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


def write_api(out: Path) -> dict[str, dict]:
    graphs = {name: build() for name, build in WORKFLOWS.items()}
    for name, graph in graphs.items():
        (out / f"{name}_api.json").write_text(json.dumps(graph, indent=2) + "\n")
    return graphs


def api_to_ui(graphs: dict[str, dict], out: Path) -> None:
    from browser import make_driver, open_comfy
    from scripts.comfy_server import ComfyServer

    with tempfile.TemporaryDirectory() as base, ComfyServer(Path(base)) as srv:
        drv = make_driver()
        try:
            open_comfy(drv, srv.url)
            for name, graph in graphs.items():
                ui = drv.execute_async_script(
                    """const [api, name, done] = arguments;
                    Promise.resolve(window.app.loadApiJson(api, name)).then(() => {
                        for (const node of window.app.graph._nodes)   // same seed, same video
                            for (const w of node.widgets || [])
                                if (w.name === "control_after_generate") w.value = "fixed";
                        // JSON.stringify drops undefined fields, which Selenium would turn into schema-breaking nulls
                        setTimeout(() => done(JSON.stringify(window.app.graph.serialize())), 300);
                    }).catch(e => done({error: String(e)}));""", graph, name)
                if isinstance(ui, dict) and "error" in ui:
                    raise RuntimeError(f"{name}: the frontend could not load it: {ui['error']}")
                ui = json.loads(ui)
                missing = [n["type"] for n in ui["nodes"] if n.get("has_errors")]
                if missing:
                    raise RuntimeError(f"{name}: nodes with errors {missing}")
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
