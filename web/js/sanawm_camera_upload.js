// SANA-WM camera-file upload: a button (and file drop) on SanaWMLoadCamera that sends a trajectory file
// to ComfyUI's own /upload/image (it stores any file type in input/), reloads the node's `file` list from
// /object_info so it matches what the server now offers, selects the new file and asks the camera editor
// (sanawm_camera_editor.js) to redraw. The camera-file suffixes come from the server (the loader's own
// registry, GET /sana_wm/camera/file_types): this file keeps no copy. Nothing is serialized: saved
// workflows and API prompts only hold the `file` name. A failure here leaves the plain widgets working.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const FILE_NODE = "SanaWMLoadCamera";
const FILE_TYPES_PATH = "/sana_wm/camera/file_types";

let suffixes = [];        // e.g. [".npy", ".json", ".txt"] once the server has answered
let suffixesLoading = null;

/** The camera-file suffixes the server reads (fetched once; a failed fetch is retried on the next call). */
export function loadSuffixes() {
  suffixesLoading ??= api.fetchApi(FILE_TYPES_PATH).then(async (res) => {
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const list = (await res.json())?.suffixes;
    if (!Array.isArray(list) || !list.length) throw new Error("the answer holds no suffix list");
    suffixes = list.map((x) => String(x).toLowerCase());
    return suffixes;
  }).catch((err) => {
    suffixesLoading = null;
    throw err;
  });
  return suffixesLoading;
}

function label() {
  return suffixes.length ? `upload camera file (${suffixes.join(" / ")})` : "upload camera file";
}

let warned = false;
function warnOnce(message, err) {
  if (warned) return;
  warned = true;
  console.warn(`[SANA-WM] ${message}`, err);
}

function isCameraFile(name) {
  const lower = String(name || "").toLowerCase();
  return suffixes.some((s) => lower.endsWith(s));
}

function toast(severity, summary, detail) {
  try {
    app.extensionManager?.toast?.add({ severity, summary, detail, life: severity === "error" ? 8000 : 3000 });
  } catch (_) { /* no toast service: the button label still says what happened */ }
}

/** Stores `file` in ComfyUI's input folder; answers the widget value that names it ("sub/name"). */
export async function uploadCameraFile(file) {
  const body = new FormData();
  body.append("image", file, file.name);
  body.append("type", "input");
  const res = await api.fetchApi("/upload/image", { method: "POST", body });
  if (!res.ok) throw new Error(`the server refused the upload (HTTP ${res.status})`);
  const data = await res.json();
  if (!data || !data.name) throw new Error("the server's upload answer has no file name");
  return data.subfolder ? `${data.subfolder}/${data.name}` : data.name;
}

/** The `file` choices the server offers now (the node's INPUT_TYPES, through /object_info). */
export async function cameraFileChoices() {
  const res = await api.fetchApi(`/object_info/${FILE_NODE}`);
  if (!res.ok) throw new Error(`could not refresh the file list (HTTP ${res.status})`);
  const spec = (await res.json())?.[FILE_NODE]?.input?.required?.file;
  if (!Array.isArray(spec)) throw new Error("the file list is missing from /object_info");
  const values = Array.isArray(spec[0]) ? spec[0] : spec[1]?.options;   // V1 [list, opts] or V2 COMBO
  if (!Array.isArray(values)) throw new Error("the file list in /object_info is not a list");
  return values.map(String);
}

class CameraUpload {
  constructor(node) {
    this.node = node;
    this.status = "idle";     // idle | uploading | ok | error
    this.error = "";
    this.name = null;
    this.busy = null;         // the promise of the latest upload
    this.attempts = 0;        // uploads started on this node
  }

