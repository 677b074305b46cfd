"""UI workflows saved before the Stage-1 model, its conditioning and its latent became core types, in the real
frontend (pinned, latest, latest with Nodes 2.0): web/js/sanawm_workflow_update.js updates them on load where it
can do so exactly, and the server refuses the rest naming what changed (nodes/compat.py).

The fixture is the shipped fast-preview workflow as saved before that change (git 79bce84^): SANA-WM Image To
Video with widgets [prompt, negative, num_frames, width, height] and one SANAWM_CONDITIONING output, SANA-WM
Sampler with one `conditioning` input. Without the update the frontend would load width = 161, height = 1280.
"""
from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from browser import open_comfy

pytestmark = [pytest.mark.browser, pytest.mark.server]
REPO = Path(__file__).resolve().parents[1]
OLD = json.loads((REPO / "tests" / "fixtures" / "sana_wm_fast_preview_before_core_types.json").read_text())
SHIPPED = json.loads((REPO / "workflows" / "sana_wm_fast_preview.json").read_text())
I2V, CAMERA = "20", "3"
FORMER_TYPES = ("SANAWM_MODEL", "SANAWM_CONDITIONING", "SANAWM_LATENT")

# Loads a UI workflow as a drag-and-drop does; answers the prompt it queues, the graph as it would be saved
# again and the page's text (the toasts).
LOAD = """const [wf, done] = arguments;
Promise.resolve(window.app.loadGraphData(wf, true, true, 'saved')).then(async () => {
    const api = (await window.app.graphToPrompt()).output;
    await new Promise(r => setTimeout(r, 800));
    done(JSON.stringify({api, saved: window.app.graph.serialize(), text: document.body.innerText}));
}).catch(e => done(JSON.stringify({error: String(e)})));"""


def _load(browser, url: str, wf: dict) -> dict:
    open_comfy(browser, url)      # a fresh page: no toast left from an earlier load
    out = json.loads(browser.execute_async_script(LOAD, wf))
    assert "error" not in out, out
    return out


def _old_i2v(wf: dict) -> dict:
    return next(n for n in wf["nodes"] if n["type"] == "SanaWMImageToVideo")


def test_old_ui_workflow_loads_as_the_shipped_one(browser, web_server):
    assert _old_i2v(OLD)["widgets_values"][2:] == [161, 1280, 704]
    old = _load(browser, web_server.url, OLD)
    now = _load(browser, web_server.url, SHIPPED)
    assert old["api"] == now["api"]          # the same prompt: values in their places, the three links
    assert old["api"][I2V]["inputs"]["width"] == 1280 and old["api"][I2V]["inputs"]["height"] == 704
    assert "workflow updated to the current nodes" in old["text"]
    saved = json.dumps(old["saved"])          # saved again, it names no former custom type
    assert not [t for t in FORMER_TYPES if t in saved]


def test_old_frame_count_moves_to_the_camera_node(browser, web_server):
    """The old Image To Video generated min(num_frames, path) frames: a shorter count trims the camera path."""
    wf = copy.deepcopy(OLD)
    _old_i2v(wf)["widgets_values"][2] = 81
    out = _load(browser, web_server.url, wf)
    assert out["api"][CAMERA]["inputs"]["num_frames"] == 81
    assert "num_frames" not in out["api"][I2V]["inputs"]
    assert (out["api"][I2V]["inputs"]["width"], out["api"][I2V]["inputs"]["height"]) == (1280, 704)
    assert "161 -> 81" in out["text"]


def test_old_workflow_it_cannot_trace_is_refused_naming_what_changed(browser, web_server):
    """Image To Video's camera unconnected: where the old frame count belongs is unknown, so nothing is
    updated; the page says so and the server refuses the prompt before anything loads."""
    wf = copy.deepcopy(OLD)
    node = _old_i2v(wf)
    cam = next(i for i in node["inputs"] if i["name"] == "camera")
    wf["links"] = [link for link in wf["links"] if link[0] != cam["link"]]
    cam["link"] = None
    out = _load(browser, web_server.url, wf)
    assert "saved with earlier node versions" in out["text"] and "stay as saved" in out["text"]
    assert "conditioning" in out["api"]["21"]["inputs"]
    req = urllib.request.Request(web_server.url + "/prompt", data=json.dumps({"prompt": out["api"]}).encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    body = json.loads(err.value.read())
    assert err.value.code == 400 and body["node_errors"]["21"]["errors"][0]["type"] == "sana_wm_node_changed"
    assert "Image To Video's widgets load one place off" in body["error"]["details"]
