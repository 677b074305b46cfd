#!/usr/bin/env python3
"""`make demo`: runs the shipped default workflow through a real ComfyUI server and writes the mp4.

    make demo                 # real weights on a CUDA GPU (models from comfy_base/models or the hub)
    make demo WEIGHTS=tiny    # generated tiny random checkpoints, offline, on CPU (seconds; the video is noise)

The server is the pack's own headless ComfyUI (`make setup`), booted on a free loopback port and stopped
when the run ends. The video and the camera JSON are copied to out/.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from scripts.comfy_server import ComfyServer  # noqa: E402
from scripts.comfy_api import ComfyClient  # noqa: E402
from workflows.definitions import ASSETS, DEFAULT, tiny_overrides  # noqa: E402

TINY_FRAMES, TINY_STEPS = 33, 4


def _cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def tiny_base() -> Path:
    """The ComfyUI base folder holding the generated tiny checkpoints (built once, reused)."""
    from sana_wm_core.testing.tiny import build_all

    base = REPO / "out" / "demo_tiny_base"
    if not (base / "models" / "sana_wm").exists():
        print("building tiny random checkpoints in", base / "models")
        build_all(base / "models")
    return base


def copy_assets(base: Path) -> None:
    """The example image and camera files the shipped workflows name, into the server's input/."""
    (base / "input").mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        shutil.copyfile(REPO / "workflows" / "assets" / name, base / "input" / name)


def tiny_workflow(name: str) -> dict:
    """A shipped workflow in API format, sized for the tiny checkpoints (the demo's frames and steps)."""
    from sana_wm_core.testing.tiny import TINY_HEIGHT, TINY_WIDTH

    api = json.loads((REPO / "workflows" / f"{name}_api.json").read_text())
    return tiny_overrides(api, height=TINY_HEIGHT, width=TINY_WIDTH, frames=TINY_FRAMES, steps=TINY_STEPS)


def node_names(workflow: dict, object_info: dict) -> dict[str, str]:
    """{node id: the name the page shows for it}: its title if the graph gives one, else its display name."""
    names = {}
    for nid, node in workflow.items():
        kind = node.get("class_type", "?")
        title = (node.get("_meta") or {}).get("title")
        names[str(nid)] = title or (object_info.get(kind) or {}).get("display_name") or kind
    return names


def progress_printer(workflow: dict, object_info: dict | None = None):
    """Prints each node as it runs by the name the page shows (`running SANA-WM Sampler (Stage 1)`), and its
    steps; `object_info` is the server's /object_info (display names)."""
    names = node_names(workflow, object_info or {})

    def on_event(event: dict) -> None:
        kind, data = event.get("type"), event.get("data", {})
        if kind == "executing" and data.get("node"):
            print(f"  running {names.get(str(data['node']), data['node'])}", flush=True)
        elif kind == "progress":
            print(f"    step {data.get('value')}/{data.get('max')}", end="\r", flush=True)
    return on_event


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", choices=["real", "tiny"], default="real")
    ap.add_argument("--workflow", default=DEFAULT, help="a workflows/<name>_api.json name")
    ap.add_argument("--out", type=Path, default=REPO / "out")
    args = ap.parse_args(argv)

    if args.weights == "real" and not _cuda():
        print("make demo: no CUDA GPU here. The real 704x1280 model needs one (see README 'GPU memory').\n"
              "  To run the same workflow offline on CPU with generated tiny weights:  make demo WEIGHTS=tiny",
              file=sys.stderr)
        return 2
    workflow = json.loads((REPO / "workflows" / f"{args.workflow}_api.json").read_text())
    if args.weights == "tiny":
        base = tiny_base()
        workflow = tiny_workflow(args.workflow)
    else:
        base = REPO / "comfy_base"
    copy_assets(base)

    args.out.mkdir(parents=True, exist_ok=True)
    with ComfyServer(base, cpu=args.weights == "tiny") as srv:
        print(f"ComfyUI up at {srv.url} in {srv.boot_seconds:.1f}s; queueing {args.workflow} ({args.weights} weights)")
        t0 = time.time()
        client = ComfyClient(srv.url)
        res = client.run(workflow, timeout=6 * 3600, on_event=progress_printer(workflow, client.object_info()))
        print()
        if res.status != "success":
            err = res.error or {}
            print(f"demo failed in node {err.get('node_type')}: {err.get('exception_message', res.status)}",
                  file=sys.stderr)
            return 1
        client = ComfyClient(srv.url)
        written = [client.download(f, args.out / Path(f["filename"]).name) for f in res.files()
                   if f.get("type") == "output"]
    print(f"done in {time.time() - t0:.1f}s:")
    for path in written:
        print("  ", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