  build() {
    this.input = document.createElement("input");
    this.input.type = "file";
    this.input.accept = suffixes.join(",");
    this.input.className = "sanawm-camera-upload-input";
    this.input.style.display = "none";
    this.input.addEventListener("change", () => {
      const file = this.input.files?.[0];
      this.input.value = "";  // choosing the same file again fires `change` again
      if (file) this.upload(file);
    });
    document.body.appendChild(this.input);

    this.widget = this.node.addWidget("button", "upload_camera_file", null, () => this.input.click(),
      { serialize: false });   // not canvasOnly: Nodes 2.0 must draw it too
    this.widget.serialize = false;
    this.widget.label = label();
    if (!suffixes.length) {
      loadSuffixes().then(() => {
        this.input.accept = suffixes.join(",");
        if (this.status === "idle") this._label(label());
      }).catch((err) => warnOnce("camera file types not loaded; uploads retry when a file is chosen", err));
    }

    const node = this.node, self = this;
    const origRemoved = node.onRemoved;
    node.onRemoved = function () {
      self.dispose();
      return origRemoved?.apply(this, arguments);
    };
    const origOver = node.onDragOver;
    node.onDragOver = function (e) {
      const items = [...(e?.dataTransfer?.items || [])];
      if (items.some((i) => i.kind === "file")) return true;
      return origOver?.apply(this, arguments) ?? false;
    };
    const origDrop = node.onDragDrop;
    node.onDragDrop = function (e) {
      const file = [...(e?.dataTransfer?.files || [])].find((f) => isCameraFile(f.name));
      if (file) {
        self.upload(file);
        return true;
      }
      return origDrop?.apply(this, arguments) ?? false;
    };
  }

  dispose() {
    this.input?.remove();
  }

  _label(text) {
    this.widget.label = text;
    this.node.setDirtyCanvas?.(true, true);
  }

  upload(file) {
    this.attempts += 1;
    this.busy = this._upload(file);
    return this.busy;
  }

  async _upload(file) {
    try {
      await loadSuffixes();
    } catch (err) {
      return this._fail(`the server did not say which camera files it reads (${err?.message || err})`);
    }
    this.input.accept = suffixes.join(",");
    if (!isCameraFile(file.name)) {
      return this._fail(`${file.name} is not a camera file: choose a ${suffixes.join(", ")} trajectory`);
    }
    this.status = "uploading";
    this.error = "";
    this._label(`uploading ${file.name}...`);
    let value;
    try {
      value = await uploadCameraFile(file);
    } catch (err) {
      return this._fail(`${file.name}: ${err?.message || err}`);
    }
    let choices = null;
    try {
      choices = await cameraFileChoices();
    } catch (err) {
      warnOnce("camera file list not refreshed; the uploaded file is still selected", err);
    }
    this._select(value, choices);
    this.name = value;
    this.status = "ok";
    this._label(label());
    toast("success", "Camera file uploaded", value);
    return value;
  }

  _fail(text) {
    this.status = "error";
    this.error = text;
    this._label("upload failed - click to choose another file");
    toast("error", "Camera file upload failed", text);
    console.warn(`[SANA-WM] ${text}`);
    return null;
  }

  // Puts `value` in the combo's list (the server's fresh list when there is one) and selects it.
  _select(value, choices) {
    const w = this.node.widgets?.find((x) => x.name === "file");
    if (!w) return;
    const values = choices ? [...choices] : [...(w.options?.values || [])];
    if (!values.includes(value)) values.push(value);
    if (w.options) w.options.values = values;
    w.value = value;
    w.callback?.(value, app.canvas, this.node);
    this.node.graph?.setDirtyCanvas?.(true, true);
    this.node.sanawmEditor?.refresh?.();    // same name re-uploaded: redraw anyway
  }
}

function attach(node) {
  if (node.comfyClass !== FILE_NODE || node.sanawmUpload) return;
  const up = new CameraUpload(node);
  try {
    up.build();
    node.sanawmUpload = up;
  } catch (err) {
    try {
      up.dispose();
      const i = node.widgets?.indexOf(up.widget) ?? -1;
      if (i >= 0) node.widgets.splice(i, 1);
    } catch (_) { /* keep the plain widgets */ }
    node.sanawmUpload = null;
    warnOnce("camera file upload disabled, the plain widgets still work", err);
  }
}

app.registerExtension({
  name: "SanaWM.CameraUpload",
  async init() {
    try {
      await loadSuffixes();    // before any node is created, so the button shows the list at once
    } catch (err) {
      warnOnce("camera file types not loaded yet; the upload button asks again", err);
    }
  },
  nodeCreated(node) {
    try {
      attach(node);
    } catch (err) {
      warnOnce("camera file upload disabled, the plain widgets still work", err);
    }
  },
});
