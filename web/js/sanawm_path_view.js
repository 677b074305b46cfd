// SANA-WM camera path drawing: a top-down view and a side view (height and pitch over frames).
// Pure canvas code with no ComfyUI imports, so the editor can fall back to plain widgets if it fails.
// Input is the JSON of the /sana_wm/camera/preview_* routes: per-frame positions and camera axes in
// OpenCV world axes (x right, y down, z forward of frame 0), so "up" on screen is -y and forward is +z.

export const VIEW_W = 640;
export const VIEW_H = 420;
const TOP_H = 288;          // top-down panel height; the side panel fills the rest
const GAP = 6;
const PAD = 26;
const FRUSTUM_PX = 22;
// The colours live in sanawm_palette.json, which the Camera Preview node's drawing reads too.
const PALETTE = await fetch(new URL("./sanawm_palette.json", import.meta.url)).then((r) => {
  if (!r.ok) throw new Error(`[SANA-WM] palette: HTTP ${r.status}`);
  return r.json();
});
const BG = PALETTE.background;
const PANEL = PALETTE.panel;
const GRID = PALETTE.grid;
const TEXT = PALETTE.text;
const DIM = PALETTE.dim;

function niceStep(span, targetLines) {
  const raw = Math.max(span, 1e-9) / Math.max(targetLines, 1);
  const pow = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) {
    if (m * pow >= raw) return m * pow;
  }
  return 10 * pow;
}

function fmt(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return String(+v.toFixed(2));
  return String(+v.toPrecision(2));
}

// Path colour: time runs from cyan to amber; frames the node will not use are grey.
function frameColor(i, n, used) {
  if (used != null && i >= used) return DIM;
  const t = n > 1 ? i / (n - 1) : 0;
  const hue = PALETTE.path_hue_start + (PALETTE.path_hue_end - PALETTE.path_hue_start) * t;
  return `hsl(${hue.toFixed(0)}, ${PALETTE.path_saturation * 100}%, ${PALETTE.path_lightness * 100}%)`;
}

// Long paths are drawn through every k-th pose: a few thousand strokes at most, whatever the length.
function strideFor(n) {
  return Math.max(1, Math.ceil(n / 2000));
}

function norm2(x, y) {
  const l = Math.hypot(x, y);
  return l > 1e-9 ? [x / l, y / l, l] : [0, 0, 0];
}

// Frames that get a frustum: about `count` of them, always the first and the last.
function frustumFrames(n, count) {
  if (n <= 0) return [];
  const step = Math.max(1, Math.round((n - 1) / Math.max(count - 1, 1)));
  const out = [];
  for (let i = 0; i < n; i += step) out.push(i);
  if (out[out.length - 1] !== n - 1) out.push(n - 1);
  return out;
}

function panel(ctx, x, y, w, h, title) {
  ctx.fillStyle = PANEL;
  ctx.fillRect(x, y, w, h);
  ctx.strokeStyle = GRID;
  ctx.lineWidth = 1;
  ctx.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);
  ctx.fillStyle = TEXT;
  ctx.font = "11px sans-serif";
  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  ctx.fillText(title, x + 6, y + 5);
}

function tickEvery(fps, n, maxLabels) {
  const perSec = Math.max(1, Math.round(fps || 16));
  let secs = 1;
  while ((n / (perSec * secs)) > maxLabels) secs *= 2;
  return perSec * secs;
}

