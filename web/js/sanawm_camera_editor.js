// SANA-WM camera editor: a live path preview (and, for action strings, a timeline editor) on the
// SanaWMCameraFromActions and SanaWMLoadCamera nodes. The path always comes from the Python parser
// through the pack's /sana_wm/camera/preview_* routes; the only state is the node's own widgets, so
// saved workflows and the API format stay plain. Any failure here leaves the plain widgets working.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { drawCameraPath } from "./sanawm_path_view.js";
import { ActionTimeline } from "./sanawm_timeline.js";

const ACTION_NODE = "SanaWMCameraFromActions";
const FILE_NODE = "SanaWMLoadCamera";
const POLL_MS = 150;       // how often widget values are compared with the last preview request
const DEBOUNCE_MS = 220;   // quiet time after the last edit before the preview is requested

let warned = false;
function warnOnce(message, err) {
  if (warned) return;
  warned = true;
  console.warn(`[SANA-WM] ${message}`, err);
}

// A widget turned into a linked input: its value is not what the node will receive.
function linkedInput(node, names) {
  const inp = node.inputs?.find((i) => names.includes(i.widget?.name ?? i.name) && i.link != null);
  return inp ? (inp.widget?.name ?? inp.name) : null;
}

function widgetValue(node, name) {
  const w = node.widgets?.find((x) => x.name === name);
  return w ? w.value : undefined;
}

// What each node sends to its route; `null` means there is nothing to preview yet.
const SOURCES = {
  [ACTION_NODE]: {
    timeline: true,
    params(node) {
      const linked = linkedInput(node, ["action", "translation_speed", "rotation_speed_deg", "mapping"]);
      if (linked) return { linked };
      const p = {
        action: widgetValue(node, "action") ?? "",
        translation_speed: widgetValue(node, "translation_speed"),
        rotation_speed_deg: widgetValue(node, "rotation_speed_deg"),
        mapping: widgetValue(node, "mapping"),
        num_frames: widgetValue(node, "num_frames"),
      };
      const fps = widgetValue(node, "fps");
      if (fps !== undefined) p.fps = fps;
      return p;
    },
    request(p) {
      return api.fetchApi("/sana_wm/camera/preview_actions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(p),
      });
    },
  },
  [FILE_NODE]: {
    timeline: false,
    params(node) {
      const linked = linkedInput(node, ["file", "world_to_camera"]);
      if (linked) return { linked };
      const file = widgetValue(node, "file");
      if (!file) return null;
      const w2c = widgetValue(node, "world_to_camera");
      const p = { file: String(file), world_to_camera: w2c === true || w2c === "true" || w2c === 1 ? 1 : 0 };
      for (const name of ["num_frames", "fps"]) {
        const v = widgetValue(node, name);
        if (v !== undefined && v !== null && v !== "") p[name] = v;
      }
      return p;
    },
    request(p) {
      const q = new URLSearchParams(Object.entries(p).map(([k, v]) => [k, String(v)]));
      return api.fetchApi(`/sana_wm/camera/preview_file?${q}`);
    },
  },
};

function injectStyle() {
  if (document.getElementById("sanawm-editor-style")) return;
  const st = document.createElement("style");
  st.id = "sanawm-editor-style";
  st.textContent = `
.sanawm-preview{position:relative;width:100%;height:100%;min-height:120px}
.sanawm-preview canvas{width:100%;height:100%;display:block;object-fit:contain;border-radius:4px}
.sanawm-preview-msg{position:absolute;left:8px;right:8px;top:26px;padding:6px 8px;border-radius:4px;
  font:12px sans-serif;white-space:pre-wrap;word-break:break-word;display:none;pointer-events:auto}
.sanawm-preview-msg.error{display:block;background:rgba(127,29,29,.92);color:#fee2e2}
.sanawm-preview-msg.info{display:block;background:rgba(30,41,59,.92);color:#cbd5e1}`;
  document.head.appendChild(st);
}

/** The preview (and timeline) attached to one node; `node.sanawmEditor` points at it. */
class CameraEditor {
  constructor(node, source) {
    this.node = node;
    this.source = source;
    this.widgets = [];
    this.status = "idle";     // idle | pending | ok | error | unavailable
    this.error = "";
    this.data = null;
    this.lastKey = null;
    this.seq = 0;
    this.timer = null;
    this.pending = false;     // a preview is scheduled or in flight
    this.poll = null;
  }

  build() {
    injectStyle();
    const box = document.createElement("div");
    box.className = "sanawm-preview";
    this.canvas = document.createElement("canvas");
    this.msg = document.createElement("div");
    this.msg.className = "sanawm-preview-msg";
    box.append(this.canvas, this.msg);
    drawCameraPath(this.canvas, null, "");
    this._add("sanawm_path_preview", "sanawm_preview", box, { getMinHeight: () => 260 });

    if (this.source.timeline) {
      this.timeline = new ActionTimeline((action) => this._writeAction(action),
        (parsed) => String(widgetValue(this.node, "action") ?? "") === parsed);
      this._add("sanawm_action_timeline", "sanawm_timeline", this.timeline.root, {
        getMinHeight: () => 104, getMaxHeight: () => 140,
      });
    }
    this.poll = setInterval(() => this._tick(), POLL_MS);
    const origRemoved = this.node.onRemoved;
    const self = this;
    this.node.onRemoved = function () {
      self.dispose();
      return origRemoved?.apply(this, arguments);
    };
    requestAnimationFrame(() => {
      try {
        // room for the action textarea above the preview: the DOM widgets share the spare height
        const min = this.node.computeSize();
        const extra = this.source.timeline ? 70 : 0;
        this.node.setSize([Math.max(this.node.size[0], 480), Math.max(this.node.size[1], min[1] + extra)]);
        this.node.setDirtyCanvas?.(true, true);
      } catch (err) {
        warnOnce("could not resize the camera node", err);
      }
    });
    this._tick();
  }

