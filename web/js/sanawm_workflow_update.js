// SANA-WM saved-workflow update. A UI workflow saved before the Stage-1 model, its conditioning and its
// latent became core types has SANA-WM Image To Video with a `num_frames` widget and one SANAWM_CONDITIONING
// output, and SANA-WM Sampler with one `conditioning` input. The frontend maps `widgets_values` by position,
// so such a workflow would load with width = the old num_frames and height = the old width. Before the graph
// is configured (`beforeConfigureGraph` hands extensions the raw workflow), this rewrites those nodes to the
// new layout: the widgets back in their places, the one conditioning link replaced by positive / negative /
// latent, and the old frame count moved to the camera node (`afterConfigureGraph`, by widget name). Both
// camera nodes trim their path to `num_frames` as the old Image To Video did, so the video is the same.
// A node it cannot update exactly (its camera not traced to a camera node, its output feeding another node,
// a subgraph) stays as saved: queueing it is refused by the server naming what changed (nodes/compat.py).
// A toast says which; any failure here leaves the workflow as saved (the server still refuses it).
import { app } from "../../scripts/app.js";

const I2V = "SanaWMImageToVideo";
const SAMPLER = "SanaWMSampler";
const CAMERA_NODES = new Set(["SanaWMCameraFromActions", "SanaWMLoadCamera"]);   // both trim to num_frames
const PASS_THROUGH = { SanaWMCameraPreview: 1 };          // node type -> output slot that is its camera input
const FORMER_TYPES = { SANAWM_MODEL: "MODEL", SANAWM_LATENT: "LATENT", "LATENT,SANAWM_LATENT": "LATENT" };
const OLD_I2V_WIDGETS = 5;                                // prompt, negative_prompt, num_frames, width, height
const LINK_FIELDS = ["id", "origin_id", "origin_slot", "target_id", "target_slot", "type"];

let pending = [];     // camera frame counts to set once the graph is configured: {camera, frames}
let report = null;    // what the last load changed / left, for the toast

const field = (link, name) => (Array.isArray(link) ? link[LINK_FIELDS.indexOf(name)] : link?.[name]);
function setField(link, name, value) {
  if (Array.isArray(link)) link[LINK_FIELDS.indexOf(name)] = value;
  else link[name] = value;
}
/** A new link in the format of `like` (arrays in a 0.4 workflow, objects in the newer one). */
function newLink(like, values) {
  return Array.isArray(like) || like === undefined ? LINK_FIELDS.map((f) => values[f]) : { ...values };
}

function isOldImageToVideo(node) {
  return (node.outputs || []).some((o) => o?.type === "SANAWM_CONDITIONING" || o?.name === "conditioning")
    || (Array.isArray(node.widgets_values) && node.widgets_values.length === OLD_I2V_WIDGETS);
}

/** The camera node whose path reaches `node`'s `camera` input (through Camera Preview), or null. */
function cameraSource(node, nodes, links) {
  for (let hops = 0; hops < 8 && node; hops++) {
    const input = (node.inputs || []).find((i) => i?.name === "camera");
    const link = input?.link == null ? null : links.get(String(input.link));
    if (!link) return null;
    const origin = nodes.get(String(field(link, "origin_id")));
    if (!origin) return null;
    if (CAMERA_NODES.has(origin.type)) return origin;
    if (PASS_THROUGH[origin.type] !== field(link, "origin_slot")) return null;
    node = origin;
  }
  return null;
}

/** Why `node` (an old Image To Video) cannot be updated exactly, or "" when it can. */
function blocker(node, nodes, links, outLinks) {
  const values = node.widgets_values;
  if (!Array.isArray(values) || values.length !== OLD_I2V_WIDGETS) return "its saved widgets are not the old five";
  if ((node.inputs || []).some((i) => i?.name === "num_frames" && i.link != null)) return "its num_frames is connected";
  for (const link of outLinks) {
    const target = nodes.get(String(field(link, "target_id")));
    const input = target?.inputs?.[field(link, "target_slot")];
    if (target?.type !== SAMPLER || input?.name !== "conditioning") return "its conditioning feeds another node";
  }
  const frames = Number(values[2]) || 0;
  if (frames > 0 && !cameraSource(node, nodes, links)) return "its camera does not come from a SANA-WM camera node";
  return "";
}