function drawTopDown(ctx, data, x0, y0, w, h) {
  panel(ctx, x0, y0, w, h, "top-down  (x right, z forward)");
  const P = data.positions;
  const n = P.length;
  let minX = Infinity, maxX = -Infinity, minZ = Infinity, maxZ = -Infinity;
  for (const p of P) {
    minX = Math.min(minX, p[0]); maxX = Math.max(maxX, p[0]);
    minZ = Math.min(minZ, p[2]); maxZ = Math.max(maxZ, p[2]);
  }
  const span = Math.max(maxX - minX, maxZ - minZ, 1e-3);
  const minSpan = Math.max(span, 0.2);
  const cxW = (minX + maxX) / 2, czW = (minZ + maxZ) / 2;
  const s = Math.min((w - 2 * PAD) / minSpan, (h - 2 * PAD) / minSpan);
  const cx = x0 + w / 2, cy = y0 + h / 2 + 6;
  const toScreen = (p) => [cx + (p[0] - cxW) * s, cy - (p[2] - czW) * s];

  // Grid and scale bar: one grid cell is `step` world units.
  const step = niceStep(minSpan, 6);
  ctx.save();
  ctx.beginPath();
  ctx.rect(x0 + 1, y0 + 1, w - 2, h - 2);
  ctx.clip();
  ctx.strokeStyle = GRID;
  ctx.lineWidth = 1;
  const gx0 = Math.floor((cxW - (w / 2) / s) / step) * step;
  for (let gx = gx0; gx <= cxW + (w / 2) / s; gx += step) {
    const sx = cx + (gx - cxW) * s;
    ctx.beginPath(); ctx.moveTo(sx, y0); ctx.lineTo(sx, y0 + h); ctx.stroke();
  }
  const gz0 = Math.floor((czW - (h / 2) / s) / step) * step;
  for (let gz = gz0; gz <= czW + (h / 2) / s; gz += step) {
    const sy = cy - (gz - czW) * s;
    ctx.beginPath(); ctx.moveTo(x0, sy); ctx.lineTo(x0 + w, sy); ctx.stroke();
  }

  const used = data.used_frames;
  const stride = strideFor(n);
  ctx.lineWidth = 2.5;
  ctx.lineCap = "round";
  for (let i = stride; i < n + stride - 1; i += stride) {
    const j = Math.min(i, n - 1);
    const a = toScreen(P[i - stride]), b = toScreen(P[j]);
    ctx.strokeStyle = frameColor(j, n, used);
    ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
  }

  // Frame scale on the path: a dot every second, labelled.
  const every = tickEvery(data.fps, n, 8);
  ctx.font = "10px sans-serif";
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  for (let i = every; i < n; i += every) {
    const [sx, sy] = toScreen(P[i]);
    ctx.fillStyle = "#e8ecf5";
    ctx.beginPath(); ctx.arc(sx, sy, 2.6, 0, 2 * Math.PI); ctx.fill();
    ctx.fillStyle = TEXT;
    ctx.fillText(`${i}`, sx + 5, sy - 7);
  }

  // Frustums: apex at the camera, the two edge rays are forward +- right (about 60 deg of view),
  // projected onto the ground plane, so a camera pitched up or down draws a shorter wedge.
  for (const i of frustumFrames(n, 9)) {
    const f = data.forward[i], r = data.right[i];
    const [ax, ay] = toScreen(P[i]);
    const edges = [-0.58, 0.58].map((k) => [f[0] + k * r[0], -(f[2] + k * r[2])]);
    ctx.strokeStyle = frameColor(i, n, used);
    ctx.fillStyle = "rgba(255,255,255,0.06)";
    ctx.lineWidth = 1.3;
    ctx.beginPath();
    ctx.moveTo(ax, ay);
    ctx.lineTo(ax + edges[0][0] * FRUSTUM_PX, ay + edges[0][1] * FRUSTUM_PX);
    ctx.lineTo(ax + edges[1][0] * FRUSTUM_PX, ay + edges[1][1] * FRUSTUM_PX);
    ctx.closePath();
    ctx.fill();
    ctx.stroke();
  }
  const start = toScreen(P[0]), end = toScreen(P[n - 1]);
  ctx.fillStyle = PALETTE.start;
  ctx.beginPath(); ctx.arc(start[0], start[1], 4.5, 0, 2 * Math.PI); ctx.fill();
  ctx.fillStyle = PALETTE.end;
  ctx.beginPath(); ctx.arc(end[0], end[1], 4.5, 0, 2 * Math.PI); ctx.fill();
  ctx.restore();

  // Scale bar (bottom left).
  const barPx = step * s;
  const bx = x0 + 10, by = y0 + h - 12;
  ctx.strokeStyle = TEXT;
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(bx, by - 4); ctx.lineTo(bx, by); ctx.lineTo(bx + barPx, by); ctx.lineTo(bx + barPx, by - 4);
  ctx.stroke();
  ctx.fillStyle = TEXT;
  ctx.font = "10px sans-serif";
  ctx.textAlign = "left";
  ctx.textBaseline = "bottom";
  ctx.fillText(`${fmt(step)} units`, bx + barPx + 6, by + 3);
}

