"""Runs a batch of prompts over one or more ComfyUI servers, with a JSON-lines manifest (queue_batch's engine).

Each row is queued on the live server with the shortest queue (at most `max_queued` of ours per server, so
later rows still go where there is room), followed by polling `/history`, and its outputs downloaded. A
server that stops answering for `dead_after` seconds is dropped and its unfinished rows are queued again
elsewhere; a prompt a server lost (restarted) is queued again too. A row ends `success` (with its files)
or `failed` (with the reason, naming the node and input when the server said which), exactly once.

The manifest holds one JSON object per row (row, job, status, server, prompt_id, files, error, attempts,
seconds) and is rewritten atomically after every change, so a crash or Ctrl-C leaves a consistent file;
`resume=True` keeps the rows already `success` whose files are all present and runs the others.
"""
from __future__ import annotations

import http.client
import json
import socket
import sys
import time
import urllib.error
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.comfy_api import ComfyClient, ComfyError, describe_execution_error  # noqa: E402
from sana_wm_core.video.atomic import write_bytes_atomic, write_text_atomic  # noqa: E402

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov")
# What a server that is down, restarting or unreachable raises (as opposed to refusing a job).
_UNREACHABLE = (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError, http.client.HTTPException,
                OSError)


@dataclass
class Row:
    row: int
    job: str
    status: str = "pending"        # pending | queued | success | failed | cancelled
    server: str | None = None
    prompt_id: str | None = None
    files: list[str] = field(default_factory=list)
    error: str = ""
    attempts: int = 0
    seconds: float = 0.0
    _queued_at: float = 0.0

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


