#!/usr/bin/env python3
"""Queue a batch of SANA-WM jobs on one or more running ComfyUI servers and download every video.

    python scripts/queue_batch.py --server http://127.0.0.1:8188 [--server http://127.0.0.1:8189 ...] \
        --workflow workflows/sana_wm_actions_api.json --jobs jobs.csv --out videos/ [--resume]

`jobs` is a CSV (header row) or a JSON list of objects with the columns
`image` (a local file, uploaded), `prompt`, `action` (an action string) OR `camera` (a local .npy/.json/.txt
camera file, uploaded), `seed`, and optionally `name`. Empty cells keep the workflow's value. A job that
gives `camera` to a workflow built around an action string (or the reverse) gets its camera node swapped.
Each job goes to the server with the shortest queue, is followed until it ends and its outputs are
downloaded; a server that stops answering has its unfinished jobs queued elsewhere. OUT/manifest.jsonl
records each row's server, prompt id, status, files and error (the reason names the node and input the
server refused); `--resume` skips rows already done with their files present. A summary table ends the
run; the exit code is 1 if any job failed, 130 after Ctrl-C (the manifest stays consistent).
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
from scripts.batch_runner import VIDEO_SUFFIXES, BatchRunner  # noqa: E402

ACTION_NODE = "SanaWMCameraFromActions"
FILE_NODE = "SanaWMLoadCamera"
PROMPT_NODES = ("SanaWMImageToVideo", "SanaWMRefine", "SanaWMEncodePrompt")
SEED_NODES = {"SanaWMSampler": "seed", "RandomNoise": "noise_seed", "KSampler": "seed",
              "KSamplerAdvanced": "noise_seed"}   # Stage-1 sampling nodes and their seed input


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
            wf[nid]["inputs"][SEED_NODES[wf[nid]["class_type"]]] = job["seed"]
    return wf


def run_batch(server: str | list[str], workflow: dict, jobs: list[dict], out: Path, timeout: float = 3600.0,
              log=print, *, manifest: Path | None = None, resume: bool = False, max_queued: int = 2,
              poll: float = 0.5, dead_after: float = 30.0) -> list[dict]:
    """Runs every job over the given server(s) (see scripts/batch_runner.py); one result dict per row."""
    servers = [server] if isinstance(server, str) else list(server)
    runner = BatchRunner(servers, workflow, jobs, Path(out), apply_job=apply_job, manifest=manifest,
                         resume=resume, timeout=timeout, max_queued=max_queued, poll=poll,
                         dead_after=dead_after, log=log)
    summary = runner.run()
    if runner.interrupted:
        raise KeyboardInterrupt
    return summary


def print_summary(summary: list[dict], log=print) -> None:
    log("\n| job | status | seconds | videos |")
    log("|---|---|---|---|")
    for r in summary:
        vids = [f for f in r["files"] if f.endswith(VIDEO_SUFFIXES)]
        log(f"| {r['job']} | {r['status']} | {r['seconds']} | {', '.join(vids) or r['error'][:80]} |")
    ok = sum(r["status"] == "success" for r in summary)
    log(f"\n{ok}/{len(summary)} jobs succeeded")
    for r in summary:
        if r["status"] != "success":
            log(f"  {r['job']} {r['status']}: {r['error']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", action="append", default=None,
                    help="a ComfyUI server URL; repeat it to spread the batch over several servers "
                         "(default http://127.0.0.1:8188)")
    ap.add_argument("--workflow", required=True, type=Path, help="an API-format workflow (workflows/*_api.json)")
    ap.add_argument("--jobs", required=True, type=Path, help="CSV or JSON with image,prompt,action|camera,seed")
    ap.add_argument("--out", default=Path("videos"), type=Path)
    ap.add_argument("--manifest", type=Path, default=None,
                    help="results file, one JSON line per row (default OUT/manifest.jsonl)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the rows the manifest lists as done (files present) and run the others")
    ap.add_argument("--timeout", default=3600.0, type=float, help="seconds per job")
    ap.add_argument("--max-queued", default=2, type=int, help="jobs of this batch waiting per server at once")
    ap.add_argument("--dead-after", default=30.0, type=float,
                    help="seconds without an answer before a server's unfinished jobs move elsewhere")
    args = ap.parse_args(argv)
    try:
        workflow = json.loads(args.workflow.read_text())
        jobs = read_jobs(args.jobs)
        for job in jobs:  # validate every job against the workflow before queueing anything
            apply_job(workflow, job, {job[k]: job[k] for k in ("image", "camera") if job.get(k)})
    except (OSError, ValueError) as exc:
        print(f"queue_batch: {exc}", file=sys.stderr)
        return 2
    try:
        summary = run_batch(args.server or ["http://127.0.0.1:8188"], workflow, jobs, args.out, args.timeout,
                            manifest=args.manifest, resume=args.resume, max_queued=args.max_queued,
                            dead_after=args.dead_after)
    except KeyboardInterrupt:
        print("queue_batch: interrupted; the manifest is consistent, rerun with --resume", file=sys.stderr)
        return 130
    print_summary(summary)
    return 0 if all(r["status"] == "success" for r in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