function drawSide(ctx, data, x0, y0, w, h) {
  panel(ctx, x0, y0, w, h, "side  (height and pitch over frames)");
  const P = data.positions;
  const n = P.length;
  const left = x0 + PAD + 8, right = x0 + w - PAD;
  const top = y0 + 22, bottom = y0 + h - 22;
  let minH = Infinity, maxH = -Infinity;
  for (const p of P) { minH = Math.min(minH, -p[1]); maxH = Math.max(maxH, -p[1]); }
  const span = Math.max(maxH - minH, 0.1);
  const midH = (minH + maxH) / 2;
  const fx = (i) => left + (n > 1 ? (i / (n - 1)) * (right - left) : 0);
  const fy = (v) => (top + bottom) / 2 - ((v - midH) / span) * (bottom - top) * 0.8;

  // Frame axis with a tick every second, and the segment boundaries of an action string.
  const every = tickEvery(data.fps, n, 10);
  ctx.strokeStyle = GRID;
  ctx.fillStyle = TEXT;
  ctx.font = "10px sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(left, bottom + 2); ctx.lineTo(right, bottom + 2); ctx.stroke();
  for (let i = 0; i < n; i += every) {
    ctx.beginPath(); ctx.moveTo(fx(i), bottom - 1); ctx.lineTo(fx(i), bottom + 5); ctx.stroke();
    ctx.fillText(`${i}`, fx(i), bottom + 6);
  }
  ctx.setLineDash([3, 3]);
  ctx.textBaseline = "top";
  for (const seg of data.segments || []) {
    const sx = fx(seg.start);
    ctx.strokeStyle = "#3d4352";
    ctx.beginPath(); ctx.moveTo(sx, top); ctx.lineTo(sx, bottom); ctx.stroke();
    ctx.fillStyle = "#8891a5";
    ctx.textAlign = "left";
    ctx.fillText(seg.keys, sx + 3, top);
  }
  if (data.used_frames != null && data.used_frames < n) {
    const ux = fx(data.used_frames - 1);
    ctx.strokeStyle = "#f59e0b";
    ctx.beginPath(); ctx.moveTo(ux, top); ctx.lineTo(ux, bottom); ctx.stroke();
    ctx.fillStyle = "#f59e0b";
    ctx.textAlign = "right";
    ctx.fillText(`uses ${data.used_frames}`, ux - 3, top + 12);
  }
  ctx.setLineDash([]);

  ctx.lineWidth = 2;
  const stride = strideFor(n);
  for (let i = stride; i < n + stride - 1; i += stride) {
    const j = Math.min(i, n - 1), k = i - stride;
    ctx.strokeStyle = frameColor(j, n, data.used_frames);
    ctx.beginPath(); ctx.moveTo(fx(k), fy(-P[k][1])); ctx.lineTo(fx(j), fy(-P[j][1])); ctx.stroke();
  }
  // Pitch wedges: forward +- up, seen from the side along the camera's own heading.
  for (const i of frustumFrames(n, 14)) {
    const f = data.forward[i], u = data.up[i];
    const [hx, hz] = norm2(f[0], f[2]);
    const heading = hx === 0 && hz === 0 ? [0, 1] : [hx, hz];
    const along = (v) => v[0] * heading[0] + v[2] * heading[1];
    const ax = fx(i), ay = fy(-P[i][1]);
    const edges = [-0.4, 0.4].map((k) => {
      const d = [f[0] + k * u[0], f[1] + k * u[1], f[2] + k * u[2]];
      return norm2(along(d), d[1]);   // screen y grows downwards, world y too
    });
    ctx.strokeStyle = frameColor(i, n, data.used_frames);
    ctx.fillStyle = "rgba(255,255,255,0.06)";
    ctx.lineWidth = 1.2;
    ctx.beginPath();
    ctx.moveTo(ax, ay);
    ctx.lineTo(ax + edges[0][0] * 16, ay + edges[0][1] * 16);
    ctx.lineTo(ax + edges[1][0] * 16, ay + edges[1][1] * 16);
    ctx.closePath();
    ctx.fill();
    ctx.stroke();
  }
  ctx.fillStyle = TEXT;
  ctx.textAlign = "left";
  ctx.textBaseline = "bottom";
  ctx.fillText("frame", x0 + 4, y0 + h - 2);
}

/** Draws `data` (a preview route's JSON) onto `canvas`; with no data, draws the empty frame and `message`. */
export function drawCameraPath(canvas, data, message = "") {
  canvas.width = VIEW_W;
  canvas.height = VIEW_H;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = BG;
  ctx.fillRect(0, 0, VIEW_W, VIEW_H);
  const sideY = TOP_H + GAP;
  if (data && data.positions && data.positions.length) {
    drawTopDown(ctx, data, 0, 0, VIEW_W, TOP_H);
    drawSide(ctx, data, 0, sideY, VIEW_W, VIEW_H - sideY);
    const secs = (data.frames - 1) / (data.fps || 16);
    ctx.fillStyle = TEXT;
    ctx.font = "11px sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "top";
    ctx.fillText(`${data.frames} poses · ${secs.toFixed(1)} s @ ${data.fps || 16} fps`, VIEW_W - 8, 5);
  } else {
    panel(ctx, 0, 0, VIEW_W, TOP_H, "top-down");
    panel(ctx, 0, sideY, VIEW_W, VIEW_H - sideY, "side");
  }
  if (message) {
    ctx.fillStyle = "rgba(21,23,29,0.72)";
    ctx.fillRect(0, 0, VIEW_W, VIEW_H);
  }
}
