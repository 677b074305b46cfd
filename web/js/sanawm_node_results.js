// SANA-WM node results: shows the `ui.text` a pack node returns (for example the intrinsics that
// SanaWMEstimateIntrinsics found and where they came from) in a read-only text box on the node. The
// 1.32.9 frontend keeps `ui.text` in its output store but draws nothing for custom nodes. The box is
// created by the first run and refreshed by each later one; it is never part of the saved workflow
// (widgets_values) nor of the prompt, and any failure here leaves the node as the frontend made it.
import { app } from "../../scripts/app.js";

const PREFIX = "SanaWM";               // only this pack's nodes
const WIDGET = "sanawm_result_text";
const LINE_PX = 16;
const PAD_PX = 40;                     // the DOM widget margins (2 x 10), padding, border and slack
const MAX_ROWS = 14;                   // longer text scrolls inside the box
const MIN_WIDTH = 420;
const FONT = "12px ui-monospace,Menlo,Consolas,monospace";
const SIDE_PX = 40;                    // widget margins + the box's padding and border

let warned = false;
function warnOnce(message, err) {
  if (warned) return;
  warned = true;
  console.warn(`[SANA-WM] ${message}`, err);
}

/** The text a node's `ui.text` carried, or null when this output has none. */
export function resultText(output) {
  const raw = output?.text;
  if (raw === undefined || raw === null) return null;
  const parts = (Array.isArray(raw) ? raw : [raw])
    .map((p) => (Array.isArray(p) ? p.join("") : String(p)));
  return parts.join("\n\n");
}

function injectStyle() {
  if (document.getElementById("sanawm-results-style")) return;
  const st = document.createElement("style");
  st.id = "sanawm-results-style";
  st.textContent = `
.sanawm-result-text{width:100%;height:100%;box-sizing:border-box;margin:0;padding:6px 8px;resize:none;
  border:1px solid var(--border-color,#4b5563);border-radius:4px;outline:none;overflow:auto;
  background:var(--comfy-input-bg,#1f2937);color:var(--input-text,#e5e7eb);
  font:${FONT};line-height:${LINE_PX}px;white-space:pre-wrap;overflow-wrap:anywhere}`;
  document.head.appendChild(st);
}

let charPx = 0;
function charWidth() {
  if (!charPx) {
    const ctx = document.createElement("canvas").getContext("2d");
    ctx.font = FONT;
    charPx = ctx.measureText("0123456789").width / 10 || 7.3;
  }
  return charPx;
}

/** Rows the text wraps to in a node this wide (the box wraps long lines instead of scrolling sideways). */
function rowCount(text, nodeWidth) {
  const perRow = Math.max(8, Math.floor((nodeWidth - SIDE_PX) / charWidth()));
  const rows = String(text ?? "").split("\n")
    .reduce((sum, line) => sum + Math.max(1, Math.ceil(line.length / perRow)), 0);
  return Math.min(MAX_ROWS, Math.max(1, rows));
}

/** The node's result box, created on first use. */
function resultBox(node) {
  const existing = node.widgets?.find((w) => w.name === WIDGET);
  if (existing) return existing;
  injectStyle();
  const area = document.createElement("textarea");
  area.className = "sanawm-result-text";
  area.readOnly = true;
  area.spellcheck = false;
  area.setAttribute("aria-label", "node result");
  const height = () => rowCount(area.value, node.size?.[0] ?? MIN_WIDTH) * LINE_PX + PAD_PX;
  const widget = node.addDOMWidget(WIDGET, "sanawm_text", area, {
    serialize: false,          // not sent in the prompt
    hideOnZoom: false,
    getValue: () => area.value,
    setValue: () => {},        // nothing outside a run may write it (a loaded workflow has no value for it)
    getMinHeight: height,
    getMaxHeight: height,
  });
  widget.serialize = false;    // not in widgets_values
  widget.sanawmElement = area;
  widget.sanawmHeight = height;
  return widget;
}

/** Writes `text` into the node's result box and makes the node tall enough to show it. */
export function showResultText(node, text) {
  const widget = resultBox(node);
  widget.sanawmElement.value = text;
  node.sanawmResultText = text;
  // Nodes 2.0 lays DOM widgets out with CSS, not getMinHeight: the box asks for its rows itself
  widget.sanawmElement.style.minHeight = `${widget.sanawmHeight()}px`;
  try {
    const width = Math.max(node.size[0], MIN_WIDTH);
    node.setSize([width, node.size[1]]);          // the text wraps to this width ...
    const need = node.computeSize();               // ... and the height follows from it
    node.setSize([Math.max(width, need[0]), Math.max(node.size[1], need[1])]);
  } catch (err) {
    warnOnce("could not resize a node for its result text", err);
  }
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "SanaWM.NodeResults",
  beforeRegisterNodeDef(nodeType, nodeData) {
    try {
      if (!String(nodeData?.name ?? "").startsWith(PREFIX)) return;
      const original = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (output) {
        const result = original?.apply(this, arguments);
        try {
          const text = resultText(output);
          if (text !== null) showResultText(this, text);
        } catch (err) {
          warnOnce("result text not shown; the node works as before", err);
        }
        return result;
      };
    } catch (err) {
      warnOnce("result text display disabled", err);
    }
  },
});
