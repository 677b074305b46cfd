#!/usr/bin/env python3
"""`make serve`: the pack's headless ComfyUI on 127.0.0.1:PORT in the foreground, for a browser.

    make serve                        # real weights from comfy_base/models (or the hub), pinned frontend
    make serve WEIGHTS=tiny           # the generated tiny checkpoints, on CPU: press Run and watch it all work
    make serve FRONTEND=latest        # the newest frontend make setup installs beside the pinned one

Latent previews are on (`--preview-method auto`). With WEIGHTS=tiny the shipped workflows, sized for the
tiny checkpoints, are in the page's Workflows sidebar as "<name> (tiny)".
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from scripts.comfy_server import FRONTENDS, frontend_version, prepare_base, server_command  # noqa: E402
from scripts.demo import copy_assets, tiny_base, tiny_workflow  # noqa: E402
from workflows.definitions import WORKFLOWS  # noqa: E402
from workflows.ui_values import apply_api_inputs  # noqa: E402


def _cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def tiny_workflow_name(name: str) -> str:
    return f"{name} (tiny).json"


def install_tiny_workflows(base: Path) -> list[Path]:
    """The shipped UI workflows with the tiny sizes, in the user's workflow library (user/default/workflows)."""
    folder = base / "user" / "default" / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in WORKFLOWS:
        ui = json.loads((REPO / "workflows" / f"{name}.json").read_text())
        path = folder / tiny_workflow_name(name)
        path.write_text(json.dumps(apply_api_inputs(ui, tiny_workflow(name)), indent=2) + "\n")
        written.append(path)
    return written


def plan(weights: str, frontend: str, port: int) -> tuple[Path, list[str]]:
    """The base folder (prepared) and the command line `make serve` runs."""
    if weights == "tiny":
        base = prepare_base(tiny_base())
        install_tiny_workflows(base)
    else:
        base = prepare_base(REPO / "comfy_base")
    copy_assets(base)
    cpu = weights == "tiny" or not _cuda()
    return base, server_command(base, port, cpu=cpu, frontend=frontend)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8188)
    ap.add_argument("--weights", choices=["real", "tiny"], default="real")
    ap.add_argument("--frontend", choices=FRONTENDS, default="pinned")
    ap.add_argument("--print", action="store_true", help="print the command line instead of running it")
    args = ap.parse_args(argv)
    base, cmd = plan(args.weights, args.frontend, args.port)
    if args.print:
        print(" ".join(cmd))
        return 0
    print(f"ComfyUI with SANA-WM on http://127.0.0.1:{args.port} ({args.weights} weights in {base / 'models'}, "
          f"frontend {frontend_version(args.frontend)}, latent previews on)", flush=True)
    os.chdir(base)
    os.execv(cmd[0], cmd)   # the foreground process is ComfyUI itself: Ctrl-C stops it


if __name__ == "__main__":
    sys.exit(main())
