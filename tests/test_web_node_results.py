"""Node results in headless Chromium: prompts queued from the page itself on the real server.

The intrinsics node's `ui.text` must appear on the node (web/js/sanawm_node_results.js) without entering
the saved workflow or the prompt, and the shipped fast-preview workflow, shrunk for the tiny weights in
the page, must end with the frontend's own video preview on SanaWMSaveVideo. Screenshots go to artifacts.
"""
from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import open_comfy
from web_helpers import CREATE, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.server]

REPO = Path(__file__).resolve().parents[1]
WIDGET = "sanawm_result_text"
IMAGE = "web_results_input.png"
ESTIMATE = "SanaWMEstimateIntrinsics"
SAVE = "SanaWMSaveVideo"

# The node's result text as the page shows it, and whether the box is laid out on screen.
RESULT = """
const n = app.graph.getNodeById(arguments[0]);
const w = n && n.widgets && n.widgets.find((x) => x.name === arguments[1]);
if (!w) return null;
const el = w.sanawmElement, r = el.getBoundingClientRect();
return {text: el.value, readOnly: el.readOnly, connected: el.isConnected, height: r.height, width: r.width,
        fits: el.scrollHeight <= el.clientHeight + 1 && el.scrollWidth <= el.clientWidth + 1,
        widgets: n.widgets.map((x) => x.name)};"""

GRAPH_TO_PROMPT = """
const done = arguments[arguments.length - 1];
app.graphToPrompt().then((p) => done(p.output)).catch((e) => done(String(e)));"""

SET_WIDGETS = """
const [id, values] = arguments;
const n = app.graph.getNodeById(id);
for (const [name, value] of Object.entries(values)) {
  const w = n.widgets.find((x) => x.name === name);
  if (!w) throw new Error(`node ${id} has no widget ${name}`);
  w.value = value;
  w.callback?.(w.value, app.canvas, n);   // as a user edit does (LoadImage refreshes its preview)
}"""

# The <video> the frontend puts on a node for an animated (non-webp/png) output, once the canvas drew it
# (Nodes 2.0 draws it in the node's own element instead of a video-preview widget).
VIDEO_SRC = """
const n = app.graph.getNodeById(arguments[0]);
app.canvas.centerOnNode(n);
app.graph.setDirtyCanvas(true, true);
const el = document.querySelector(`[data-node-id="${arguments[0]}"]`);
const v = (n.videoContainer && n.videoContainer.querySelector('video')) || (el && el.querySelector('video'));
return v && v.src ? {src: v.src, connected: v.isConnected, widgets: n.widgets.map((x) => x.name),
                     inNode: !!(el && el.contains(v)),
                     ready: v.readyState, width: v.videoWidth, height: v.videoHeight} : null;"""


def _history(url: str) -> dict:
    with urllib.request.urlopen(url + "/history", timeout=30) as r:
        return json.load(r)