class Manifest:
    """The results file: one JSON line per row, replaced atomically on each save."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> dict[int, dict]:
        if not self.path.is_file():
            return {}
        found = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("row"), int):
                found[rec["row"]] = rec
        return found

    def save(self, rows: list[Row]) -> None:
        write_text_atomic(self.path, "".join(json.dumps(r.record()) + "\n" for r in rows))


class Server:
    def __init__(self, url: str, index: int, http_timeout: float):
        self.url = url.rstrip("/")
        self.index = index
        self.client = ComfyClient(self.url, timeout=http_timeout)
        self.alive = True
        self.uploaded: dict[str, str] = {}
        self.inflight: dict[str, Row] = {}
        self.failing_since: float | None = None
        self.last_error = ""


class BatchRunner:
    def __init__(self, servers: list[str], workflow: dict, jobs: list[dict], out: Path, *,
                 apply_job: Callable[[dict, dict, dict], dict], manifest: Path | None = None,
                 resume: bool = False, timeout: float = 3600.0, max_queued: int = 2, poll: float = 0.5,
                 dead_after: float = 30.0, http_timeout: float = 10.0, log=print):
        if not servers:
            raise ValueError("no server given")
        self.servers = [Server(u, i, http_timeout) for i, u in enumerate(dict.fromkeys(servers))]
        self.workflow, self.jobs, self.apply_job = workflow, jobs, apply_job
        self.out = Path(out)
        self.manifest = Manifest(manifest or self.out / "manifest.jsonl")
        self.timeout, self.max_queued, self.poll, self.dead_after = timeout, max(1, max_queued), poll, dead_after
        self.log = log
        self.rows = [Row(i, job.get("name") or f"job{i:03d}") for i, job in enumerate(jobs, 1)]
        self.resume = resume
        self.interrupted = False

    # -- bookkeeping ---------------------------------------------------------------------------
    def _save(self) -> None:
        self.manifest.save(self.rows)

    def _resume(self) -> None:
        prior = self.manifest.load()
        kept = 0
        for row in self.rows:
            rec = prior.get(row.row)
            if (rec and rec.get("job") == row.job and rec.get("status") == "success" and rec.get("files")
                    and all(Path(f).is_file() for f in rec["files"])):
                row.status, row.server, row.prompt_id = "success", rec.get("server"), rec.get("prompt_id")
                row.files, row.attempts, row.seconds = list(rec["files"]), rec.get("attempts", 1), rec.get("seconds", 0)
                kept += 1
        self.log(f"resume: {kept} of {len(self.rows)} rows already done with their files; running the rest")

    def _end(self, row: Row, status: str, error: str = "", files: list[str] | None = None) -> None:
        row.status, row.error, row.files = status, error, files or []
        row.seconds = round(time.time() - row._queued_at, 1) if row._queued_at else 0.0
        i = row.row
        self.log(f"[{i}/{len(self.rows)}] {row.job}: {status} on {row.server or '-'} in {row.seconds}s "
                 f"{', '.join(row.files) if status == 'success' else error}")
        self._save()

    def _requeue(self, row: Row, why: str) -> None:
        row.status, row.server, row.prompt_id, row.error, row._queued_at = "pending", None, None, why, 0.0
        self.log(f"  {row.job}: {why}; queued again")

    def _failing(self, srv: Server, exc: BaseException) -> None:
        now = time.time()
        srv.last_error = f"{type(exc).__name__}: {exc}"
        if srv.failing_since is None:
            srv.failing_since = now
        if now - srv.failing_since < self.dead_after:
            return
        srv.alive = False
        self.log(f"server {srv.url} stopped answering for {self.dead_after:g}s ({srv.last_error}); "
                 f"moving its {len(srv.inflight)} unfinished job(s) elsewhere")
        for row in list(srv.inflight.values()):
            self._requeue(row, f"server {srv.url} stopped answering")
        srv.inflight.clear()
        self._save()

    # -- one server's prompts ------------------------------------------------------------------
    def _download(self, srv: Server, row: Row, history: dict) -> list[str]:
        files = []
        for node_out in history.get("outputs", {}).values():
            for items in node_out.values():
                for it in items if isinstance(items, list) else []:
                    if isinstance(it, dict) and "filename" in it and it.get("type") == "output":
                        dest = self.out / f"{row.job}_{Path(it['filename']).name}"
                        write_bytes_atomic(dest, srv.client.view(it["filename"], it.get("subfolder", ""), "output"))
                        files.append(str(dest))
        return files

    def _finish(self, srv: Server, row: Row, history: dict) -> None:
        status = history.get("status", {})
        messages = status.get("messages", [])
        if status.get("status_str") == "success" and status.get("completed", True):
            files = self._download(srv, row, history)
            if any(f.endswith(VIDEO_SUFFIXES) for f in files):
                self._end(row, "success", files=files)
            else:
                self._end(row, "failed", "the prompt finished but wrote no video (does the workflow end in a "
                                         "Save Video node?)", files)
            return
        error = next((m[1] for m in messages if m[0] == "execution_error"), None)
        if error is not None:
            self._end(row, "failed", describe_execution_error(error))
        elif any(m[0] == "execution_interrupted" for m in messages):
            self._end(row, "failed", "interrupted on the server (Cancel or POST /interrupt)")
        else:
            self._end(row, "failed", f"the server reported {status.get('status_str', 'an unknown status')}")

    def _poll(self, srv: Server) -> None:
        if not srv.inflight:
            return
        try:
            q = srv.client.get_json("/queue")
            waiting = {item[1] for key in ("queue_running", "queue_pending") for item in q.get(key, [])}
            for pid, row in list(srv.inflight.items()):
                h = srv.client.history(pid)
                if h and (h.get("status", {}).get("completed") or h.get("status", {}).get("status_str") == "error"):
                    self._finish(srv, row, h)
                    del srv.inflight[pid]
                elif not h and pid not in waiting:
                    del srv.inflight[pid]
                    self._requeue(row, f"server {srv.url} lost prompt {pid} (restarted?)")
                    self._save()
                elif time.time() - row._queued_at > self.timeout:
                    del srv.inflight[pid]
                    try:
                        srv.client.delete_queued([pid])
                    except (ComfyError, *_UNREACHABLE):
                        pass
                    self._end(row, "failed", f"did not finish within {self.timeout:g}s on {srv.url}")
            srv.failing_since = None
        except (ComfyError, *_UNREACHABLE) as exc:
            self._failing(srv, exc)

    # -- queueing ------------------------------------------------------------------------------
    def _upload(self, srv: Server, job: dict) -> None:
        for key in ("image", "camera"):
            local = job.get(key)
            if local and local not in srv.uploaded:
                srv.uploaded[local] = srv.client.upload_image(Path(local))

    def _submit(self, srv: Server, row: Row) -> None:
        job = self.jobs[row.row - 1]
        try:
            self._upload(srv, job)
            wf = self.apply_job(self.workflow, job, srv.uploaded)
            row._queued_at = time.time()
            row.server, row.attempts = srv.url, row.attempts + 1
            pid = srv.client.queue(wf)
        except ComfyError as exc:  # the server refused this job: that is the job's failure, not the server's
            if exc.status is None or exc.status >= 500:
                row.server, row.attempts = None, row.attempts - 1
                self._failing(srv, exc)
                return
            self._end(row, "failed", str(exc))
            return
        except ValueError as exc:
            self._end(row, "failed", str(exc))
            return
        except _UNREACHABLE as exc:
            row.server, row.attempts = None, row.attempts - 1
            self._failing(srv, exc)
            return
        srv.failing_since = None
        row.status, row.prompt_id, row.error = "queued", pid, ""
        srv.inflight[pid] = row
        self._save()

    def _pick(self) -> Server | None:
        best = None
        for srv in self.servers:
            if not srv.alive or len(srv.inflight) >= self.max_queued:
                continue
            try:
                length = srv.client.queue_length()
            except (ComfyError, *_UNREACHABLE) as exc:
                self._failing(srv, exc)
                continue
            key = (length, len(srv.inflight), srv.index)
            if best is None or key < best[0]:
                best = (key, srv)
        return best[1] if best else None

    def _dispatch(self) -> None:
        for row in self.rows:
            if row.status != "pending":
                continue
            srv = self._pick()
            if srv is None:
                return
            self._submit(srv, row)

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> list[dict]:
        self.out.mkdir(parents=True, exist_ok=True)
        if self.resume:
            self._resume()
        for srv in self.servers:
            try:
                srv.client.get_json("/system_stats")
            except (ComfyError, *_UNREACHABLE) as exc:
                srv.alive = False
                self.log(f"server {srv.url} does not answer ({type(exc).__name__}: {exc}); not used")
        self._save()
        try:
            while any(r.status in ("pending", "queued") for r in self.rows):
                live = [s for s in self.servers if s.alive]
                if not live:
                    for row in self.rows:
                        if row.status in ("pending", "queued"):
                            self._end(row, "failed", "no server answers: "
                                      + "; ".join(f"{s.url}: {s.last_error or 'down'}" for s in self.servers))
                    break
                for srv in live:
                    self._poll(srv)
                self._dispatch()
                if any(r.status in ("pending", "queued") for r in self.rows):
                    time.sleep(self.poll)
        except KeyboardInterrupt:
            self.interrupted = True
            self._cancel()
        return [r.record() for r in self.rows]

    def _cancel(self) -> None:
        """Ctrl-C: take our prompts off the servers (stop the running one) and record unfinished rows as cancelled."""
        for srv in self.servers:
            if srv.alive and srv.inflight:
                try:
                    srv.client.timeout = 3.0
                    srv.client.delete_queued(list(srv.inflight))
                    for pid in srv.inflight:  # the one running now stops too (targeted: others' prompts run on)
                        srv.client.post_json("/interrupt", {"prompt_id": pid})
                except (ComfyError, *_UNREACHABLE):
                    pass
        for row in self.rows:
            if row.status in ("pending", "queued"):
                row.status = "cancelled"
                row.error = "cancelled (Ctrl-C) before it finished; --resume runs it again"
        self._save()
        self.log("cancelled: the manifest records every row's state; rerun with --resume to finish")
