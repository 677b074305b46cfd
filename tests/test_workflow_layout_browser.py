"""The shipped UI workflows have room to live, in headless Chromium under every frontend mode: no two node boxes
overlap on load nor after a run on the tiny weights (when the Load Image preview, the intrinsics text, the
camera preview image and the video appear), the graph is in the groups Camera / Stage 1 / Stage 2 / Output with
a "Start here" Note, and the opening view shows the camera node and the Run button."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from browser import open_comfy
from test_web_node_results import _error_of, _queue_from_page
from workflows.definitions import WORKFLOWS, tiny_overrides
from workflows.layout import GROUPS, NOTE_TYPE, overlaps
from workflows.ui_values import apply_api_inputs

pytestmark = [pytest.mark.browser, pytest.mark.server]
REPO = Path(__file__).resolve().parents[1]
CAMERA_TYPES = ("SanaWMCameraFromActions", "SanaWMLoadCamera")
# Nodes whose `ui` result (intrinsics text, camera drawing) takes room on the node after a run.
RESULT_TYPES = ("SanaWMEstimateIntrinsics", "SanaWMCameraPreview")

# Every node's box on the screen (title bar included): the DOM element under Nodes 2.0, else the canvas node.
BOXES = """
const c = app.canvas, ds = c.ds, r = c.canvas.getBoundingClientRect(), out = {};
app.graph.setDirtyCanvas(true, true);
for (const n of app.graph._nodes) {
  const el = document.querySelector(`[data-node-id="${n.id}"]`);
  if (el && el.getBoundingClientRect().width > 0) {
    const b = el.getBoundingClientRect();
    out[String(n.id)] = [b.left, b.top, b.width, b.height, n.type];
  } else {
    const b = n.getBounding(new Float32Array(4));
    out[String(n.id)] = [(b[0] + ds.offset[0]) * ds.scale + r.left, (b[1] + ds.offset[1]) * ds.scale + r.top,
                         b[2] * ds.scale, b[3] * ds.scale, n.type];
  }
}
return out;"""

# The visible Run (1.58) / Queue (1.32) button of the top bar, as a screen rectangle.
RUN_BUTTON = """
const vis = (e) => { const b = e.getBoundingClientRect(); return b.width > 0 && b.height > 0 &&
                     getComputedStyle(e).visibility !== 'hidden'; };
const b = [...document.querySelectorAll('button')].find((e) => vis(e) && /^(Run|Queue)\\b/.test(e.innerText.trim()));
if (!b) return null;
const r = b.getBoundingClientRect();
return [r.left, r.top, r.width, r.height];"""

# The canvas's view after load, and the view the workflow asked for.
VIEW = "return {scale: app.canvas.ds.scale, offset: Array.from(app.canvas.ds.offset)};"


def _tiny_ui(name: str) -> dict:
    from sana_wm_core.testing.tiny import TINY_HEIGHT, TINY_WIDTH

    ui = json.loads((REPO / "workflows" / f"{name}.json").read_text())
    api = json.loads((REPO / "workflows" / f"{name}_api.json").read_text())
    tiny = tiny_overrides(api, height=TINY_HEIGHT, width=TINY_WIDTH, frames=9, steps=1)
    return apply_api_inputs(ui, tiny)


def _boxes(drv) -> dict[str, tuple]:
    return {k: tuple(v) for k, v in drv.execute_script(BOXES).items()}


def _assert_apart(boxes: dict[str, tuple], when: str) -> None:
    clash = overlaps({k: v[:4] for k, v in boxes.items()})
    assert not clash, f"{when}: overlapping nodes " + ", ".join(f"{boxes[a][4]}/{boxes[b][4]}" for a, b in clash)


@pytest.fixture(scope="module")
def page(browser, web_server):
    for asset in (REPO / "workflows" / "assets").iterdir():
        shutil.copyfile(asset, web_server.base / "input" / asset.name)
    open_comfy(browser, web_server.url)
    yield browser
    browser.execute_script("app.clean(); localStorage.clear(); sessionStorage.clear();")


def test_layout_is_grouped_with_a_note_and_framed(page):
    for name in WORKFLOWS:
        ui = json.loads((REPO / "workflows" / f"{name}.json").read_text())
        titles = [g["title"] for g in ui["groups"]]
        assert titles == [g for g in GROUPS if g in titles] and {"Camera", "Stage 1", "Output"} <= set(titles), name
        assert ("Stage 2" in titles) == any(n["type"] in ("SanaWMRefine", "SanaWMRefinerLoader")   # streaming:
                                            for n in ui["nodes"]), name                      # loader only
        notes = [n for n in ui["nodes"] if n["type"] == NOTE_TYPE]
        assert len(notes) == 1 and "Run" in notes[0]["widgets_values"][0], name
        for n in ui["nodes"]:   # every node inside exactly one group
            x, y = n["pos"]
            inside = [g["title"] for g in ui["groups"] if g["bounding"][0] <= x <= g["bounding"][0] + g["bounding"][2]
                      and g["bounding"][1] <= y <= g["bounding"][1] + g["bounding"][3]]
            assert len(inside) == 1, (name, n["type"], inside)
        assert ui["extra"]["ds"]["scale"] >= 0.5, name


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_shipped_workflow_has_room_before_and_after_a_run(page, web_server, artifacts, name):
    drv = page
    drv.execute_script("app.clean();")
    ui = _tiny_ui(name)
    loaded = drv.execute_async_script("""
      const done = arguments[arguments.length - 1];
      app.loadGraphData(arguments[0]).then(() => done(true)).catch((e) => done(String(e)));""", ui)
    assert loaded is True, loaded
    time.sleep(1.5)   # the Load Image preview and the camera editor draw themselves
    mode = drv.sanawm_mode.name
    view = drv.execute_script(VIEW)
    assert view["scale"] == pytest.approx(ui["extra"]["ds"]["scale"], abs=1e-3), view
    before = _boxes(drv)
    drv.save_screenshot(str(artifacts / f"layout_{name}_{mode}_1_loaded.png"))
    _assert_apart(before, "on load")

    width, height = drv.execute_script("return [window.innerWidth, window.innerHeight]")
    camera = next(v for v in before.values() if v[4] in CAMERA_TYPES)
    run = drv.execute_script(RUN_BUTTON)
    assert run is not None, "no Run/Queue button in view"
    for what, (x, y, w, h, *_) in (("the camera node", camera), ("the Run button", run)):
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height, (what, (x, y, w, h), (width, height))

    _, entry = _queue_from_page(drv, web_server.url, timeout=600)
    assert entry["status"]["status_str"] == "success", _error_of(entry)
    shown = {str(n["id"]) for n in ui["nodes"] if n["type"] in RESULT_TYPES}
    assert shown <= set(entry["outputs"]), (   # else the "after" boxes would lack the results they must fit
        f"result nodes {sorted(shown - set(entry['outputs']))} did not run (served from the cache?)")
    time.sleep(3)   # previews, the intrinsics text and the video element settle on their nodes
    after = _boxes(drv)
    drv.save_screenshot(str(artifacts / f"layout_{name}_{mode}_2_after_run.png"))
    _assert_apart(after, "after the run")
