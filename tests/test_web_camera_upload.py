"""Camera-file upload on SanaWMLoadCamera, and the one input-folder resolver the node and the route share.

Resolver tests run without a server. The browser tests drive the real frontend in headless Chromium: a
.npy goes through the node's upload button (the hidden <input type=file> gets its path via send_keys),
ComfyUI's /upload/image stores it, the `file` combo selects it and lists what the server now offers, the
preview draws it, and the page's prompt runs through the API. Screenshots go to the artifacts folder.
"""
from __future__ import annotations

import base64
import io
import os
import uuid

import numpy as np
import pytest
from PIL import Image

from sana_wm_core.camera.actions import action_string_to_c2w
from sana_wm_core.camera.input_files import list_camera_files, resolve_camera_file
from sana_wm_core.camera.geometry import relative_poses
from web_helpers import CREATE, SETTLED, wait_for

FILE_NODE = "SanaWMLoadCamera"
PLAIN = ["file", "world_to_camera", "num_frames", "fps"]
LABEL = "upload camera file (.npy / .json / .txt)"


# ---------------------------------------------------------------- resolver (no server)

@pytest.fixture()
def input_dir(tmp_path):
    root = tmp_path / "input"
    (root / "paths" / "deep").mkdir(parents=True)
    (root / ".hidden").mkdir()
    np.save(root / "top.npy", np.eye(4)[None])
    (root / "paths" / "b.json").write_text("[]")
    (root / "paths" / "deep" / "c.TXT").write_text("x")
    (root / "paths" / "photo.png").write_bytes(b"png")
    (root / ".hidden" / "secret.npy").write_bytes(b"x")
    (root / ".dotfile.json").write_text("[]")
    (tmp_path / "outside.npy").write_bytes(b"x")
    return root


def test_listing_is_recursive_sorted_and_only_camera_files(input_dir, tmp_path):
    os.symlink(tmp_path / "outside.npy", input_dir / "link_out.npy")
    os.symlink(input_dir / "top.npy", input_dir / "paths" / "link_in.npy")
    assert list_camera_files(input_dir) == ["paths/b.json", "paths/deep/c.TXT", "paths/link_in.npy", "top.npy"]
    assert list_camera_files(tmp_path / "no_such_folder") == []


def test_resolves_names_inside_the_input_folder(input_dir):
    real = os.path.realpath(input_dir)
    assert resolve_camera_file("top.npy", input_dir) == os.path.join(real, "top.npy")
    assert resolve_camera_file("paths/deep/c.TXT", str(input_dir)) == os.path.join(real, "paths", "deep", "c.TXT")
    assert resolve_camera_file("paths/b.json [input]", input_dir) == os.path.join(real, "paths", "b.json")
    assert resolve_camera_file("paths/../top.npy", input_dir) == os.path.join(real, "top.npy")
    # every name the listing offers resolves
    for name in list_camera_files(input_dir):
        assert os.path.isfile(resolve_camera_file(name, input_dir))


@pytest.mark.parametrize("name", ["../outside.npy", "paths/../../outside.npy", "paths/deep/../../../outside.npy",
                                  "/etc/passwd", "top.npy [output]", "top.npy [temp]", "link_out.npy"])
def test_escapes_are_refused(input_dir, tmp_path, name):
    os.symlink(tmp_path / "outside.npy", input_dir / "link_out.npy")
    with pytest.raises(ValueError) as info:
        resolve_camera_file(name, input_dir)
    assert str(info.value).startswith(f"camera file {name!r} is outside ComfyUI's input folder")


@pytest.mark.parametrize("name,expect", [
    ("", "file is empty: pick a camera file"),
    ("   ", "file is empty"),
    (None, "file must be a camera file name (text), got NoneType"),
    ("top\0.npy", "contains a NUL character"),
    ("missing.npy", "'missing.npy' was not found in ComfyUI's input folder"),
    ("paths", "'paths' was not found in ComfyUI's input folder"),   # a folder is not a file
])
def test_bad_names_are_explained(input_dir, name, expect):
    with pytest.raises(ValueError) as info:
        resolve_camera_file(name, input_dir)
    assert expect in str(info.value)
    if "not found" in expect:
        assert "upload" in str(info.value) and os.path.realpath(input_dir) in str(info.value)


