"""Writes API-format input values into a UI-format workflow (the graph the frontend saved).

The UI format stores widget values as a list in widget order; the frontend also lists every widget input by
name in the node's `inputs`, in that order, and follows each `seed` widget with its `control_after_generate`
value. That is all this needs: `make serve WEIGHTS=tiny` uses it to offer the shipped workflows sized for the
tiny checkpoints.
"""
from __future__ import annotations

import copy

CONTROL_AFTER = ("seed", "noise_seed")   # widgets the frontend follows with a control_after_generate value


def widget_slots(node: dict) -> dict[str, int]:
    """{widget name: index in widgets_values} for one UI node; ValueError when the two lists disagree."""
    slots, i = {}, 0
    for inp in node.get("inputs") or []:
        name = (inp.get("widget") or {}).get("name")
        if name is None:
            continue
        slots[name] = i
        i += 2 if name in CONTROL_AFTER else 1
    values = node.get("widgets_values") or []
    if i != len(values):
        raise ValueError(f"node {node.get('id')} ({node.get('type')}): {i} widget slots for {len(values)} values; "
                         "re-run scripts/build_workflows.py")
    return slots


def apply_api_inputs(ui: dict, api: dict) -> dict:
    """A copy of `ui` whose widget values are the literal inputs of the API graph with the same node ids."""
    ui = copy.deepcopy(ui)
    for node in ui["nodes"]:
        entry = api.get(str(node["id"]))
        if entry is None or entry["class_type"] != node["type"]:
            continue
        slots = widget_slots(node)
        for name, value in entry["inputs"].items():
            if name in slots and not isinstance(value, list):   # a list is a link, not a widget value
                node["widgets_values"][slots[name]] = value
    return ui
