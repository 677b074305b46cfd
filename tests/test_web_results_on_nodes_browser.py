"""After a run of a shipped workflow on the tiny weights, the results are visible ON their nodes in every
frontend mode: the intrinsics text of SANA-WM Estimate Intrinsics and the drawing of SANA-WM Camera Preview.

"Visible" is checked where the user looks: under Nodes 2.0 inside the node's own element (`data-node-id`),
laid out with a size, inside the node's box and not covered (the topmost element at its centre); under the
canvas renderer the text box over the canvas the same way, and the drawing loaded into the node's images with
the node grown to draw it. Screenshots go to artifacts.
"""
from __future__ import annotations

import time

import pytest

from test_web_node_results import _error_of, _queue_from_page
from test_workflow_layout_browser import _tiny_ui, page  # noqa: F401 - `page`: the layout test's page fixture

pytestmark = [pytest.mark.browser, pytest.mark.server]
WORKFLOW = "sana_wm_actions"
ESTIMATE = "SanaWMEstimateIntrinsics"
PREVIEW = "SanaWMCameraPreview"

# Whether element `el` is on screen inside its `node` element (null: the canvas renderer) and is what the user
# sees at its centre (nothing else, e.g. another node, lies over it).
SEEN = """
function seen(el, node) {
  const box = node ? node.getBoundingClientRect() : null;
  if (!el || !el.isConnected) return {ok: false, why: 'not in the page'};
  const r = el.getBoundingClientRect(), cs = getComputedStyle(el);
  if (r.width < 20 || r.height < 20) return {ok: false, why: `no size (${r.width}x${r.height})`};
  if (cs.visibility === 'hidden' || cs.display === 'none' || +cs.opacity === 0) return {ok: false, why: 'hidden'};
  if (box && (r.left < box.left - 1 || r.top < box.top - 1 || r.right > box.right + 1 || r.bottom > box.bottom + 1))
    return {ok: false, why: 'outside its node'};
  const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
  // the element itself or a part of it; under Nodes 2.0 also a frame around it inside its node (the preview
  // image lets the pointer through to its panel)
  if (!hit || !(el.contains(hit) || (node && node.contains(hit) && hit.contains(el))))
    return {ok: false, why: `covered by ${hit && hit.outerHTML.slice(0, 120)}`};
  return {ok: true, why: ''};
}"""

# The node's result text as shown: its element under Nodes 2.0 (a textarea in it), else the DOM widget box.
TEXT_SHOWN = SEEN + """
const [id, want] = arguments;
const n = app.graph.getNodeById(id);
app.canvas.centerOnNode(n);
app.graph.setDirtyCanvas(true, true);
const node = document.querySelector(`[data-node-id="${id}"]`);
const area = node ? [...node.querySelectorAll('textarea')].find((t) => t.value === want)
                  : n.widgets?.find((w) => w.name === 'sanawm_result_text')?.sanawmElement;
if (!area || area.value !== want) return {ok: false, why: 'no result text on the node', vue: !!node};
return {...seen(area, node), vue: !!node};"""

# The node's camera drawing as shown: an <img> of that file in its element under Nodes 2.0, else the node's
# loaded images (the canvas draws node.imgs below the widgets) with the node grown (from `before`) to hold them.
IMAGE_SHOWN = SEEN + """
const [id, file, before] = arguments;
const n = app.graph.getNodeById(id);
app.canvas.centerOnNode(n);
app.graph.setDirtyCanvas(true, true);
const node = document.querySelector(`[data-node-id="${id}"]`);
const loaded = (img) => img && img.complete && img.naturalWidth > 0 && img.src.includes(`filename=${file}`);
if (node) {
  const img = [...node.querySelectorAll('img')].find(loaded);
  if (!img) return {ok: false, why: 'no loaded drawing in the node element', vue: true};
  return {...seen(img, node), vue: true};
}
const img = (n.imgs || []).find(loaded);
if (!img) return {ok: false, why: 'no loaded drawing in node.imgs', vue: false};
const grown = n.size[1] - before;   // the canvas draws the images in the room the node grew by
return {ok: grown >= 100, why: grown >= 100 ? '' : `node not grown for the drawing (${grown}px)`, vue: false};"""


def _until_shown(drv, script: str, *args, timeout: float = 20.0) -> dict:
    """The last state of `script` once it says shown, or when `timeout` runs out (with why it is not)."""
    deadline = time.time() + timeout
    while True:
        state = drv.execute_script(script, *args)
        if state["ok"] or time.time() > deadline:
            return state
        time.sleep(0.25)


def test_intrinsics_text_and_camera_drawing_are_visible_on_their_nodes(page, web_server, artifacts):
    drv = page
    drv.execute_script("app.clean();")
    loaded = drv.execute_async_script("""
      const done = arguments[arguments.length - 1];
      app.loadGraphData(arguments[0]).then(() => done(true)).catch((e) => done(String(e)));""", _tiny_ui(WORKFLOW))
    assert loaded is True, loaded
    ids = drv.execute_script("return Object.fromEntries(app.graph._nodes.map((n) => [n.type, n.id]))")
    before = drv.execute_script("return app.graph.getNodeById(arguments[0]).size[1]", ids[PREVIEW])

    _, entry = _queue_from_page(drv, web_server.url, timeout=600)
    assert entry["status"]["status_str"] == "success", _error_of(entry)
    outputs = entry["outputs"]
    assert str(ids[ESTIMATE]) in outputs and str(ids[PREVIEW]) in outputs, (
        f"the run did not execute the result nodes (served from the cache?): outputs of {sorted(outputs)}")
    text = outputs[str(ids[ESTIMATE])]["text"][0]
    file = outputs[str(ids[PREVIEW])]["images"][0]["filename"]
    mode = drv.sanawm_mode

    for what, script, args in (("the intrinsics text", TEXT_SHOWN, (ids[ESTIMATE], text)),
                               ("the camera drawing", IMAGE_SHOWN, (ids[PREVIEW], file, before))):
        state = _until_shown(drv, script, *args)
        assert state["ok"], f"{what} is not visible on its node ({mode.name}): {state['why']}"
        assert state["vue"] == mode.vue_nodes, state
    drv.save_screenshot(str(artifacts / f"results_on_nodes_{mode.name}.png"))
