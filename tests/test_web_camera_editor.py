"""The camera editor in headless Chromium on the real frontend, the real nodes and the real routes.

Each state is screenshotted into the artifacts folder (the page, and the preview canvas on its own).
"""
from __future__ import annotations

import base64
import time

import numpy as np
import pytest
from selenium.webdriver.common.keys import Keys

from browser import open_comfy
from web_helpers import CREATE, SETTLED, wait_for
from sana_wm_core.camera.actions import action_string_to_c2w, parse_action_string
from sana_wm_core.camera.geometry import relative_poses

pytestmark = [pytest.mark.browser, pytest.mark.server]

ACTION_NODE = "SanaWMCameraFromActions"
FILE_NODE = "SanaWMLoadCamera"
OUR_WIDGETS = {"sanawm_path_preview", "sanawm_action_timeline"}
PLAIN = {"action", "translation_speed", "rotation_speed_deg", "mapping", "num_frames"}
CAMERA_FILE = "web_editor_orbit.npy"

NODE_STATE = """
const n = app.graph.getNodeById(arguments[0]);
const e = n.sanawmEditor;
const w = (name) => n.widgets.find((x) => x.name === name);
return {
  widgets: n.widgets.map((x) => x.name),
  action: w('action') ? w('action').value : null,
  status: e ? e.status : null,
  error: e ? e.error : null,
  message: e ? e.msg.textContent : null,
  messageVisible: e ? getComputedStyle(e.msg).display !== 'none' : null,
  frames: e && e.data ? e.data.frames : null,
  positions: e && e.data ? e.data.positions : null,
  segments: e && e.data ? e.data.segments : null,
  blocks: e && e.timeline ? [...e.timeline.track.querySelectorAll('.sanawm-tl-block')].map(
    (b) => [b.dataset.keys, +b.dataset.frames]) : null,
  timelineDisabled: e && e.timeline ? e.timeline.root.classList.contains('disabled') : null,
  pixels: e ? e.canvas.toDataURL('image/png') : null,
};"""


def _wait(drv, node_id, timeout: float = 15.0) -> str:
    return wait_for(drv, SETTLED, node_id, timeout=timeout, what=f"the camera preview of node {node_id}")


def _state(drv, node_id) -> dict:
    return drv.execute_script(NODE_STATE, node_id)


def _shoot(drv, artifacts, name: str, state: dict | None = None) -> None:
    drv.save_screenshot(str(artifacts / f"web_editor_{name}.png"))
    if state and state.get("pixels"):
        png = base64.b64decode(state["pixels"].split(",", 1)[1])
        (artifacts / f"web_editor_{name}_canvas.png").write_bytes(png)


def _segments(action: str) -> list[list]:
    return [["".join(s["keys"]) or "none", s["frames"]] for s in parse_action_string(action)]


def _click_add(drv, node_id, keys: str) -> None:
    drv.execute_script("""
      const tl = app.graph.getNodeById(arguments[0]).sanawmEditor.timeline;
      tl.root.querySelector(`button.sanawm-tl-add[data-keys="${arguments[1]}"]`)
        .dispatchEvent(new MouseEvent('click', {bubbles: true}));""", node_id, keys)


def _set_action(drv, node_id, text: str) -> None:
    """Types into the action textarea like a user: focus, select all, type. Nodes 2.0 draws its own textarea
    in the node's element (the widget's canvas-mode inputEl is not in the page there)."""
    if drv.sanawm_mode.vue_nodes:
        area = wait_for(drv, """
          const el = document.querySelector(`[data-node-id="${arguments[0]}"]`);
          return el && el.querySelector('textarea');""", node_id, what=f"the action box of node {node_id}")
    else:
        area = drv.execute_script(
            "return app.graph.getNodeById(arguments[0]).widgets.find((w) => w.name === 'action').inputEl", node_id)
    area.click()
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(text)


@pytest.fixture(scope="module")
def page(browser, web_server):
    """The frontend, opened once for this module, with a camera file in input/ for the file node."""
    c2w = action_string_to_c2w("dw-60,iw-20,lw-40", 0.05, 1.2, "game")
    np.save(web_server.base / "input" / CAMERA_FILE, c2w)
    open_comfy(browser, web_server.url)
    browser.execute_script("try { window.__sanawmTestFetch = window.fetch; } catch (e) {}")
    return browser