  _add(name, type, element, options) {
    const w = this.node.addDOMWidget(name, type, element, {
      serialize: false, hideOnZoom: false, ...options,
    });
    w.serialize = false;      // not in widgets_values, not in the API prompt
    this.widgets.push(w);
    return w;
  }

  /** Removes everything this editor added; used on node removal and when setup fails half-way. */
  dispose() {
    clearInterval(this.poll);
    clearTimeout(this.timer);
    this.poll = this.timer = null;
    for (const w of this.widgets) {
      const i = this.node.widgets?.indexOf(w) ?? -1;
      if (i >= 0) this.node.widgets.splice(i, 1);
      try { w.onRemove?.(); } catch (_) { /* already gone */ }
    }
    this.widgets = [];
  }

  /** Requests the preview again even if no widget changed (a file re-uploaded under the same name). */
  refresh() {
    this.lastKey = null;
    this._tick();
  }

  _writeAction(action) {
    const w = this.node.widgets?.find((x) => x.name === "action");
    if (!w) return;
    w.value = action;                 // the textarea widget; also fires its callback
    this.node.graph?.setDirtyCanvas?.(true, true);
    this._tick();
  }

  // Compares the widget values with the last request and schedules a debounced preview.
  _tick() {
    if (!this.node.graph) return;     // not added yet; onRemoved disposes removed nodes
    let params;
    try {
      params = this.source.params(this.node);
    } catch (err) {
      return;
    }
    const key = JSON.stringify(params);
    if (key === this.lastKey) return;
    this.lastKey = key;
    clearTimeout(this.timer);
    if (params === null || params.linked) {
      ++this.seq;
      this.pending = false;
      this._show(null, "info", params ? `${params.linked} comes from a link: the preview shows it once it is `
        + "a widget again" : "select a camera file to preview its path", "the action string comes from a link");
      return;
    }
    this.status = "pending";
    this.pending = true;
    const seq = ++this.seq;     // only the newest request may update the view
    this.timer = setTimeout(() => this._fetch(params, seq), DEBOUNCE_MS);
  }

  async _fetch(params, seq) {
    let res, body;
    try {
      res = await this.source.request(params);
      body = await res.json().catch(() => null);
    } catch (err) {
      if (seq !== this.seq) return;
      this.pending = false;
      this._unavailable(`preview unavailable: ${err?.message || err}`);
      return;
    }
    if (seq !== this.seq) return;   // a newer edit is on its way
    this.pending = false;
    if (res.ok && body && Array.isArray(body.positions)) {
      this._show(body, null, "");
    } else if (res.status === 400 && body && body.error) {
      this._show(null, "error", String(body.error));
    } else {
      this._unavailable(`preview unavailable (HTTP ${res.status})`);
    }
  }

  _unavailable(text) {
    this.status = "unavailable";
    this.error = text;
    this.msg.className = "sanawm-preview-msg info";
    this.msg.textContent = text;
    drawCameraPath(this.canvas, this.data, text);
    this.timeline?.setEnabled(false, "the timeline needs the preview route");
  }

  _show(data, kind, text, why = "") {
    this.error = kind === "error" ? text : "";
    this.status = data ? "ok" : kind === "error" ? "error" : "idle";
    if (data) this.data = data;
    this.msg.className = "sanawm-preview-msg" + (kind ? ` ${kind}` : "");
    this.msg.textContent = text;
    drawCameraPath(this.canvas, this.data, text);
    if (this.timeline) {
      if (data) {
        this.timeline.setSegments(data.segments || [], data.key_map, data.fps, data.action ?? "");
        this.timeline.setEnabled(true);
      } else {
        const action = String(widgetValue(this.node, "action") ?? "");
        const empty = !why && !action.trim();
        if (empty) this.timeline.setSegments([], null, null, action);
        this.timeline.setEnabled(empty, empty ? "" : why || "fix the action string to edit the timeline");
      }
    }
    this.node.graph?.setDirtyCanvas?.(true, false);
  }
}

function attach(node) {
  const source = SOURCES[node.comfyClass];
  if (!source || node.sanawmEditor) return;
  const editor = new CameraEditor(node, source);
  try {
    editor.build();
    node.sanawmEditor = editor;
  } catch (err) {
    try { editor.dispose(); } catch (_) { /* keep the plain widgets */ }
    node.sanawmEditor = null;
    warnOnce("camera editor disabled, the plain widgets still work", err);
  }
}

app.registerExtension({
  name: "SanaWM.CameraEditor",
  nodeCreated(node) {
    try {
      attach(node);
    } catch (err) {
      warnOnce("camera editor disabled, the plain widgets still work", err);
    }
  },
});
