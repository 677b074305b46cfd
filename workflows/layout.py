"""Lays a UI-format workflow out from its graph: groups "Camera", "Stage 1", "Stage 2", "Output" left to right,
each node in a column by its depth inside its group, with room reserved under the nodes that grow when they
show a result (the Load Image preview, the intrinsics text, the camera preview image, the video), a Note on what
to edit first, and the opening view framed on the camera group.

Nothing here knows node ids or coordinates: the group comes from the node's category (as the server declares
it) and from the links, so the layout follows whatever graph `workflows/definitions.py` builds.
scripts/build_workflows.py calls `lay_out` with the node sizes the real frontend gave, and re-runs it with the
sizes the frontend settles on after loading the result.
"""
from __future__ import annotations

import copy

GROUPS = ("Camera", "Stage 1", "Stage 2", "Output")
GROUP_COLOURS = {"Camera": "#3f789e", "Stage 1": "#8A8", "Stage 2": "#a1309b", "Output": "#b58b2a"}
TITLE_H = 32          # a node's title bar, drawn above its `pos`
GROUP_TITLE_H = 44    # a group's title band
PAD = 24              # between a group's edge and its nodes
GAP_X, GAP_Y = 60, 70  # between columns, between stacked nodes (title bars included in neither)
GROUP_GAP = 60
# Height added under a node that shows a result in place: what appears there on load or after a run. The
# frontends draw such a result inside the node's box when it is tall enough, and grow it otherwise.
RESULT_ROOM = {"LoadImage": 300, "SanaWMEstimateIntrinsics": 140, "SanaWMCameraPreview": 260,
               "SanaWMSaveVideo": 300, "SanaWMStreamToVideo": 300, "SaveVideo": 300, "PreviewImage": 260, "SaveImage": 260, "PreviewAny": 120}
# Width such a node needs for its result to fit (the intrinsics text box is wider than the node's widgets).
RESULT_WIDTH = {"SanaWMEstimateIntrinsics": 430, "SanaWMCameraPreview": 420, "SanaWMSaveVideo": 400, "SanaWMStreamToVideo": 400}
NOTE_TYPE = "Note"
NOTE_SIZE = (480, 200)
NOTE_TEXT = (
    "Start here\n"
    "1. Load Image: pick your first frame.\n"
    "2. Camera group: type the action string (w/a/s/d move, i/j/k/l look, e.g. w-80,jw-40) or drag segments "
    "in the timeline; the preview shows the path.\n"
    "3. Stage 1: type the prompt once on Image To Video (the refiner reuses it).\n"
    "4. Press Run (top bar). Missing weights are named before anything runs.")


def group_of(node_type: str, category: str, has_consumers: bool) -> str:
    """Which group a node belongs to, from its category and whether anything reads its outputs."""
    cat = (category or "").lower()
    if cat.startswith("sana-wm/camera") or node_type == "LoadImage" or cat == "image":
        return "Camera"
    if cat.startswith("sana-wm/refine"):
        return "Stage 2"
    if cat.startswith("sana-wm/output") or "video" in cat or not has_consumers:
        return "Output"
    return "Stage 1"


def _links(ui: dict) -> list[tuple[str, str]]:
    """(source node id, target node id) for every link, ids as strings."""
    out = []
    for link in ui.get("links") or []:
        if isinstance(link, dict):
            out.append((str(link["origin_id"]), str(link["target_id"])))
        else:   # [id, origin, origin_slot, target, target_slot, type]
            out.append((str(link[1]), str(link[3])))
    return out


def _depths(ids: list[str], links: list[tuple[str, str]]) -> dict[str, int]:
    """Longest path from a source, counting only links between `ids` (a node sits right of what it reads)."""
    inside = set(ids)
    parents = {i: [a for a, b in links if b == i and a in inside] for i in ids}
    depth: dict[str, int] = {}

    def visit(i: str, seen: frozenset) -> int:
        if i not in depth:
            depth[i] = 1 + max((visit(p, seen | {i}) for p in parents[i] if p not in seen), default=-1)
        return depth[i]

    for i in ids:
        visit(i, frozenset())
    return depth