@pytest.fixture()
def drv(page):
    page.execute_script("window.fetch = window.__sanawmTestFetch; app.clean();  // graph, node outputs and previews left by earlier tests")
    yield page
    page.execute_script("window.fetch = window.__sanawmTestFetch;")


def _plain(state: dict) -> list[str]:
    """The node's own widgets: everything but the two the extension adds."""
    return [w for w in state["widgets"] if w not in OUR_WIDGETS]


def test_widget_appears_and_typing_redraws_the_path(drv, artifacts):
    node = drv.execute_script(CREATE, ACTION_NODE, 320, 160)
    assert _wait(drv, node) == "ok"
    before = _state(drv, node)
    assert OUR_WIDGETS <= set(before["widgets"]) and PLAIN <= set(_plain(before))
    assert before["segments"] and before["blocks"] == [[s["keys"], s["frames"]] for s in before["segments"]]
    _shoot(drv, artifacts, "1_default", before)

    _set_action(drv, node, "w-20,lw-60,iw-30")
    assert _wait(drv, node) == "ok"
    after = _state(drv, node)
    assert after["action"] == "w-20,lw-60,iw-30"
    assert after["pixels"] != before["pixels"], "the drawn path did not change"
    assert after["frames"] == 111 and after["blocks"] == _segments("w-20,lw-60,iw-30")
    _shoot(drv, artifacts, "2_typed", after)


def test_speed_and_key_map_changes_redraw(drv):
    node = drv.execute_script(CREATE, ACTION_NODE, 320, 160)
    _wait(drv, node)
    drv.execute_script("""
      const n = app.graph.getNodeById(arguments[0]);
      n.widgets.find((w) => w.name === 'action').value = 'dw-40,w-20';""", node)
    _wait(drv, node)
    first = _state(drv, node)
    drv.execute_script("""
      const n = app.graph.getNodeById(arguments[0]);
      const m = n.widgets.find((w) => w.name === 'mapping');
      m.value = m.value === 'game' ? 'classic' : 'game';""", node)
    _wait(drv, node)
    remapped = _state(drv, node)
    assert remapped["pixels"] != first["pixels"] and remapped["positions"] != first["positions"]
    drv.execute_script("""
      const n = app.graph.getNodeById(arguments[0]);
      n.widgets.find((w) => w.name === 'translation_speed').value *= 2;""", node)
    _wait(drv, node)
    faster = _state(drv, node)
    assert faster["pixels"] != remapped["pixels"]
    assert np.abs(np.array(faster["positions"][-1])).max() > np.abs(np.array(remapped["positions"][-1])).max()


def test_long_path_is_drawn(drv):
    node = drv.execute_script(CREATE, ACTION_NODE, 320, 160)
    _wait(drv, node)
    blank = _state(drv, node)["pixels"]
    t0 = time.time()
    drv.execute_script("""
      app.graph.getNodeById(arguments[0]).widgets.find((w) => w.name === 'action').value = 'w-4000,lw-4000';""",
                       node)
    assert _wait(drv, node, timeout=30) == "ok"
    state = _state(drv, node)
    assert state["frames"] == 8001 and state["pixels"] != blank and len(state["blocks"]) == 2
    assert time.time() - t0 < 15


def test_bad_string_shows_the_parsers_message(drv, artifacts):
    node = drv.execute_script(CREATE, ACTION_NODE, 320, 160)
    _wait(drv, node)
    _set_action(drv, node, "w-20,q-5")
    assert _wait(drv, node) == "error"
    state = _state(drv, node)
    with pytest.raises(ValueError) as info:
        action_string_to_c2w("w-20,q-5")
    assert state["message"] == str(info.value) == state["error"]
    assert state["messageVisible"] and state["timelineDisabled"]
    _shoot(drv, artifacts, "3_error", state)

    _set_action(drv, node, "w-20,k-5")   # fixing the text clears the message
    assert _wait(drv, node) == "ok"
    fixed = _state(drv, node)
    assert not fixed["messageVisible"] and not fixed["timelineDisabled"] and fixed["frames"] == 26


