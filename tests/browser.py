"""Headless Chromium for the frontend tests: Debian's chromium + chromedriver, no Selenium Manager.

Also the browser-test modes (which frontend, Nodes 2.0 on or off) and the page's console-error check.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import urllib.request
from dataclasses import dataclass

import pytest

VUE_NODES_SETTING = "Comfy.VueNodes.Enabled"


@dataclass(frozen=True)
class FrontendMode:
    """A browser-test mode: `frontend` as scripts.comfy_server names it, and whether Nodes 2.0 is on."""
    name: str
    frontend: str
    vue_nodes: bool


FRONTEND_MODES = {m.name: m for m in (FrontendMode("pinned", "pinned", False),
                                      FrontendMode("latest", "latest", False),
                                      FrontendMode("latest-vue", "latest", True))}

# What marks a console error as the pack's: its scripts, its routes, or its log prefix.
PACK_MARKS = re.compile(r"/extensions/sana_wm/|/sana_wm/|\[SANA-WM\]|sanawm", re.IGNORECASE)

# Console errors from the frontend talking to the pinned server, not from the pack, skipped by name even when
# a line also matches PACK_MARKS. Each is harmless for the pack; this is the one list of them.
KNOWN_HARMLESS = (
    # frontend 1.58.1 reads the queue and history from /api/jobs, a route ComfyUI 0.3.75 does not have (404);
    # the pack neither calls nor needs it, and the page still runs prompts and shows their outputs
    re.compile(r"/api/jobs\b|\[Jobs API\]|JobsApiError"),
    # the offline flag's Content-Security-Policy blocking the frontend's own look-up of each node's pack on
    # api.comfy.org (by node type, hence the pack's names in the line); a block in the pack's scripts counts
    re.compile(r"^(?!\S*/extensions/sana_wm/).*violates the following Content Security Policy"),
)


def page_errors(drv) -> list[str]:
    """The pack's uncaught exceptions and console.error lines since the last call (the frontends log errors
    of their own on load, e.g. 1.32.9's settings store: those are not the pack's to check). Failed network
    loads are not counted: the pack's 4xx answers are part of what the tests check."""
    out = []
    for entry in drv.get_log("browser"):
        text = entry.get("message", "")
        if entry.get("level") != "SEVERE" or entry.get("source") == "network" or not PACK_MARKS.search(text):
            continue
        if not any(p.search(text) for p in KNOWN_HARMLESS):
            out.append(f"[{entry.get('source')}] {text}")
    return out


def set_setting(url: str, name: str, value) -> None:
    """Stores one frontend setting for the server's default user, as the settings dialog does."""
    req = urllib.request.Request(f"{url}/settings/{name}", data=json.dumps(value).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()


def make_driver(width: int = 1400, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian chromium/chromium-driver not installed (make setup installs them as root)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--window-size={width},{height}",
                f"--user-data-dir={tempfile.mkdtemp(prefix='sanawm-chrome-')}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


def open_comfy(drv, url: str, timeout: float = 60.0) -> None:
    """Loads the ComfyUI frontend and waits until the node registry and the app are ready."""
    drv.get(url + "/")
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready = drv.execute_script(
            "return !!(window.app && window.app.graph && window.LiteGraph && "
            "Object.keys(window.LiteGraph.registered_node_types || {}).length > 100)")
        if ready:
            return
        time.sleep(0.25)
    raise TimeoutError("ComfyUI frontend did not become ready")
