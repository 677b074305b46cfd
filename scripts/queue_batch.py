#!/usr/bin/env python3
"""Queue a batch of SANA-WM jobs on a running ComfyUI server and download every video.

    python scripts/queue_batch.py --server http://127.0.0.1:8188 \
        --workflow workflows/sana_wm_actions_api.json --jobs jobs.csv --out videos/

`jobs` is a CSV (header row) or a JSON list of objects with the columns
`image` (a local file, uploaded), `prompt`, `action` (an action string) OR `camera` (a local .npy/.json/.txt
camera file, uploaded), `seed`, and optionally `name`. Empty cells keep the workflow's value. A job that
gives `camera` to a workflow built around an action string (or the reverse) gets its camera node swapped.
Each job is queued, followed on the websocket and its outputs downloaded; a summary table ends the run,
and the exit code is non-zero if any job failed.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.comfy_api import ComfyClient, ComfyError  # noqa: E402

ACTION_NODE = "SanaWMCameraFromActions"
FILE_NODE = "SanaWMLoadCamera"
PROMPT_NODES = ("SanaWMImageToVideo", "SanaWMRefine", "SanaWMEncodePrompt")
SEED_NODES = ("SanaWMSampler",)
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov")


def read_jobs(path: Path) -> list[dict]:
    text = Path(path).read_text()
    if Path(path).suffix.lower() == ".json":
        jobs = json.loads(text)
        if not isinstance(jobs, list) or not all(isinstance(j, dict) for j in jobs):
            raise ValueError(f"{path}: expected a JSON list of objects, one per job")
    else:
        jobs = list(csv.DictReader(text.splitlines()))
    jobs = [{k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in j.items() if k} for j in jobs]
    for i, job in enumerate(jobs, 1):
        unknown = set(job) - {"image", "prompt", "action", "camera", "seed", "name"}
        if unknown:
            raise ValueError(f"{path}: job {i} has unknown column(s) {sorted(unknown)}; "
                             "use image, prompt, action, camera, seed, name")
        if job.get("action") and job.get("camera"):
            raise ValueError(f"{path}: job {i} gives both an action string and a camera file; keep one")
        for key in ("image", "camera"):
            if job.get(key) and not Path(job[key]).is_file():
                raise ValueError(f"{path}: job {i}: {key} file {job[key]!r} does not exist")
        if job.get("seed") not in (None, ""):
            try:
                job["seed"] = int(job["seed"])
            except ValueError:
                raise ValueError(f"{path}: job {i}: seed {job['seed']!r} is not an integer") from None
    if not jobs:
        raise ValueError(f"{path}: no jobs")
    return jobs


def _nodes(wf: dict, *classes: str) -> list[str]:
    return [nid for nid, n in wf.items() if n.get("class_type") in classes]


def apply_job(workflow: dict, job: dict, uploaded: dict[str, str]) -> dict:
    """Returns a copy of the API workflow with the job's inputs written into the right nodes."""
    wf = copy.deepcopy(workflow)
    if job.get("image"):
        ids = _nodes(wf, "LoadImage")
        if not ids:
            raise ValueError("the workflow has no LoadImage node to take the job's image")
        for nid in ids:
            wf[nid]["inputs"]["image"] = uploaded[job["image"]]
    if job.get("prompt"):
        ids = [nid for nid in _nodes(wf, *PROMPT_NODES) if "prompt" in wf[nid]["inputs"]]
        if not ids:
            raise ValueError("the workflow has no node with a `prompt` input")
        for nid in ids:
            wf[nid]["inputs"]["prompt"] = job["prompt"]
    cams = _nodes(wf, ACTION_NODE, FILE_NODE)
    if (job.get("action") or job.get("camera")) and not cams:
        raise ValueError("the workflow has no camera node")
    for nid in cams:
        node = wf[nid]
        keep = {k: v for k, v in node["inputs"].items() if k in ("num_frames", "fps", "intrinsics")}
        if job.get("action"):
            if node["class_type"] != ACTION_NODE:
                node["class_type"] = ACTION_NODE
                node["inputs"] = {"translation_speed": 0.05, "rotation_speed_deg": 1.2, "mapping": "classic", **keep}
            node["inputs"]["action"] = job["action"]
        elif job.get("camera"):
            if node["class_type"] != FILE_NODE:
                node["class_type"] = FILE_NODE
                node["inputs"] = {"world_to_camera": False, **keep}
            node["inputs"]["file"] = uploaded[job["camera"]]
    if job.get("seed") not in (None, ""):
        for nid in _nodes(wf, *SEED_NODES):
            wf[nid]["inputs"]["seed"] = job["seed"]
    return wf


