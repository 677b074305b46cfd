"""Refuses, at POST /prompt, values ComfyUI's own validation lets through or reports vaguely.

ComfyUI checks numbers only against min/max, so NaN passes every range check and reaches the nodes; a list
where a number belongs is taken for a link and answered with "Bad linked input" or a bare KeyError; and a
`path_or_hub_id` naming any server path would be looked up. This middleware reads the prompt before
ComfyUI does and answers HTTP 400 in ComfyUI's own format (`error` + `node_errors`, which the frontend
highlights), one line per input, naming the node, the input, the valid range and the value received. It
judges only this pack's nodes (class names starting with "SanaWM"); the rules live in the engine
(`sana_wm_core.camera.file_values.finite_number`, `sana_wm_core.weights.check_model_reference`). Prompts saved
with earlier versions of the pack's nodes are refused first, naming what changed (`nodes/compat.py`). When the
values are fine, the weights every loader of the prompt needs are checked (nodes/weights_check.py): files
missing and not downloadable now are answered with one 400 listing them all.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable

log = logging.getLogger("sana_wm")
PREFIX = "SanaWM"
MODEL_REFERENCE_INPUTS = ("path_or_hub_id", "gemma3_folder")
_PROMPT_PATHS = ("/prompt", "/api/prompt")


def _is_link(value: list, prompt: dict) -> bool:
    return (len(value) == 2 and isinstance(value[0], (str, int)) and not isinstance(value[0], bool)
            and str(value[0]) in prompt and isinstance(value[1], int) and not isinstance(value[1], bool)
            and value[1] >= 0)


def _range(opts: dict) -> str:
    lo, hi = opts.get("min"), opts.get("max")
    if lo is None and hi is None:
        return ""
    return f" between {lo if lo is not None else '-inf'} and {hi if hi is not None else 'inf'}"


def _error(name: str, message: str, value: Any) -> dict:
    return {"type": "sana_wm_invalid_input", "message": message, "details": name,
            "extra_info": {"input_name": name, "received_value": repr(value)[:200]}}


def input_errors(prompt: dict, node_classes: dict, model_roots: Callable[[], list[str]]) -> dict:
    """ComfyUI-shaped `node_errors` for this pack's nodes in `prompt` (empty when all is well)."""
    from ..sana_wm_core.weights import check_model_reference

    found: dict = {}
    for nid, node in prompt.items():
        if not isinstance(node, dict) or not str(node.get("class_type", "")).startswith(PREFIX):
            continue
        cls = node_classes.get(node["class_type"])
        inputs = node.get("inputs")
        if cls is None or not isinstance(inputs, dict):
            continue  # ComfyUI's own validation reports these
        try:
            declared = cls.INPUT_TYPES()
        except Exception:  # noqa: BLE001 - ComfyUI will report a broken node itself
            continue
        spec = {**declared.get("required", {}), **declared.get("optional", {})}
        errors = []
        for name, value in inputs.items():
            entry = spec.get(name)
            if not entry:
                continue
            kind = entry[0]
            opts = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            if isinstance(value, list):
                what = f"an {kind} value" if kind == "INT" else (   # V3 declares dropdowns as "COMBO"
                    f"a {kind} value" if isinstance(kind, str) and kind != "COMBO" else "one of its choices")
                if not _is_link(value, prompt):
                    errors.append(_error(name, f"input '{name}' got the list {value!r:.80}: give {what}, or a "
                                               "link [node_id, output_index] to a node of this prompt", value))
                    continue
                source = prompt[str(value[0])]
                outs = getattr(node_classes.get(source.get("class_type")), "RETURN_TYPES", None)
                if isinstance(outs, (tuple, list)) and value[1] >= len(outs):
                    errors.append(_error(name, f"input '{name}' got the list {value!r:.80}, a link to output "
                                               f"{value[1]} of node {value[0]} ({source.get('class_type')}), "
                                               f"which has {len(outs)} output(s): give {what} or a valid link",
                                         value))
                continue
            if kind in ("INT", "FLOAT"):
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    errors.append(_error(name, f"input '{name}' must be a number{_range(opts)}, got "
                                               f"{type(value).__name__} {value!r:.80}", value))
                    continue
                try:
                    number = float(value)
                except ValueError:
                    continue  # ComfyUI says it cannot convert the text
                if not math.isfinite(number):
                    errors.append(_error(name, f"input '{name}' must be a finite number{_range(opts)}, got "
                                               f"{value!r}", value))
            elif name in MODEL_REFERENCE_INPUTS and isinstance(value, str):
                try:
                    check_model_reference(value, model_roots(), label=name)
                except ValueError as exc:
                    errors.append(_error(name, str(exc), value))
        if errors:
            found[str(nid)] = {"errors": errors, "dependent_outputs": [], "class_type": node["class_type"]}
    return found


def _display_names(prompt: dict, node_classes: dict) -> dict[str, str]:
    """{class_type: the name the node search shows} for the pack's nodes of `prompt`."""
    names = {}
    for node in prompt.values():
        kind = str(node.get("class_type", "")) if isinstance(node, dict) else ""
        cls = node_classes.get(kind)
        if kind.startswith(PREFIX) and cls is not None and hasattr(cls, "GET_SCHEMA"):
            try:
                names[kind] = cls.GET_SCHEMA().display_name or kind
            except Exception:  # noqa: BLE001 - a broken schema is ComfyUI's to report
                pass
    return names


def _middleware():
    from aiohttp import web

    @web.middleware
    async def sana_wm_prompt_guard(request, handler):
        if request.method == "POST" and request.path in _PROMPT_PATHS:
            try:
                body = await request.json()   # aiohttp keeps the body: ComfyUI's handler reads it again
            except Exception:  # noqa: BLE001 - malformed JSON is ComfyUI's to answer
                body = None
            prompt = body.get("prompt") if isinstance(body, dict) else None
            if isinstance(prompt, dict):
                import nodes as comfy_nodes

                from .models import model_roots
                from .weights_check import WEIGHTS_ERROR, weights_errors

                from .compat import changed_node_errors

                errors = changed_node_errors(prompt) or input_errors(prompt, comfy_nodes.NODE_CLASS_MAPPINGS,
                                                                     model_roots)
                if not errors:   # bad values first; then the weights of every loader, in one message
                    errors, message = weights_errors(prompt, _display_names(prompt, comfy_nodes.NODE_CLASS_MAPPINGS))
                    if errors:
                        return web.json_response({"error": {"type": WEIGHTS_ERROR, "message": message,
                                                            "details": message, "extra_info": {}},
                                                  "node_errors": errors}, status=400)
                if errors:
                    lines = [f"{e['message']}" for ne in errors.values() for e in ne["errors"]]
                    return web.json_response({"error": {"type": "prompt_outputs_failed_validation",
                                                        "message": "Prompt outputs failed validation",
                                                        "details": "\n".join(lines), "extra_info": {}},
                                              "node_errors": errors}, status=400)
        return await handler(request)

    return sana_wm_prompt_guard


def _install() -> None:
    try:
        from server import PromptServer
    except ImportError:
        return
    inst = getattr(PromptServer, "instance", None)
    if inst is None or getattr(inst, "_sana_wm_prompt_guard", False):
        return
    try:
        inst.app.middlewares.append(_middleware())
        inst._sana_wm_prompt_guard = True
    except RuntimeError as exc:  # the app already started: ComfyUI's own validation still applies
        log.warning("SANA-WM: prompt input guard not installed: %s", exc)


_install()