# ---------------------------------------------------------------- browser + real server

STATE = """
const n = app.graph.getNodeById(arguments[0]);
const e = n.sanawmEditor, u = n.sanawmUpload;
const file = n.widgets.find((w) => w.name === 'file');
return {
  widgets: n.widgets.map((w) => w.name),
  file: file.value,
  choices: [...file.options.values],
  upload: u ? {status: u.status, error: u.error, name: u.name, label: u.widget.label} : null,
  status: e ? e.status : null,
  message: e ? e.msg.textContent : null,
  positions: e && e.data ? e.data.positions : null,
  pixels: e ? e.canvas.toDataURL('image/png') : null,
};"""

BLANK = """
const done = arguments[arguments.length - 1];
import('/extensions/sana_wm/sanawm_path_view.js').then((m) => {
  const c = document.createElement('canvas');
  m.drawCameraPath(c, null, '');
  done(c.toDataURL('image/png'));
}).catch((e) => done('error: ' + e));"""


def _wait(drv, script: str, *args, timeout: float = 20.0, what: str = "the page"):
    return wait_for(drv, script, *args, timeout=timeout, what=what, busy=(None, "pending", "uploading"))


def _preview(drv, node) -> str:
    return _wait(drv, SETTLED, node, what=f"the preview of node {node}")


def _uploaded(drv, node, attempt: int = 1) -> str:
    """The status of the node's `attempt`-th upload once it has finished."""
    return _wait(drv, """
      const u = app.graph.getNodeById(arguments[0]).sanawmUpload;
      return u.attempts >= arguments[1] && u.status !== 'uploading' ? u.status : null;""", node, attempt,
                 what=f"the upload on node {node}")


def _pixels(data_url: str) -> np.ndarray:
    png = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _drawn(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a - b).sum(-1) > 30).mean())


def _shoot(drv, artifacts, name: str, state: dict) -> None:
    drv.save_screenshot(str(artifacts / f"web_upload_{name}.png"))
    (artifacts / f"web_upload_{name}_canvas.png").write_bytes(base64.b64decode(state["pixels"].split(",", 1)[1]))


def _choose(drv, node, path) -> None:
    """What a user does in the file dialog: the hidden file input gets the path, `change` fires."""
    field = drv.execute_script("return app.graph.getNodeById(arguments[0]).sanawmUpload.input", node)
    assert field.get_attribute("type") == "file" and not field.is_displayed()
    assert set(field.get_attribute("accept").split(",")) == {".npy", ".json", ".txt"}
    field.send_keys(str(path))


@pytest.fixture(scope="module")
def page(browser, web_server):
    from browser import open_comfy

    tag = uuid.uuid4().hex[:8]
    first = f"upload_first_{tag}.npy"
    np.save(web_server.base / "input" / first, action_string_to_c2w("w-40,lw-30", 0.05, 1.2))
    open_comfy(browser, web_server.url)
    browser.sanawm_first = first
    return browser


@pytest.fixture()
def drv(page):
    page.execute_script("app.clean();")  # graph, node outputs and previews left by earlier tests
    return page


