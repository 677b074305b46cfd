"""`make serve`: one command line for every server (offline flag, previews, frontend), and WEIGHTS=tiny /
FRONTEND=latest from the Makefile to a page that serves the newest frontend and the tiny-sized workflows."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from scripts.comfy_server import COMFY_MAIN, REPO, free_port, frontend_root, server_command
from scripts.demo import tiny_workflow
from workflows.definitions import WORKFLOWS
from workflows.ui_values import apply_api_inputs, widget_slots


def test_server_command_is_offline_with_previews_and_the_chosen_frontend(tmp_path):
    cli = (COMFY_MAIN.parent / "comfy" / "cli_args.py").read_text()
    pinned = server_command(tmp_path, 1234, cpu=True)
    latest = server_command(tmp_path, 1234, cpu=False, frontend="latest")
    # 0.3.75 has no --offline: there --disable-api-nodes keeps the page off the internet; newer servers get
    # --offline alone (--disable-api-nodes is only its deprecated alias there)
    want = "--offline" if '"--offline"' in cli else "--disable-api-nodes"
    for cmd in (pinned, latest):
        assert want in cmd and ({"--offline", "--disable-api-nodes"} - {want}).isdisjoint(cmd)
        assert cmd[cmd.index("--preview-method") + 1] == "auto"
        assert cmd[cmd.index("--listen") + 1] == "127.0.0.1"
    assert "--cpu" in pinned and "--cpu" not in latest and "--front-end-root" not in pinned
    root = Path(latest[latest.index("--front-end-root") + 1])
    assert root == frontend_root("latest") and (root / "index.html").is_file()
    with pytest.raises(ValueError, match="frontend must be one of pinned, latest"):
        server_command(tmp_path, 1, cpu=True, frontend="newest")


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_tiny_ui_workflows_carry_the_tiny_api_values(name):
    ui = json.loads((REPO / "workflows" / f"{name}.json").read_text())
    api = tiny_workflow(name)
    tiny = apply_api_inputs(ui, api)
    changed = 0
    ui_only = [n["type"] for n in tiny["nodes"] if str(n["id"]) not in api]
    assert ui_only == ["Note"], ui_only   # the layout's "Start here" note is the one node the API graph lacks
    for node in tiny["nodes"]:
        if node["type"] == "Note":
            continue
        entry = api[str(node["id"])]
        for widget, slot in widget_slots(node).items():
            value = entry["inputs"].get(widget)
            if value is not None and not isinstance(value, list):
                assert node["widgets_values"][slot] == value, (name, node["type"], widget)
        before = next(n for n in ui["nodes"] if n["id"] == node["id"])
        changed += node.get("widgets_values") != before.get("widgets_values")   # SamplerCustomAdvanced has none
    assert changed >= 3   # sizes, frames, steps at least
    assert [n["id"] for n in tiny["nodes"]] == [n["id"] for n in ui["nodes"]] and tiny["links"] == ui["links"]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


@pytest.mark.server
def test_make_serve_tiny_latest_serves_the_newest_frontend_and_the_tiny_workflows():
    port = free_port()
    proc = subprocess.Popen(["make", "-s", "serve", f"PORT={port}", "WEIGHTS=tiny", "FRONTEND=latest"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=dict(os.environ, HF_HUB_OFFLINE="1"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                _get(url + "/system_stats")
                break
            except OSError:
                assert time.time() < deadline, "make serve did not answer"
                time.sleep(0.5)
        assert _get(url + "/") == (frontend_root("latest") / "index.html").read_bytes()
        listed = json.loads(_get(url + "/api/userdata?dir=workflows"))
        assert {f"{n} (tiny).json" for n in WORKFLOWS} <= set(listed), listed
        served = json.loads(_get(url + "/api/userdata/" + urllib.request.quote("workflows/sana_wm_actions (tiny).json",
                                                                                safe="")))
        ui = json.loads((REPO / "workflows" / "sana_wm_actions.json").read_text())
        assert served == apply_api_inputs(ui, tiny_workflow("sana_wm_actions"))
        stats = json.loads(_get(url + "/system_stats"))
        argv = stats["system"]["argv"]
        assert "--cpu" in argv and argv[argv.index("--preview-method") + 1] == "auto"
        assert str(REPO / "out" / "demo_tiny_base") in argv
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