const slot = (name, type, extra) => ({ name, localized_name: name, type, ...extra });

/** Rewrites one old Image To Video and the samplers it feeds in `graph` (raw workflow data). */
function updateImageToVideo(graph, node, nodes, links, nextId) {
  const outLinks = graph.links.filter((l) => String(field(l, "origin_id")) === String(node.id));
  const why = blocker(node, nodes, links, outLinks);
  if (why) {
    report.left.push(`Image To Video #${node.id}: ${why}`);
    return nextId;
  }
  const [prompt, negative, frames, width, height] = node.widgets_values;
  node.widgets_values = [prompt, negative, width, height];
  node.inputs = (node.inputs || []).filter((i) => i?.name !== "num_frames");
  node.outputs = [slot("positive", "CONDITIONING", { links: [], slot_index: 0 }),
    slot("negative", "CONDITIONING", { links: [], slot_index: 1 }),
    slot("latent", "LATENT", { links: [], slot_index: 2 })];
  for (const link of outLinks) {
    const sampler = nodes.get(String(field(link, "target_id")));
    const at = field(link, "target_slot");
    for (const other of graph.links)      // the sampler's later inputs move two places down
      if (String(field(other, "target_id")) === String(sampler.id) && field(other, "target_slot") > at)
        setField(other, "target_slot", field(other, "target_slot") + 2);
    setField(link, "type", "CONDITIONING");
    const ids = [field(link, "id"), nextId++, nextId++];
    graph.links.push(newLink(link, { id: ids[1], origin_id: node.id, origin_slot: 1, target_id: sampler.id,
      target_slot: at + 1, type: "CONDITIONING" }));
    graph.links.push(newLink(link, { id: ids[2], origin_id: node.id, origin_slot: 2, target_id: sampler.id,
      target_slot: at + 2, type: "LATENT" }));
    sampler.inputs.splice(at, 1, slot("positive", "CONDITIONING", { link: ids[0] }),
      slot("negative", "CONDITIONING", { link: ids[1] }), slot("latent", "LATENT", { link: ids[2] }));
    ids.forEach((id, i) => node.outputs[i].links.push(id));
    report.updated.push(`Sampler #${sampler.id}: 'conditioning' -> positive / negative / latent`);
  }
  const camera = cameraSource(node, nodes, links);
  if (Number(frames) > 0) pending.push({ camera: camera.id, frames: Number(frames), from: node.id });
  report.updated.push(`Image To Video #${node.id}: widgets back in place (width ${width}, height ${height})`);
  return nextId;
}

const hasOldSampler = (node) => node.type === SAMPLER && (node.inputs || []).some((i) => i?.name === "conditioning");

/** Whether a raw workflow holds anything saved with the earlier nodes (a cheap look before copying it). */
export function hasFormerNodes(graph) {
  const nodes = [...(graph?.nodes || []), ...(graph?.definitions?.subgraphs || []).flatMap((g) => g.nodes || [])];
  return nodes.some((n) => (n.type === I2V && isOldImageToVideo(n)) || hasOldSampler(n)
    || (String(n.type || "").startsWith("SanaWM")
      && [...(n.inputs || []), ...(n.outputs || [])].some((s) => s && FORMER_TYPES[s.type])));
}

