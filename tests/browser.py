"""Headless Chromium for the frontend tests: Debian's chromium + chromedriver, no Selenium Manager."""
from __future__ import annotations

import shutil
import tempfile
import time

import pytest


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
