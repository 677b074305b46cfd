"""The frontend loads in headless Chromium with this pack's nodes and its web extension."""
from __future__ import annotations

import json
import urllib.request

import pytest

from browser import open_comfy

pytestmark = pytest.mark.browser


def test_frontend_registers_pack_nodes(browser, web_server, artifacts):
    exts = json.load(urllib.request.urlopen(web_server.url + "/extensions"))
    assert any("sana_wm" in e for e in exts), exts
    open_comfy(browser, web_server.url)
    ours = browser.execute_script(
        "return Object.keys(LiteGraph.registered_node_types).filter(n => n.startsWith('SanaWM'))")
    assert "SanaWMCameraFromActions" in ours and len(ours) >= 10, ours
    browser.save_screenshot(str(artifacts / "frontend_loaded.png"))