def box_height(node: dict) -> float:
    """The node's height on the canvas once its result shows (title bar not included)."""
    return float(node["size"][1]) + RESULT_ROOM.get(node["type"], 0)


def lay_out(ui: dict, categories: dict[str, str], viewport: tuple[int, int] = (1400, 900)) -> dict:
    """A copy of `ui` with new node positions, one group per stage, a Note and a framed opening view.
    `categories`: node type -> category (the server's /object_info); the Note is added when missing."""
    ui = copy.deepcopy(ui)
    nodes = [n for n in ui["nodes"] if n["type"] != NOTE_TYPE]
    links = _links(ui)
    sources = {a for a, _ in links}
    members: dict[str, list[dict]] = {g: [] for g in GROUPS}
    for n in nodes:
        n["size"] = [max(float(n["size"][0]), RESULT_WIDTH.get(n["type"], 0)), float(n["size"][1])]
        members[group_of(n["type"], categories.get(n["type"], ""), str(n["id"]) in sources)].append(n)

    x, top = 0.0, 0.0
    groups = []
    note = next((n for n in ui["nodes"] if n["type"] == NOTE_TYPE), None)
    for name in GROUPS:
        items = members[name]
        if not items:
            continue
        depth = _depths([str(n["id"]) for n in items], links)
        columns: dict[int, list[dict]] = {}
        for n in sorted(items, key=lambda n: (depth[str(n["id"])], n.get("order", 0))):
            columns.setdefault(depth[str(n["id"])], []).append(n)
        cx = x + PAD
        bottom = top + GROUP_TITLE_H
        for d in sorted(columns):
            y = top + GROUP_TITLE_H + PAD
            if name == "Camera" and d == 0 and note is not None:   # the Note heads the first column
                note["pos"] = [cx, y + TITLE_H]
                note["size"] = list(NOTE_SIZE)
                y += TITLE_H + NOTE_SIZE[1] + GAP_Y
            width = max(float(n["size"][0]) for n in columns[d])
            if name == "Camera" and d == 0 and note is not None:
                width = max(width, NOTE_SIZE[0])
            for n in columns[d]:
                n["pos"] = [cx, y + TITLE_H]
                y += TITLE_H + box_height(n) + GAP_Y
            bottom = max(bottom, y - GAP_Y)
            cx += width + GAP_X
        right = cx - GAP_X + PAD
        groups.append({"title": name, "bounding": [x, top, right - x, bottom + PAD - top],
                       "color": GROUP_COLOURS[name], "font_size": 24, "flags": {}})
        x = right + GROUP_GAP
    ui["groups"] = groups
    ui.setdefault("extra", {})["ds"] = _opening_view(groups[0]["bounding"] if groups else [0, 0, 800, 600],
                                                     viewport)
    return ui


def _opening_view(camera: list[float], viewport: tuple[int, int]) -> dict:
    """Scale and offset that show the whole Camera group below the frontend's top bar (where Run is)."""
    bar, margin = 90, 70   # the top bar (Run) above, the side bar on the left
    w, h = viewport
    scale = min(1.0, (w - 2 * margin) / camera[2], (h - bar - margin) / camera[3])
    scale = round(max(scale, 0.3), 3)
    # screen = (canvas + offset) * scale
    return {"scale": scale, "offset": [round(margin / scale - camera[0], 1), round(bar / scale - camera[1], 1)]}


def overlaps(boxes: dict[str, tuple[float, float, float, float]]) -> list[tuple[str, str]]:
    """Pairs of (x, y, w, h) boxes that intersect (touching edges do not count)."""
    items = sorted(boxes.items())
    found = []
    for i, (a, (ax, ay, aw, ah)) in enumerate(items):
        for b, (bx, by, bw, bh) in items[i + 1:]:
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                found.append((a, b))
    return found