def run_batch(server: str, workflow: dict, jobs: list[dict], out: Path, timeout: float = 3600.0,
              log=print) -> list[dict]:
    client = ComfyClient(server)
    client.get_json("/system_stats")  # fail fast when no server answers
    out.mkdir(parents=True, exist_ok=True)
    uploaded: dict[str, str] = {}
    for job in jobs:
        for key in ("image", "camera"):
            if job.get(key) and job[key] not in uploaded:
                uploaded[job[key]] = client.upload_image(Path(job[key]))
    summary = []
    for i, job in enumerate(jobs, 1):
        name = job.get("name") or f"job{i:03d}"
        t0 = time.time()
        row = {"job": name, "status": "error", "seconds": 0.0, "files": [], "error": ""}

        def progress(ev, _name=name):
            if ev.get("type") == "progress":
                d = ev["data"]
                log(f"  {_name}: node {d.get('node')} {d.get('value')}/{d.get('max')}")

        try:
            res = client.run(apply_job(workflow, job, uploaded), timeout=timeout, on_event=progress)
            row["status"] = res.status
            if res.status == "error":
                row["error"] = (res.error or {}).get("exception_message", "unknown error").strip()
            for item in res.files():
                if item.get("type") != "output":
                    continue
                dest = out / f"{name}_{Path(item['filename']).name}"
                client.download(item, dest)
                row["files"].append(str(dest))
        except (ComfyError, ValueError, TimeoutError) as exc:
            row["error"] = str(exc)
        row["seconds"] = round(time.time() - t0, 1)
        log(f"[{i}/{len(jobs)}] {name}: {row['status']} in {row['seconds']}s "
            f"{', '.join(row['files']) or row['error']}")
        summary.append(row)
    return summary


def print_summary(summary: list[dict], log=print) -> None:
    log("\n| job | status | seconds | videos |")
    log("|---|---|---|---|")
    for r in summary:
        vids = [f for f in r["files"] if f.endswith(VIDEO_SUFFIXES)]
        log(f"| {r['job']} | {r['status']} | {r['seconds']} | {', '.join(vids) or r['error'][:80]} |")
    ok = sum(r["status"] == "success" for r in summary)
    log(f"\n{ok}/{len(summary)} jobs succeeded")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default="http://127.0.0.1:8188")
    ap.add_argument("--workflow", required=True, type=Path, help="an API-format workflow (workflows/*_api.json)")
    ap.add_argument("--jobs", required=True, type=Path, help="CSV or JSON with image,prompt,action|camera,seed")
    ap.add_argument("--out", default=Path("videos"), type=Path)
    ap.add_argument("--timeout", default=3600.0, type=float, help="seconds per job")
    args = ap.parse_args(argv)
    try:
        workflow = json.loads(args.workflow.read_text())
        jobs = read_jobs(args.jobs)
        for job in jobs:  # validate every job against the workflow before queueing anything
            apply_job(workflow, job, {job[k]: job[k] for k in ("image", "camera") if job.get(k)})
    except (OSError, ValueError) as exc:
        print(f"queue_batch: {exc}", file=sys.stderr)
        return 2
    summary = run_batch(args.server, workflow, jobs, args.out, args.timeout)
    print_summary(summary)
    return 0 if all(r["status"] == "success" for r in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
