// SANA-WM action timeline: the segments of an action string as blocks whose widths follow their frame
// counts. Blocks are added from key buttons, resized by dragging their right edge and deleted with "x".
// The timeline never parses text: segments come from the Python parser (the preview route) and every
// edit is written back as a plain `<keys>-<frames>` string through `onChange`. What each key does comes
// with them (the route's `key_map`, from sana_wm_core/camera/keymaps.py): this file keeps no key table.

const SINGLE_KEYS = ["w", "s", "a", "d", "j", "l", "i", "k"];
const COMBOS = ["jw", "lw", "aw", "dw", "iw", "kw", "none"];
const DEFAULT_FRAMES = 20;

/** Joins segments back into the DSL: `[{keys:"w",frames:80}] -> "w-80"`. */
export function segmentsToAction(segments) {
  return segments.map((s) => `${s.keys || "none"}-${Math.max(1, Math.round(s.frames))}`).join(",");
}

/** `"dw"` + the served key map (`{w: "forward", d: "strafe right", ...}`) -> "strafe right + forward". */
export function describeKeys(keys, keyMap) {
  if (!keys || keys === "none") return "no key held";
  const m = keyMap || {};
  return [...keys].map((k) => m[k] || k).join(" + ");
}

function blockColor(keys, keyMap) {
  if (!keys || keys === "none") return "#4b5263";
  const m = keyMap || {};
  const kinds = [...keys].map((k) => (m[k] || "").split(" ")[0]);
  if (kinds.includes("yaw")) return kinds.some((k) => k === "forward" || k === "back") ? "#b45309" : "#c2410c";
  if (kinds.includes("pitch")) return "#7c3aed";
  if (kinds.includes("strafe")) return "#0f766e";
  return "#2563eb";
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function injectStyle() {
  if (document.getElementById("sanawm-timeline-style")) return;
  const st = el("style");
  st.id = "sanawm-timeline-style";
  st.textContent = `
.sanawm-tl{display:flex;flex-direction:column;gap:4px;font:11px sans-serif;color:#cfd5e3;
  box-sizing:border-box;width:100%;height:100%;padding:2px 0}
.sanawm-tl.disabled .sanawm-tl-track,.sanawm-tl.disabled .sanawm-tl-buttons{opacity:.35;pointer-events:none}
.sanawm-tl-track{display:flex;height:34px;background:#15171d;border:1px solid #2b2f3b;border-radius:4px;
  overflow:hidden;user-select:none}
.sanawm-tl-block{position:relative;min-width:0;display:flex;align-items:center;justify-content:center;
  border-right:1px solid #15171d;overflow:hidden;white-space:nowrap;cursor:pointer}
.sanawm-tl-block.selected{outline:2px solid #f8fafc;outline-offset:-2px}
.sanawm-tl-label{pointer-events:none;padding:0 9px 0 3px;overflow:hidden;text-overflow:ellipsis}
.sanawm-tl-label b{font-weight:700;margin-right:3px}
.sanawm-tl-del{position:absolute;top:0;left:1px;border:none;background:none;color:#e2e8f0;font-size:10px;
  line-height:10px;padding:1px;cursor:pointer;opacity:.8}
.sanawm-tl-handle{position:absolute;top:0;right:0;width:7px;height:100%;cursor:ew-resize;
  background:rgba(255,255,255,.18)}
.sanawm-tl-buttons{display:flex;flex-wrap:wrap;gap:3px}
.sanawm-tl-buttons button,.sanawm-tl-buttons input{font:11px monospace;background:#262a35;color:#e2e8f0;
  border:1px solid #3a4050;border-radius:3px;padding:1px 5px;cursor:pointer}
.sanawm-tl-buttons input{width:44px;cursor:text}
.sanawm-tl-info{color:#8891a5;min-height:13px}
.sanawm-tl-empty{margin:auto;color:#6b7285}`;
  document.head.appendChild(st);
}

/**
 * The timeline DOM: `root` goes into a DOM widget. `onChange(actionString)` is called on every edit.
 * `setSegments(segments, keyMap, fps, action)` replaces the blocks (ignored while a drag is in progress), `setEnabled(false, why)`
 * freezes editing while the text does not parse. `isCurrent(parsedAction)` says whether the text still
 * equals the string the blocks came from: edits made before a fresh parse arrives are refused, so a
 * click can never overwrite text the user has just typed.
 */
export class ActionTimeline {
  constructor(onChange, isCurrent = null) {
    injectStyle();
    this.onChange = onChange;
    this.isCurrent = isCurrent;
    this.sourceAction = null;
    this.segments = [];
    this.keyMap = null;       // key -> what it does, from the preview route
    this.fps = 16;
    this.selected = -1;
    this.drag = null;
    this.root = el("div", "sanawm-tl");
    this.track = el("div", "sanawm-tl-track");
    this.buttons = el("div", "sanawm-tl-buttons");
    this.info = el("div", "sanawm-tl-info");
    this.root.append(this.track, this.buttons, this.info);
    for (const keys of [...SINGLE_KEYS, ...COMBOS]) {
      const b = el("button", "sanawm-tl-add", `+${keys}`);
      b.dataset.keys = keys;
      b.addEventListener("click", (ev) => { ev.stopPropagation(); this.add(keys); });
      this.buttons.append(b);
    }
    this.custom = el("input", "sanawm-tl-custom");
    this.custom.placeholder = "keys";
    this.custom.title = "any key combination, e.g. 'dwi'; press Enter to add it";
    this.custom.addEventListener("keydown", (ev) => {
      ev.stopPropagation();
      if (ev.key === "Enter" && this.custom.value.trim()) {
        this.add(this.custom.value.trim().toLowerCase());
        this.custom.value = "";
      }
    });
    this.buttons.append(this.custom);
    this._onMove = (ev) => this._dragMove(ev);
    this._onUp = (ev) => this._dragEnd(ev);
    this.render();
  }

  get dragging() {
    return this.drag !== null;
  }

  setSegments(segments, keyMap, fps, sourceAction) {
    if (this.drag) return;
    this.sourceAction = sourceAction;
    this.segments = segments.map((s) => ({ keys: s.keys || "none", frames: s.frames }));
    if (keyMap) this.keyMap = keyMap;
    if (fps) this.fps = fps;
    if (this.selected >= this.segments.length) this.selected = -1;
    this.render();
  }

  setEnabled(on, why = "") {
    this.root.classList.toggle("disabled", !on);
    this.enabled = on;
    if (!on) this.info.textContent = why;
    else this._updateInfo();
  }

  // -- edits --------------------------------------------------------------------------------------
  _editable() {
    return this.enabled !== false && (!this.isCurrent || this.isCurrent(this.sourceAction));
  }

  _commit() {
    this.render();
    this.sourceAction = segmentsToAction(this.segments);
    this.onChange(this.sourceAction);
  }

  add(keys) {
    if (!this._editable()) return;
    const seg = { keys, frames: DEFAULT_FRAMES };
    const at = this.selected >= 0 ? this.selected + 1 : this.segments.length;
    this.segments.splice(at, 0, seg);
    this.selected = at;
    this._commit();
  }

  remove(index) {
    if (!this._editable()) return;
    this.segments.splice(index, 1);
    if (this.selected >= this.segments.length) this.selected = this.segments.length - 1;
    this._commit();
  }

  resize(index, frames) {
    const f = Math.max(1, Math.round(frames));
    if (this.segments[index].frames === f) return;
    this.segments[index].frames = f;
    this._commit();
  }

  // -- drag the right edge of a block -------------------------------------------------------------
  _dragStart(ev, index) {
    ev.preventDefault();
    ev.stopPropagation();
    if (!this._editable()) return;
    const total = this.segments.reduce((a, s) => a + s.frames, 0) || 1;
    const width = this.track.getBoundingClientRect().width || this.track.clientWidth || 1;
    this.drag = { index, x0: ev.clientX, frames0: this.segments[index].frames, pxPerFrame: width / total };
    window.addEventListener("pointermove", this._onMove, true);
    window.addEventListener("pointerup", this._onUp, true);
  }

  _dragMove(ev) {
    if (!this.drag) return;
    ev.preventDefault();
    ev.stopPropagation();
    const d = this.drag;
    this.resize(d.index, d.frames0 + (ev.clientX - d.x0) / d.pxPerFrame);
  }

  _dragEnd(ev) {
    if (!this.drag) return;
    this._dragMove(ev);
    this.drag = null;
    window.removeEventListener("pointermove", this._onMove, true);
    window.removeEventListener("pointerup", this._onUp, true);
  }

  // -- DOM ------------------------------------------------------------------------------------------
  _updateInfo() {
    const total = this.segments.reduce((a, s) => a + s.frames, 0);
    this.info.textContent = total
      ? `${this.segments.length} segments · ${total} frames → ${total + 1} poses · ${(total / this.fps).toFixed(1)} s`
      : "empty: add a segment with the buttons";
  }

  render() {
    for (const b of this.buttons.querySelectorAll("button.sanawm-tl-add")) {   // tooltips in the current key map
      const keys = b.dataset.keys;
      b.title = `add ${keys}-${DEFAULT_FRAMES}: ${describeKeys(keys, this.keyMap)} for ${DEFAULT_FRAMES} frames`;
    }
    this.track.replaceChildren();
    if (!this.segments.length) this.track.append(el("div", "sanawm-tl-empty", "no segments"));
    this.segments.forEach((seg, i) => {
      const b = el("div", "sanawm-tl-block");
      b.dataset.index = String(i);
      b.dataset.keys = seg.keys;
      b.dataset.frames = String(seg.frames);
      b.style.flex = `${seg.frames} 1 0px`;
      b.style.background = blockColor(seg.keys, this.keyMap);
      b.title = `${seg.keys}-${seg.frames}: ${describeKeys(seg.keys, this.keyMap)} for ${seg.frames} frames`;
      if (i === this.selected) b.classList.add("selected");
      const label = el("span", "sanawm-tl-label");
      label.append(el("b", null, seg.keys), document.createTextNode(String(seg.frames)));
      const del = el("button", "sanawm-tl-del", "×");
      del.title = "delete this segment";
      del.addEventListener("pointerdown", (ev) => ev.stopPropagation());
      del.addEventListener("click", (ev) => { ev.stopPropagation(); this.remove(i); });
      const handle = el("div", "sanawm-tl-handle");
      handle.title = "drag to change the duration";
      handle.addEventListener("pointerdown", (ev) => this._dragStart(ev, i));
      b.addEventListener("pointerdown", (ev) => ev.stopPropagation());
      b.addEventListener("click", (ev) => {
        ev.stopPropagation();
        this.selected = this.selected === i ? -1 : i;
        this.render();
      });
      b.append(label, del, handle);
      this.track.append(b);
    });
    if (this.enabled !== false) this._updateInfo();
  }
}