@pytest.mark.server
@pytest.mark.browser
def test_upload_button_selects_previews_and_runs_the_file(drv, web_comfy, web_server, artifacts, tmp_path):
    tag = uuid.uuid4().hex[:8]
    node = drv.execute_script(CREATE, FILE_NODE, 320, 120)
    drv.execute_script("app.graph.getNodeById(arguments[0]).widgets.find((w) => w.name === 'file').value = "
                       "arguments[1];", node, drv.sanawm_first)
    assert _preview(drv, node) == "ok"
    before = drv.execute_script(STATE, node)
    assert "upload_camera_file" in before["widgets"] and before["upload"]["status"] == "idle"
    assert before["upload"]["label"].startswith("upload camera file")
    assert f"upload_late_{tag}.json" not in before["choices"]
    _shoot(drv, artifacts, "1_before", before)

    # a file copied into input/ after the page loaded: the refreshed list must offer it too
    late = web_server.base / "input" / f"upload_late_{tag}.json"
    late.write_text("[[[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]]")
    # the file to upload lives outside the server's folders, like a file on the user's disk
    c2w = action_string_to_c2w("dw-50,iw-25,jw-30", 0.05, 1.2, "game")
    c2w = np.array([[1, 0, 0, 3.0], [0, 1, 0, -1.0], [0, 0, 1, 2.0], [0, 0, 0, 1]]) @ c2w
    name = f"uploaded_orbit_{tag}.npy"
    src = tmp_path / name
    np.save(src, c2w)
    _choose(drv, node, src)
    assert _uploaded(drv, node) == "ok"
    assert _preview(drv, node) == "ok"
    after = drv.execute_script(STATE, node)
    _shoot(drv, artifacts, "2_uploaded", after)

    # stored in input/ byte for byte; selected; listed with the server's current list
    assert (web_server.base / "input" / name).read_bytes() == src.read_bytes()
    assert after["file"] == name == after["upload"]["name"]
    assert {name, late.name, drv.sanawm_first} <= set(after["choices"])
    assert after["choices"] == list_camera_files(web_server.base / "input")

    # the preview draws the uploaded path (relative to its first pose, as the sampler uses it)
    rel = relative_poses(c2w)
    assert len(after["positions"]) == len(rel) == 106
    assert np.abs(np.array(after["positions"]) - rel[:, :3, 3]).max() < 1e-6
    blank = drv.execute_async_script(BLANK)
    assert blank.startswith("data:image/png"), blank
    pix_after, pix_before = _pixels(after["pixels"]), _pixels(before["pixels"])
    assert _drawn(pix_after, _pixels(blank)) > 0.01, "the preview canvas is blank after the upload"
    assert _drawn(pix_after, pix_before) > 0.005, "the preview did not change after the upload"

    # the page's prompt names the file (and nothing of the button) and runs through the API
    prompt = drv.execute_async_script("""
      const done = arguments[arguments.length - 1];
      app.graphToPrompt().then((p) => done(p.output)).catch((e) => done(String(e)));""")
    inputs = prompt[str(node)]["inputs"]
    assert inputs["file"] == name and set(inputs) == set(PLAIN)
    saved = drv.execute_script("return app.graph.serialize()")
    ours = next(n for n in saved["nodes"] if str(n["id"]) == str(node))   # 1.58.1: ids are strings in the page
    assert ours["widgets_values"][0] == name and len(ours["widgets_values"]) == len(PLAIN)
    wf = {"1": prompt[str(node)], "2": {"class_type": "SanaWMCameraPreview", "inputs": {"camera": ["1", 0],
                                                                                        "every_n": 8}}}
    wf["3"] = {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}}   # the preview is not an output node
    result = web_comfy.run(wf)
    assert result.status == "success", result.error
    assert len(result.files("images")) == 1


@pytest.mark.server
@pytest.mark.browser
def test_upload_button_is_drawn_and_opens_the_file_dialog(drv):
    """Nodes 2.0 draws no `canvasOnly` widget: the button must be a plain one, on the node in every mode."""
    node = drv.execute_script(CREATE, FILE_NODE, 320, 120)
    drv.execute_script("""
      const u = app.graph.getNodeById(arguments[0]).sanawmUpload;
      window.__sanawmPicked = 0;
      u.input.addEventListener('click', (e) => { window.__sanawmPicked += 1; e.preventDefault(); });""", node)
    widget = drv.execute_script("""
      const n = app.graph.getNodeById(arguments[0]);
      const w = n.widgets.find((x) => x.name === 'upload_camera_file');
      return {label: w.label, canvasOnly: !!w.options?.canvasOnly, serialize: w.serialize};""", node)
    assert widget == {"label": LABEL, "canvasOnly": False, "serialize": False}
    if drv.sanawm_mode.vue_nodes:
        button = wait_for(drv, """
          const el = document.querySelector(`[data-node-id="${arguments[0]}"]`);
          const b = el && [...el.querySelectorAll('button')].find((x) => x.textContent.includes(arguments[1]));
          return b && b.getBoundingClientRect().height > 0 ? b : null;""", node, LABEL,
                          what="the upload button on the Nodes 2.0 node")
        button.click()   # a real click on the drawn button
    else:
        drv.execute_script("""
          const w = app.graph.getNodeById(arguments[0]).widgets.find((x) => x.name === 'upload_camera_file');
          w.callback(w, app.canvas, app.graph.getNodeById(arguments[0]));""", node)
    assert wait_for(drv, "return window.__sanawmPicked || null;", what="the file dialog request") == 1