def test_timeline_edits_write_the_action_string(drv, artifacts):
    node = drv.execute_script(CREATE, ACTION_NODE, 320, 160)
    drv.execute_script("""
      app.graph.getNodeById(arguments[0]).widgets.find((w) => w.name === 'action').value = 'w-40,jw-20';""",
                       node)
    _wait(drv, node)
    pixels0 = _state(drv, node)["pixels"]

    # add: a button per key combination appends a 20-frame segment; its tooltip says what it adds
    title = drv.execute_script("""
      return app.graph.getNodeById(arguments[0]).sanawmEditor.timeline.root
        .querySelector('button.sanawm-tl-add[data-keys="d"]').title;""", node)
    assert title.startswith("add d-20: ") and title.endswith(" for 20 frames") and "strafe" in title
    _click_add(drv, node, "d")
    assert _state(drv, node)["action"] == "w-40,jw-20,d-20"
    assert _wait(drv, node) == "ok"
    added = _state(drv, node)
    assert added["blocks"] == _segments("w-40,jw-20,d-20") and added["pixels"] != pixels0
    _shoot(drv, artifacts, "4_added", added)

    # drag: the right edge of the first block, 90 px to the right
    drag = drv.execute_script("""
      const tl = app.graph.getNodeById(arguments[0]).sanawmEditor.timeline;
      const h = tl.track.querySelectorAll('.sanawm-tl-handle')[0];
      const r = h.getBoundingClientRect(), width = tl.track.getBoundingClientRect().width;
      const x = r.left + r.width / 2, y = r.top + r.height / 2, dx = 90;
      const ev = (type, cx) => new PointerEvent(type, {bubbles: true, cancelable: true, clientX: cx,
                                                         clientY: y, pointerId: 7, button: 0, buttons: 1});
      h.dispatchEvent(ev('pointerdown', x));
      window.dispatchEvent(ev('pointermove', x + dx / 2));
      window.dispatchEvent(ev('pointermove', x + dx));
      window.dispatchEvent(ev('pointerup', x + dx));
      return {width, dx};""", node)
    assert drag["width"] > 100, "the timeline is not laid out"
    expected = 40 + round(drag["dx"] / (drag["width"] / 80))
    assert _state(drv, node)["action"] == f"w-{expected},jw-20,d-20"
    assert _wait(drv, node) == "ok"
    dragged = _state(drv, node)
    assert dragged["blocks"][0] == ["w", expected] and dragged["frames"] == expected + 41
    _shoot(drv, artifacts, "5_dragged", dragged)

    # delete: the x of the middle block
    drv.execute_script("""
      const tl = app.graph.getNodeById(arguments[0]).sanawmEditor.timeline;
      tl.track.querySelectorAll('.sanawm-tl-del')[1].dispatchEvent(new MouseEvent('click', {bubbles: true}));""",
                       node)
    assert _state(drv, node)["action"] == f"w-{expected},d-20"
    assert _wait(drv, node) == "ok"
    deleted = _state(drv, node)
    assert deleted["blocks"] == [["w", expected], ["d", 20]]
    _shoot(drv, artifacts, "6_deleted", deleted)


def test_saved_workflow_reloads_with_the_same_path(drv, artifacts):
    node = drv.execute_script(CREATE, ACTION_NODE, 320, 160)
    _set_action(drv, node, "lw-30,iw-25,none-10")
    assert _wait(drv, node) == "ok"
    before = _state(drv, node)
    saved = drv.execute_script("window.__sanawmSaved = JSON.stringify(app.graph.serialize());"
                               "return JSON.parse(window.__sanawmSaved);")
    ours = next(n for n in saved["nodes"] if n["type"] == ACTION_NODE)
    assert "lw-30,iw-25,none-10" in ours["widgets_values"]
    assert len(ours["widgets_values"]) == len(_plain(before))
    prompt = drv.execute_async_script("""
      const done = arguments[arguments.length - 1];
      app.graphToPrompt().then((p) => done(p.output)).catch((e) => done(String(e)));""")
    inputs = prompt[str(node)]["inputs"]
    assert inputs["action"] == "lw-30,iw-25,none-10" and not OUR_WIDGETS & set(inputs)

    drv.execute_async_script("""
      const done = arguments[arguments.length - 1];
      app.graph.clear();
      app.loadGraphData(JSON.parse(window.__sanawmSaved)).then(() => done(true)).catch((e) => done(String(e)));""")
    reloaded_id = drv.execute_script(
        "return app.graph._nodes.find((n) => n.type === arguments[0]).id", ACTION_NODE)
    assert _wait(drv, reloaded_id) == "ok"
    after = _state(drv, reloaded_id)
    assert after["action"] == "lw-30,iw-25,none-10"
    assert after["positions"] == before["positions"] and after["blocks"] == before["blocks"]
    assert after["pixels"] == before["pixels"]
    _shoot(drv, artifacts, "7_reloaded", after)


