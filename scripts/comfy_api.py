"""A small client for ComfyUI's HTTP + websocket API (stdlib + websocket-client).

Shared by `scripts/queue_batch.py` and the test-suite, so both speak to the server the same way:
POST /prompt, follow the websocket until the prompt finishes or fails, read /history, fetch /view,
upload with /upload/image, and POST /interrupt.
"""
from __future__ import annotations

import json
import mimetypes
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import websocket  # websocket-client


def combo_options(decl: list) -> list:
    """The choices of a dropdown input as /object_info declares it: V1 `[[choices...], {...}]` or V3
    `["COMBO", {"options": [choices...], ...}]`."""
    if isinstance(decl[0], list):
        return decl[0]
    if decl[0] == "COMBO" and len(decl) > 1 and isinstance(decl[1].get("options"), list):
        return decl[1]["options"]
    raise ValueError(f"not a dropdown input: {decl!r}")


class ComfyError(RuntimeError):
    """The server refused or failed a prompt; `details` is the server's JSON, `status` its HTTP code."""

    def __init__(self, message: str, details: Any = None, status: int | None = None):
        super().__init__(message)
        self.details = details
        self.status = status


def describe_node_errors(node_errors: dict, error: dict | None = None) -> str:
    """One line per refused input, naming the node, its class and the input: the server's reasons, readable."""
    lines = []
    for nid, entry in sorted((node_errors or {}).items(), key=lambda kv: str(kv[0])):
        cls = entry.get("class_type", "?")
        for err in entry.get("errors", []):
            name = (err.get("extra_info") or {}).get("input_name")
            text = err.get("message", "invalid")
            where = f"node {nid} ({cls})" + (f", input '{name}'" if name and f"'{name}'" not in text else "")
            details = str(err.get("details") or "").strip()
            lines.append(f"{where}: {text}" + (f": {details}" if details and details not in text else ""))
    if not lines and error:
        lines.append(f"{error.get('message', 'refused')}: {error.get('details', '')}".strip(": "))
    return "; ".join(lines)


def describe_execution_error(error: dict | None) -> str:
    """The node, its class and the exception text of an execution_error payload."""
    if not error:
        return "unknown error"
    msg = str(error.get("exception_message", "") or error.get("exception_type", "unknown error")).strip()
    nid, cls = error.get("node_id"), error.get("node_type")
    return f"node {nid} ({cls}): {msg}" if nid is not None else msg


@dataclass
class PromptResult:
    prompt_id: str
    status: str                      # "success" | "error" | "interrupted"
    events: list[dict] = field(default_factory=list)
    error: dict | None = None        # the execution_error payload, when status == "error"
    history: dict = field(default_factory=dict)
    # latent previews (binary websocket frames) by the node running when each arrived: {node id: [bytes]}
    previews: dict = field(default_factory=dict)

    @property
    def outputs(self) -> dict:
        return self.history.get("outputs", {})

    def files(self, kind: str | None = None) -> list[dict]:
        """Every file an output node reported (`images`, `videos`, `gifs`, ...)."""
        found = []
        for node_out in self.outputs.values():
            for key, items in node_out.items():
                if kind and key != kind:
                    continue
                if isinstance(items, list):
                    found += [it for it in items if isinstance(it, dict) and "filename" in it]
        return found