def _post(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        raw = r.read()
    return json.loads(raw) if raw.strip() else {}


def _free_node_cache(url: str, timeout: float = 120.0) -> None:
    """Empties the server's node-output cache (POST /free), so that the next prompt runs every node.

    Why: ComfyUI sends no `executed` message, hence no `ui` result, for a non-output node whose output it
    took from its cache (Estimate Intrinsics, Camera Preview): the node would show nothing after the run.
    The browser-test modes share servers and the shipped workflows share nodes, so a run may find them
    cached. The worker reads the flag only after it takes a prompt or wakes from waiting for one, and a wake-up
    sent while it is busy (its garbage collection right after the previous prompt) is lost: so after the flag,
    a one-node prompt (core PreviewAny) goes through the queue, and once it is done the cache is empty."""
    _post(url, "/free", {"free_memory": True})
    pid = _post(url, "/prompt", {"prompt": {"1": {"class_type": "PreviewAny",
                                                  "inputs": {"source": f"free {time.time()}"}}}})["prompt_id"]
    deadline = time.time() + timeout
    while pid not in _history(url):
        if time.time() > deadline:
            raise TimeoutError("the prompt that empties the node cache did not finish")
        time.sleep(0.1)


def _queue_from_page(drv, url: str, timeout: float = 300.0) -> tuple[str, dict]:
    """Queues the page's graph with the frontend's own app.queuePrompt, on an empty node cache (every node
    runs and sends its `ui`), and waits for its /history entry."""
    _free_node_cache(url)
    before = set(_history(url))
    queued = drv.execute_async_script("""
      const done = arguments[arguments.length - 1];
      app.queuePrompt(0, 1).then((r) => done(String(r))).catch((e) => done('error: ' + e));""")
    assert not queued.startswith("error"), queued
    deadline = time.time() + timeout
    while time.time() < deadline:
        for pid, entry in _history(url).items():
            status = entry.get("status") or {}
            if pid not in before and (status.get("completed") or status.get("status_str") == "error"):
                return pid, entry
        time.sleep(0.5)
    errors = drv.execute_script("return JSON.stringify(window.comfyAPI?.app?.app?.lastNodeErrors ?? null)")
    raise TimeoutError(f"the prompt queued from the page did not finish (node errors: {errors})")


def _error_of(entry: dict) -> str:
    for kind, payload in (entry.get("status") or {}).get("messages", []):
        if kind == "execution_error":
            return f"{payload.get('node_type')}: {payload.get('exception_message')}"
    return str(entry.get("status"))


def _node_by_type(drv, type_: str) -> int:
    return drv.execute_script("return app.graph._nodes.find((n) => n.type === arguments[0]).id", type_)


def _wait_result(drv, node_id, contains: str, timeout: float = 20.0) -> dict:
    """The node's result box once its text contains `contains` and is laid out whole (no scrolling)."""
    state = "(function () { %s }).apply(null, arguments)" % RESULT
    wait_for(drv, f"const s = {state}; return s && s.text.includes(arguments[2]) ? s : null;",
             node_id, WIDGET, contains, timeout=timeout, what=f"the result text of node {node_id}")
    drv.execute_script(f"app.canvas.centerOnNode(app.graph.getNodeById(arguments[0]));"
                       "app.graph.setDirtyCanvas(true, true);", node_id)
    return wait_for(drv, f"const s = {state}; return s.height > 0 && s.fits ? s : null;", node_id, WIDGET, timeout=5,
                    what=f"the layout of node {node_id}'s result box (the text does not fit in it)")


@pytest.fixture(scope="module")
def page(browser, web_server):
    """The frontend with the example assets and a test image in ComfyUI's input folder."""
    folder = web_server.base / "input"
    for asset in (REPO / "workflows" / "assets").iterdir():
        shutil.copyfile(asset, folder / asset.name)
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(folder / IMAGE)
    open_comfy(browser, web_server.url)
    yield browser
    # The frontend keeps outputs by node id and restores the open workflows on reload: leave neither to
    # the next module (a LoadImage preview would appear on its node 1).
    browser.execute_script("app.clean(); localStorage.clear(); sessionStorage.clear();")


@pytest.fixture()
def drv(page):
    page.execute_script("app.clean();")   # graph, node outputs and previews of the previous test
    return page


def test_intrinsics_text_shows_on_the_node_and_stays_out_of_the_workflow(drv, web_server, artifacts):
    load = drv.execute_script(CREATE, "LoadImage", 40, 160)
    est = drv.execute_script(CREATE, ESTIMATE, 420, 160)
    drv.execute_script(SET_WIDGETS, load, {"image": IMAGE})
    drv.execute_script(SET_WIDGETS, est, {"method": "fov", "fov_deg": 70.0, "fallback": True})
    drv.execute_script("const g = app.graph; g.getNodeById(arguments[0]).connect(0, g.getNodeById(arguments[1]), 0);",
                       load, est)
    sink = drv.execute_script(CREATE, "PreviewAny", 840, 160)   # Estimate Intrinsics is not an output node
    drv.execute_script("const g = app.graph; g.getNodeById(arguments[0]).connect(0, g.getNodeById(arguments[1]), 0);",
                       est, sink)
    plain = drv.execute_script("return app.graph.getNodeById(arguments[0]).widgets.map((w) => w.name)", est)
    assert WIDGET not in plain, "the result box must not exist before the node has run"

    _, entry = _queue_from_page(drv, web_server.url)
    assert entry["status"]["status_str"] == "success", _error_of(entry)
    served = entry["outputs"][str(est)]["text"][0]
    assert "source: fov" in served and "horizontal 70.00 deg" in served

    state = _wait_result(drv, est, "source: fov")
    assert state["text"] == served
    assert "70.0" in state["text"] and "fov" in state["text"]
    assert state["readOnly"] and state["connected"] and state["height"] > 40 and state["width"] > 100
    assert state["widgets"] == plain + [WIDGET]
    drv.save_screenshot(str(artifacts / "web_results_1_intrinsics.png"))

    saved = drv.execute_script("return app.graph.serialize()")
    node = next(n for n in saved["nodes"] if str(n["id"]) == str(est))   # 1.58.1: ids are strings in the page
    assert len(node["widgets_values"]) == len(plain)
    assert "source: fov" not in json.dumps(saved), "the result text leaked into the saved workflow"
    prompt = drv.execute_async_script(GRAPH_TO_PROMPT)
    inputs = prompt[str(est)]["inputs"]
    assert WIDGET not in inputs and inputs["fov_deg"] == 70.0 and inputs["method"] == "fov"
    assert "source: fov" not in json.dumps(prompt)

    # a second run replaces the text instead of adding another box
    drv.execute_script(SET_WIDGETS, est, {"fov_deg": 80.0})
    _, entry = _queue_from_page(drv, web_server.url)
    assert entry["status"]["status_str"] == "success", _error_of(entry)
    state = _wait_result(drv, est, "horizontal 80.00 deg")
    assert state["text"] == entry["outputs"][str(est)]["text"][0]
    assert state["widgets"].count(WIDGET) == 1


def test_fast_preview_workflow_from_the_page_shows_video_and_intrinsics(drv, web_server, artifacts):
    from sana_wm_core.testing.tiny import TINY_HEIGHT, TINY_WIDTH

    workflow = json.loads((REPO / "workflows" / "sana_wm_fast_preview.json").read_text())
    loaded = drv.execute_async_script("""
      const done = arguments[arguments.length - 1];
      app.loadGraphData(arguments[0]).then(() => done(true)).catch((e) => done(String(e)));""", workflow)
    assert loaded is True, loaded
    ids = {t: _node_by_type(drv, t) for t in (ESTIMATE, SAVE, "SanaWMCameraFromActions",
                                              "SanaWMImageToVideo", "SanaWMSampler")}
    drv.execute_script(SET_WIDGETS, ids["SanaWMImageToVideo"],
                       {"width": TINY_WIDTH, "height": TINY_HEIGHT})
    drv.execute_script(SET_WIDGETS, ids["SanaWMCameraFromActions"], {"num_frames": 9})
    drv.execute_script(SET_WIDGETS, ids["SanaWMSampler"], {"steps": 1})
    drv.execute_script(SET_WIDGETS, ids[ESTIMATE], {"pi3x_checkpoint": "pi3x_tiny.safetensors"})

    _, entry = _queue_from_page(drv, web_server.url, timeout=600)
    assert entry["status"]["status_str"] == "success", _error_of(entry)
    sent = entry["prompt"][2]   # what the page queued: the sizes set in the page, no result text
    assert sent[str(ids["SanaWMImageToVideo"])]["inputs"]["width"] == TINY_WIDTH
    assert sent[str(ids["SanaWMSampler"])]["inputs"]["steps"] == 1
    assert all(WIDGET not in node["inputs"] for node in sent.values())
    videos = entry["outputs"][str(ids[SAVE])]["images"]
    assert len(videos) == 1 and videos[0]["filename"].endswith(".mp4")

    video = wait_for(drv, VIDEO_SRC, ids[SAVE], timeout=30, what="the video preview of SanaWMSaveVideo")
    assert "/view?" in video["src"] and f"filename={videos[0]['filename']}" in video["src"]
    assert "type=output" in video["src"] and video["connected"]
    assert video["inNode"] if drv.sanawm_mode.vue_nodes else "video-preview" in video["widgets"]
    assert (video["width"], video["height"]) == (TINY_WIDTH, TINY_HEIGHT)
    drv.save_screenshot(str(artifacts / "web_results_2_video.png"))

    served = entry["outputs"][str(ids[ESTIMATE])]["text"][0]
    state = _wait_result(drv, ids[ESTIMATE], "source:")
    assert state["text"] == served and "fx = " in served and "FOV: horizontal" in served
    assert state["readOnly"] and state["connected"] and state["height"] > 40
    drv.save_screenshot(str(artifacts / "web_results_3_workflow_intrinsics.png"))


def test_failing_box_leaves_the_node_as_it_was(drv):
    est = drv.execute_script(CREATE, ESTIMATE, 420, 160)
    plain = drv.execute_script("return app.graph.getNodeById(arguments[0]).widgets.map((w) => w.name)", est)
    outcome = drv.execute_script("""
      const n = app.graph.getNodeById(arguments[0]), bad = arguments[1], proto = LiteGraph.LGraphNode.prototype;
      const real = proto.addDOMWidget;
      proto.addDOMWidget = function (name) {
        if (name === bad) throw new Error('simulated widget failure');
        return real.apply(this, arguments);
      };
      let thrown = null;
      try { n.onExecuted({text: ['source: fov']}); } catch (e) { thrown = String(e); }
      finally { proto.addDOMWidget = real; }
      const after = n.widgets.map((w) => w.name);
      n.onExecuted({});   // an output without text adds no box
      const noText = n.widgets.map((w) => w.name);
      n.onExecuted({text: ['source: fov']});   // with addDOMWidget working again, the next run shows it
      const box = n.widgets.find((w) => w.name === bad);
      return {thrown, after, noText, recovered: box ? box.sanawmElement.value : null};""", est, WIDGET)
    # the frontend may add its own preview widgets (it keys stale outputs by node id); ours never appears
    assert outcome["thrown"] is None
    for names in (outcome["after"], outcome["noText"]):
        assert names[:len(plain)] == plain and WIDGET not in names
    assert outcome["recovered"] == "source: fov"
    prompt = drv.execute_async_script(GRAPH_TO_PROMPT)
    assert set(prompt[str(est)]["inputs"]) >= {"method", "fov_deg", "fallback", "pi3x_checkpoint"}