def test_load_camera_node_previews_its_file(drv, artifacts, web_server):
    node = drv.execute_script(CREATE, FILE_NODE, 320, 160)
    drv.execute_script("""
      app.graph.getNodeById(arguments[0]).widgets.find((w) => w.name === 'file').value = arguments[1];""",
                       node, CAMERA_FILE)
    assert _wait(drv, node) == "ok"
    state = _state(drv, node)
    assert "sanawm_path_preview" in state["widgets"] and "sanawm_action_timeline" not in state["widgets"]
    rel = relative_poses(np.load(web_server.base / "input" / CAMERA_FILE))
    assert state["frames"] == len(rel) == 121
    assert np.abs(np.array(state["positions"]) - rel[:, :3, 3]).max() < 1e-6
    _shoot(drv, artifacts, "8_file", state)


def test_failing_route_keeps_the_plain_widgets(drv, artifacts):
    drv.execute_script("""
      const real = window.__sanawmTestFetch;
      window.fetch = function (url, opts) {
        if (String(url).includes('/sana_wm/camera/')) return Promise.resolve(new Response('boom', {status: 500}));
        return real.apply(this, arguments);
      };""")
    node = drv.execute_script(CREATE, ACTION_NODE, 320, 160)
    assert _wait(drv, node) == "unavailable"
    state = _state(drv, node)
    assert PLAIN <= set(state["widgets"])
    assert "HTTP 500" in state["message"] and state["messageVisible"]
    _set_action(drv, node, "w-7")
    _click_add(drv, node, "d")   # without a parse the timeline must not touch the text
    assert _state(drv, node)["action"] == "w-7"
    prompt = drv.execute_async_script("""
      const done = arguments[arguments.length - 1];
      app.graphToPrompt().then((p) => done(p.output)).catch((e) => done(String(e)));""")
    assert prompt[str(node)]["inputs"]["action"] == "w-7"
    _shoot(drv, artifacts, "9_route_500", state)


@pytest.mark.parametrize("broken", ["sanawm_path_preview", "sanawm_action_timeline"])
def test_failing_setup_degrades_to_the_plain_widgets(drv, broken):
    normal = _plain(_state(drv, drv.execute_script(CREATE, ACTION_NODE, 320, 160)))
    drv.execute_script("""
      const bad = arguments[0], proto = LiteGraph.LGraphNode.prototype;
      window.__sanawmAddDOM = proto.addDOMWidget;
      proto.addDOMWidget = function (name) {
        if (name === bad) throw new Error('simulated widget failure');
        return window.__sanawmAddDOM.apply(this, arguments);
      };""", broken)
    try:
        node = drv.execute_script(CREATE, ACTION_NODE, 320, 560)
    finally:
        drv.execute_script("LiteGraph.LGraphNode.prototype.addDOMWidget = window.__sanawmAddDOM;")
    names, has_editor = drv.execute_script(
        "const n = app.graph.getNodeById(arguments[0]); return [n.widgets.map((w) => w.name), !!n.sanawmEditor]",
        node)
    assert names == normal and has_editor is False
    assert PLAIN <= set(names)


def test_timeline_never_overwrites_text_that_is_not_parsed_yet(drv):
    node = drv.execute_script(CREATE, ACTION_NODE, 320, 160)
    assert _wait(drv, node) == "ok"
    _set_action(drv, node, "s-12,kd-8")
    _click_add(drv, node, "w")            # the blocks still show the previous string
    assert _state(drv, node)["action"] == "s-12,kd-8"
    assert _wait(drv, node) == "ok"
    _click_add(drv, node, "w")
    assert _state(drv, node)["action"] == "s-12,dk-8,w-20"


def test_linked_action_input_is_not_previewed_as_a_widget(drv):
    node = drv.execute_script(CREATE, ACTION_NODE, 320, 160)
    assert _wait(drv, node) == "ok"
    linked = drv.execute_script("""
      const n = app.graph.getNodeById(arguments[0]);
      const src = LiteGraph.createNode('PrimitiveStringMultiline');
      src.pos = [20, 160];
      app.graph.add(src);
      const slot = n.inputs.findIndex((i) => (i.widget?.name ?? i.name) === 'action');
      src.connect(0, n, slot);
      return slot >= 0 && n.inputs[slot].link != null;""", node)
    assert linked
    assert _wait(drv, node) == "idle"
    state = _state(drv, node)
    assert "action comes from a link" in state["message"] and state["timelineDisabled"]