class ComfyClient:
    def __init__(self, url: str, client_id: str | None = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.timeout = timeout

    # -- plain HTTP -------------------------------------------------------------------------
    def _request(self, path: str, data: bytes | None = None, headers: dict | None = None,
                 method: str | None = None) -> bytes:
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace")
            try:
                details = json.loads(body)
            except ValueError:
                details = body
            what = f"{method or ('POST' if data else 'GET')} {path} -> HTTP {e.code}"
            if isinstance(details, dict) and ("node_errors" in details or "error" in details):
                err = details.get("error") if isinstance(details.get("error"), dict) else None
                reason = describe_node_errors(details.get("node_errors") or {}, err)
                raise ComfyError(f"{what}: {reason or body[:2000]}", details, e.code) from None
            raise ComfyError(f"{what}: {body[:2000]}", details, e.code) from None

    def get_json(self, path: str) -> Any:
        return json.loads(self._request(path))

    def post_json(self, path: str, payload: Any) -> Any:
        raw = self._request(path, json.dumps(payload).encode(), {"Content-Type": "application/json"})
        return json.loads(raw) if raw.strip() else None

    def object_info(self, node: str | None = None) -> dict:
        return self.get_json("/object_info" + (f"/{node}" if node else ""))

    def choices(self, node: str, name: str) -> list:
        """The current choices of a node's dropdown input (required or optional)."""
        spec = self.object_info(node)[node]["input"]
        return combo_options({**spec.get("optional", {}), **spec["required"]}[name])

    def queue(self, workflow: dict) -> str:
        """POST /prompt; raises ComfyError naming each refused input when any node failed validation.

        ComfyUI answers HTTP 200 when at least one output node is valid and silently drops the invalid
        branches (`node_errors`); a job with a dropped branch is a failed job, so it is taken off the queue
        and refused here as well.
        """
        res = self.post_json("/prompt", {"prompt": workflow, "client_id": self.client_id})
        if res.get("node_errors"):
            try:  # off the queue, or stopped if it already started (targeted: other prompts are untouched)
                self.post_json("/queue", {"delete": [res["prompt_id"]]})
                self.post_json("/interrupt", {"prompt_id": res["prompt_id"]})
            except (ComfyError, OSError):
                pass
            raise ComfyError("POST /prompt -> HTTP 200 with node_errors: "
                             + describe_node_errors(res["node_errors"]), res, 200)
        return res["prompt_id"]

    def queue_length(self) -> int:
        """Prompts running or waiting on this server (anyone's)."""
        q = self.get_json("/queue")
        return len(q.get("queue_running", [])) + len(q.get("queue_pending", []))

    def delete_queued(self, prompt_ids: list[str]) -> None:
        """Takes prompts that have not started off the queue (ones already running are not touched)."""
        self.post_json("/queue", {"delete": list(prompt_ids)})

    def history(self, prompt_id: str) -> dict:
        return self.get_json(f"/history/{prompt_id}").get(prompt_id, {})

    def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        q = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": type})
        return self._request(f"/view?{q}")

    def download(self, item: dict, dest: Path) -> Path:
        dest = Path(dest)
        dest.write_bytes(self.view(item["filename"], item.get("subfolder", ""), item.get("type", "output")))
        return dest

    def interrupt(self) -> None:
        self._request("/interrupt", b"", method="POST")

    def upload_image(self, path: Path, name: str | None = None, subfolder: str = "",
                     overwrite: bool = True) -> str:
        """POST /upload/image (ComfyUI accepts any file there); returns the name to use in a workflow."""
        path = Path(path)
        boundary = uuid.uuid4().hex
        fields = {"overwrite": "true" if overwrite else "false", "subfolder": subfolder, "type": "input"}
        parts = []
        for k, v in fields.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        parts.append((f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                      f'filename="{name or path.name}"\r\nContent-Type: {ctype}\r\n\r\n').encode()
                     + path.read_bytes() + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        raw = self._request("/upload/image", b"".join(parts),
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        res = json.loads(raw)
        return f"{res['subfolder']}/{res['name']}" if res.get("subfolder") else res["name"]

    # -- websocket ---------------------------------------------------------------------------
    def connect(self) -> websocket.WebSocket:
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        ws = websocket.WebSocket()
        ws.connect(ws_url, timeout=self.timeout)
        return ws

    def run(self, workflow: dict, timeout: float = 600.0,
            on_event: Callable[[dict], None] | None = None) -> PromptResult:
        """Queues a workflow and follows it on the websocket until it succeeds, fails or is interrupted."""
        ws = self.connect()
        try:
            prompt_id = self.queue(workflow)
            return self.follow(ws, prompt_id, timeout, on_event)
        finally:
            ws.close()

    def follow(self, ws: websocket.WebSocket, prompt_id: str, timeout: float = 600.0,
               on_event: Callable[[dict], None] | None = None) -> PromptResult:
        result = PromptResult(prompt_id, "pending")
        deadline = time.time() + timeout
        ws.settimeout(5.0)
        running = None
        while time.time() < deadline:
            try:
                msg = ws.recv()
            except websocket.WebSocketTimeoutException:
                h = self.history(prompt_id)  # the end may have been sent before we connected
                if h.get("status", {}).get("completed") or h.get("status", {}).get("status_str") == "error":
                    return self._finish(result, h)
                continue
            if isinstance(msg, bytes):   # a latent preview: 4-byte event type, 4-byte format, the image
                result.previews.setdefault(running, []).append(msg)
                continue
            event = json.loads(msg)
            data = event.get("data", {})
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            result.events.append(event)
            if on_event:
                on_event(event)
            kind = event.get("type")
            if kind == "executing":
                running = data.get("node")
            if kind == "execution_error":
                result.error = data
                return self._finish(result, self.history(prompt_id), "error")
            if kind == "execution_interrupted":
                return self._finish(result, self.history(prompt_id), "interrupted")
            if kind == "execution_success" or (kind == "executing" and data.get("node") is None
                                               and data.get("prompt_id") == prompt_id):
                return self._finish(result, self.history(prompt_id), "success")
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout}s")

    def _finish(self, result: PromptResult, history: dict, status: str | None = None) -> PromptResult:
        for _ in range(40):  # history is written just after the final websocket message
            if history:
                break
            time.sleep(0.05)
            history = self.history(result.prompt_id)
        result.history = history
        if status is None:
            status = "success" if history.get("status", {}).get("status_str") == "success" else "error"
        result.status = status
        if status == "error" and result.error is None:
            for m in history.get("status", {}).get("messages", []):
                if m[0] == "execution_error":
                    result.error = m[1]
        return result