/** Updates the old nodes of a raw workflow in place; returns whether it had any. */
export function updateSavedWorkflow(graph) {
  pending = [];
  report = { updated: [], left: [], frames: [] };
  if (!graph || !Array.isArray(graph.nodes) || !Array.isArray(graph.links)) return false;
  const nodes = new Map(graph.nodes.map((n) => [String(n.id), n]));
  const links = new Map(graph.links.map((l) => [String(field(l, "id")), l]));
  const old = graph.nodes.filter((n) => n.type === I2V && isOldImageToVideo(n));
  let nextId = Math.max(Number(graph.last_link_id) || 0, ...graph.links.map((l) => Number(field(l, "id")) || 0)) + 1;
  for (const node of old) nextId = updateImageToVideo(graph, node, nodes, links, nextId);
  if (graph.last_link_id !== undefined) graph.last_link_id = nextId - 1;
  if (graph.state && graph.state.lastLinkId !== undefined) graph.state.lastLinkId = nextId - 1;
  for (const node of graph.nodes) {
    if (hasOldSampler(node))
      report.left.push(`Sampler #${node.id}: its 'conditioning' does not come from an Image To Video it could update`);
    if (!String(node.type || "").startsWith("SanaWM")) continue;
    for (const s of [...(node.inputs || []), ...(node.outputs || [])])
      if (s && FORMER_TYPES[s.type]) s.type = FORMER_TYPES[s.type];
  }
  for (const link of graph.links)
    if (FORMER_TYPES[field(link, "type")]) setField(link, "type", FORMER_TYPES[field(link, "type")]);
  for (const sub of graph.definitions?.subgraphs || [])
    for (const node of sub.nodes || [])
      if ((node.type === I2V && isOldImageToVideo(node)) || hasOldSampler(node))
        report.left.push(`${node.type} #${node.id} in subgraph '${sub.name || sub.id}'`);
  return old.length > 0 || report.left.length > 0;
}

/** The old frame counts onto the camera nodes (trimming their path only where the old count was shorter). */
function applyFrames(graph) {
  for (const { camera, frames, from } of pending) {
    const widget = graph.getNodeById(camera)?.widgets?.find((w) => w.name === "num_frames");
    if (!widget) {
      report.left.push(`camera #${camera}: no num_frames widget for Image To Video #${from}'s ${frames} frames`);
      continue;
    }
    const now = Number(widget.value) || 0;
    if (now === 0 || frames < now) {
      widget.value = frames;
      report.frames.push(`camera #${camera} num_frames ${now} -> ${frames} (Image To Video #${from}'s old num_frames)`);
    } else {
      report.frames.push(`camera #${camera} keeps num_frames ${now} (Image To Video #${from} asked ${frames})`);
    }
  }
  pending = [];
}

function toast(severity, summary, detail) {
  try {
    app.extensionManager?.toast?.add({ severity, summary, detail, life: 20000 });
  } catch (_) { /* no toast service: the console line below still says it */ }
}

function announce() {
  const done = [...report.updated, ...report.frames];
  if (done.length) {
    const text = `${done.join("; ")}. The frame count now lives on the camera node; save the workflow to keep `
      + "this update.";
    console.warn(`[SANA-WM] workflow saved with earlier node versions, updated: ${text}`);
    toast("warn", "SANA-WM: workflow updated to the current nodes", text);
  }
  if (report.left.length) {
    const text = `${report.left.join("; ")}. These nodes were saved with earlier versions (Image To Video had `
      + "num_frames and one conditioning output, Sampler one conditioning input) and stay as saved: queueing is "
      + "refused until you reconnect Image To Video's positive / negative / latent to the Sampler, retype width "
      + "and height, and set num_frames on the camera node.";
    console.warn(`[SANA-WM] workflow saved with earlier node versions, not updated: ${text}`);
    toast("error", "SANA-WM: workflow saved with earlier node versions", text);
  }
}

app.registerExtension({
  name: "SanaWM.WorkflowUpdate",
  async beforeConfigureGraph(graphData) {
    try {   // on a copy, so that a failure half-way leaves the workflow as saved
      report = null;
      if (!hasFormerNodes(graphData)) return;
      const copy = structuredClone(graphData);
      if (updateSavedWorkflow(copy)) Object.assign(graphData, copy);
    } catch (err) {
      pending = [];
      report = null;
      console.warn("[SANA-WM] could not update a workflow saved with earlier node versions; it loads as saved", err);
    }
  },
  async afterConfigureGraph() {
    try {
      if (!report) return;
      applyFrames(app.graph);
      announce();
    } catch (err) {
      console.warn("[SANA-WM] workflow update: frame counts not moved", err);
    } finally {
      report = null;
    }
  },
});