@pytest.mark.server
@pytest.mark.browser
def test_same_name_with_new_content_is_kept_apart_and_redrawn(drv, web_server, tmp_path):
    tag = uuid.uuid4().hex[:8]
    name = f"reupload_{tag}.npy"
    node = drv.execute_script(CREATE, FILE_NODE, 320, 120)
    first = tmp_path / "a" / name
    first.parent.mkdir()
    np.save(first, action_string_to_c2w("w-30", 0.05, 1.2))
    _choose(drv, node, first)
    assert _uploaded(drv, node) == "ok" and _preview(drv, node) == "ok"
    one = drv.execute_script(STATE, node)
    assert one["file"] == name

    second = tmp_path / "b" / name
    second.parent.mkdir()
    np.save(second, action_string_to_c2w("lw-30,w-10", 0.05, 1.2))
    _choose(drv, node, second)
    assert _uploaded(drv, node, 2) == "ok" and _preview(drv, node) == "ok"
    two = drv.execute_script(STATE, node)
    # ComfyUI never overwrites a different file: the new one gets a numbered name, which is selected
    assert two["file"] == f"reupload_{tag} (1).npy" and {name, two["file"]} <= set(two["choices"])
    assert (web_server.base / "input" / two["file"]).read_bytes() == second.read_bytes()
    assert len(two["positions"]) == 41 and two["positions"] != one["positions"]
    assert _drawn(_pixels(two["pixels"]), _pixels(one["pixels"])) > 0.005


@pytest.mark.server
@pytest.mark.browser
def test_wrong_file_type_is_refused_and_nothing_changes(drv, web_server, artifacts, tmp_path):
    node = drv.execute_script(CREATE, FILE_NODE, 320, 120)
    drv.execute_script("app.graph.getNodeById(arguments[0]).widgets.find((w) => w.name === 'file').value = "
                       "arguments[1];", node, drv.sanawm_first)
    assert _preview(drv, node) == "ok"
    before = drv.execute_script(STATE, node)
    bad = tmp_path / f"not_a_path_{uuid.uuid4().hex[:8]}.png"
    bad.write_bytes(b"\x89PNG")
    # the accept filter is only a hint to the dialog: the upload itself checks the type
    drv.execute_script("""
      const u = app.graph.getNodeById(arguments[0]).sanawmUpload;
      u.upload(new File([new Uint8Array([1, 2, 3])], arguments[1]));""", node, bad.name)
    assert _uploaded(drv, node) == "error"
    state = drv.execute_script(STATE, node)
    assert f"{bad.name} is not a camera file" in state["upload"]["error"]
    assert "upload failed" in state["upload"]["label"]
    assert state["file"] == before["file"] and state["choices"] == before["choices"]
    assert not (web_server.base / "input" / bad.name).exists()
    _shoot(drv, artifacts, "3_refused", state)


@pytest.mark.server
@pytest.mark.browser
def test_server_refusal_is_reported_and_plain_widgets_keep_working(drv, web_server, tmp_path):
    drv.execute_script("""
      window.__sanawmRealFetch = window.__sanawmRealFetch || window.fetch;
      const real = window.__sanawmRealFetch;
      window.fetch = function (url, opts) {
        if (String(url).includes('/upload/image')) return Promise.resolve(new Response('no', {status: 500}));
        return real.apply(this, arguments);
      };""")
    try:
        node = drv.execute_script(CREATE, FILE_NODE, 320, 120)
        drv.execute_script("app.graph.getNodeById(arguments[0]).widgets.find((w) => w.name === 'file').value = "
                           "arguments[1];", node, drv.sanawm_first)
        src = tmp_path / f"refused_{uuid.uuid4().hex[:8]}.npy"
        np.save(src, action_string_to_c2w("w-9"))
        _choose(drv, node, src)
        assert _uploaded(drv, node) == "error"
    finally:
        drv.execute_script("window.fetch = window.__sanawmRealFetch;")
    state = drv.execute_script(STATE, node)
    assert "HTTP 500" in state["upload"]["error"] and state["file"] == drv.sanawm_first
    assert not (web_server.base / "input" / src.name).exists()
    assert _preview(drv, node) == "ok"   # the preview of the selected file is untouched
