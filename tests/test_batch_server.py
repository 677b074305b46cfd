"""Batches, crashes and a soak on real servers (tiny weights, the shipped fast-preview graph at 9 frames, 1 step).

* `kill -9` of a server while it writes the mp4 leaves nothing under a final name that is not complete, and
  the next save in that folder removes the dead server's temporary file;
* a batch over two servers on loopback, one killed mid-batch: every row ends exactly once, `success` with
  its video or `failed` with the reason naming the input; `--resume` then runs no finished row again;
* a soak of 100 jobs through one server (good, bad and interrupted), with the server's memory growth printed.
"""
from __future__ import annotations

import copy
import json
import os
import signal
import time
from pathlib import Path

import pytest

from scripts import queue_batch
from scripts.comfy_api import ComfyClient, ComfyError
from scripts.comfy_server import ComfyServer
from sana_wm_core.video import is_partial, probe_mp4
from workflows.definitions import fast_preview_workflow, tiny_overrides

pytestmark = pytest.mark.server
ASSETS = Path(__file__).resolve().parents[1] / "workflows" / "assets"
IMAGE = ASSETS / "example_input.png"
FRAMES = 9
SAMPLER, SAVE = "21", "40"


def _tiny(frames: int = FRAMES, steps: int = 1) -> dict:
    from sana_wm_core.testing.tiny import TINY_HEIGHT, TINY_WIDTH

    return tiny_overrides(fast_preview_workflow(), height=TINY_HEIGHT, width=TINY_WIDTH, frames=frames, steps=steps)


@pytest.fixture(scope="module")
def second_base(tmp_path_factory, tiny_models) -> Path:
    """A second server's base folder sharing the session's tiny checkpoints."""
    base = tmp_path_factory.mktemp("comfy_second")
    (base / "models").symlink_to(tiny_models, target_is_directory=True)
    return base


def _upload_image(client: ComfyClient) -> str:
    return client.upload_image(IMAGE)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- kill -9 mid-save --------------------------------------------------------------------------------------
def _final_outputs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not is_partial(p))


def test_kill_9_mid_save_leaves_no_broken_file_under_a_final_name(second_base):
    out = second_base / "output" / "SANA-WM"
    caught = None
    for attempt in range(3):                       # the kill must land while the mp4 is being written
        srv = ComfyServer(second_base).start()
        try:
            client = ComfyClient(srv.url)
            wf = _tiny(frames=65)
            wf["1"]["inputs"]["image"] = _upload_image(client)
            wf[SAMPLER]["inputs"]["seed"] = 100 + attempt
            client.queue(wf)
            deadline = time.time() + 240
            while time.time() < deadline and srv.alive():
                partial = [p for p in out.glob(".*") if is_partial(p) and p.suffix == ".mp4"] if out.is_dir() else []
                if partial:
                    os.kill(srv.proc.pid, signal.SIGKILL)
                    srv.proc.wait(timeout=30)
                    caught = partial[0]
                    break
                time.sleep(0.002)
        finally:
            srv.stop()
        if caught is not None and caught.exists():
            break
    assert caught is not None and caught.exists(), "never caught the server while it wrote the mp4"
    for f in _final_outputs(out):                  # whatever carries a final name is complete
        if f.suffix == ".mp4":
            assert probe_mp4(f)["frames"] > 0, f
        elif f.suffix == ".json":
            json.loads(f.read_text())
    assert not [f for f in _final_outputs(out) if f.name.startswith(caught.name.split(".")[1])], \
        "the killed save left a file under its final name"

    srv = ComfyServer(second_base).start()         # the next save in that folder cleans the leftover
    try:
        client = ComfyClient(srv.url)
        wf = _tiny()
        wf["1"]["inputs"]["image"] = _upload_image(client)
        res = client.run(wf, timeout=300)
        assert res.status == "success", res.error
        video = next(f for f in res.files() if f["filename"].endswith(".mp4"))
        assert probe_mp4(out / video["filename"])["frames"] == FRAMES
        assert not caught.exists() and not [p for p in out.iterdir() if is_partial(p)]
    finally:
        srv.stop()


# -- a batch over two servers, one killed --------------------------------------------------------------------
def _jobs(n: int, bad_every: int) -> list[dict]:
    jobs = []
    for i in range(n):
        bad = i % bad_every == bad_every - 1
        jobs.append({"name": f"row{i:02d}", "image": str(IMAGE), "action": "w-8,q-2" if bad else "w-8",
                     "seed": 1000 + i, "prompt": "a desert road"})
    return jobs


def _mp4s(folder: Path) -> set[str]:
    return {str(p) for p in folder.glob("*.mp4")}


def test_batch_over_two_servers_survives_one_killed_and_resumes(comfy_server, second_base, tmp_path):
    victim = ComfyServer(second_base).start()
    out = tmp_path / "videos"
    jobs = _jobs(24, bad_every=6)
    wf = _tiny()
    done_on_victim = []
    lines = []

    def log(line: str) -> None:
        lines.append(line)
        if f"success on {victim.url}" in line:
            done_on_victim.append(line)
            # mid-batch, while it still holds rows of ours (so they must move to the other server)
            if len(done_on_victim) >= 2 and victim.alive() and ComfyClient(victim.url).queue_length() > 0:
                os.kill(victim.proc.pid, signal.SIGKILL)
    try:
        t0 = time.time()
        rows = queue_batch.run_batch([comfy_server.url, victim.url], wf, jobs, out, timeout=300, log=log,
                                     max_queued=2, poll=0.2, dead_after=2.0)
        seconds = time.time() - t0
    finally:
        victim.stop()
    print(f"\nbatch: {len(rows)} rows over 2 servers in {seconds:.1f}s, one server killed after "
          f"{len(done_on_victim)} rows")
    assert len(done_on_victim) >= 2 and not victim.alive()
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["row"] for r in manifest] == list(range(1, 25)) and manifest == rows
    for job, row in zip(jobs, rows):
        if job["action"] == "w-8":
            assert row["status"] == "success", row
            vids = [f for f in row["files"] if f.endswith(".mp4")]
            assert len(vids) == 1 and probe_mp4(vids[0])["frames"] == FRAMES
        else:
            assert row["status"] == "failed" and row["files"] == []
            assert "input 'action'" in row["error"] and "'q-2'" in row["error"], row["error"]
    assert {r["server"] for r in rows if r["status"] == "success"} == {comfy_server.url, victim.url}
    assert any(r["attempts"] >= 2 and r["server"] == comfy_server.url for r in rows), \
        "no row was moved from the killed server"
    assert any("stopped answering" in x for x in lines)
    videos = _mp4s(out)                              # done exactly once: one video per successful row
    assert videos == {f for r in rows for f in r["files"] if f.endswith(".mp4")} and len(videos) == 20

    # --resume: the finished rows stay as they are; only the failed rows are tried again (and fail again)
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    api = tmp_path / "wf_api.json"
    api.write_text(json.dumps(wf))
    before = ComfyClient(comfy_server.url).get_json("/history")
    rc = queue_batch.main(["--server", comfy_server.url, "--server", victim.url, "--workflow", str(api),
                           "--jobs", str(jobs_file), "--out", str(out), "--resume", "--dead-after", "1"])
    assert rc == 1                                   # the bad rows are still failed
    after_rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    for old, new in zip(rows, after_rows):
        if old["status"] == "success":
            assert new == old
        else:
            assert new["status"] == "failed" and "input 'action'" in new["error"]
    assert ComfyClient(comfy_server.url).get_json("/history").keys() == before.keys()   # nothing ran again
    assert _mp4s(out) == videos


# -- soak -------------------------------------------------------------------------------------------------------
BAD = [  # (what to change, the text the refusal must name)
    (lambda wf: wf["3"]["inputs"].update(action="w-8,x-3"), "input 'action'"),
    (lambda wf: wf[SAMPLER]["inputs"].update(cfg=float("nan")), "input 'cfg' must be a finite number"),
    (lambda wf: wf[SAMPLER]["inputs"].update(steps=[1, 2]), "input 'steps' got the list"),
    (lambda wf: wf["1"]["inputs"].update(image="soak_missing.png"), "soak_missing.png"),
    (lambda wf: wf["10"]["inputs"].update(path_or_hub_id="/etc"), "path_or_hub_id '/etc' is not allowed"),
    (lambda wf: wf[SAVE]["inputs"].update(fps=float("inf")), "input 'fps' must be a finite number"),
    (lambda wf: wf["3"]["inputs"].update(translation_speed=[0.1]), "input 'translation_speed' got the list"),
]


def _interrupted_run(client: ComfyClient, wf: dict):
    sent = []

    def on_event(ev: dict) -> None:
        data = ev.get("data", {})
        if not sent and ev.get("type") == "progress" and data.get("node") == SAMPLER:
            client.post_json("/interrupt", {"prompt_id": data.get("prompt_id")})
            sent.append(data.get("value"))

    return client.run(wf, timeout=300, on_event=on_event), bool(sent)


def test_soak_100_jobs_good_bad_and_interrupted(comfy_server, capsys):
    client = ComfyClient(comfy_server.url)
    base = _tiny()
    base["1"]["inputs"]["image"] = _upload_image(client)
    assert client.run(base, timeout=300).status == "success"          # warm: models loaded, caches filled
    rss0 = _rss_mib(comfy_server.proc.pid)
    t0 = time.time()
    tally = {"good": 0, "bad": 0, "interrupted": 0, "interrupt_too_late": 0}
    names = set()
    for i in range(100):
        wf = copy.deepcopy(base)
        wf[SAMPLER]["inputs"]["seed"] = 5000 + i
        slot = i % 20
        if slot in (1, 3, 7, 9, 11, 13, 17):
            change, needle = BAD[(i // 2) % len(BAD)]
            change(wf)
            with pytest.raises(ComfyError) as err:
                client.queue(wf)
            assert err.value.status == 400 and needle in str(err.value), (i, str(err.value))
            tally["bad"] += 1
        elif slot in (5, 15, 19):
            wf[SAMPLER]["inputs"]["steps"] = 30
            res, sent = _interrupted_run(client, wf)
            assert sent, "the sampler never reported progress"
            if res.status == "interrupted":
                assert not [f for f in res.files() if f["filename"].endswith(".mp4")]
                tally["interrupted"] += 1
            else:
                assert res.status == "success", res.error
                tally["interrupt_too_late"] += 1
        else:
            res = client.run(wf, timeout=300)
            assert res.status == "success", (i, res.error)
            videos = [f for f in res.files() if f["filename"].endswith(".mp4")]
            assert len(videos) == 1, res.outputs
            data = client.view(**{k: videos[0][k] for k in ("filename", "subfolder", "type")})
            assert len(data) > 1000 and data[4:8] == b"ftyp"
            names.add(videos[0]["filename"])
            if i % 10 == 0:
                assert probe_mp4(comfy_server.base / "output" / videos[0]["subfolder"]
                                 / videos[0]["filename"])["frames"] == FRAMES
            tally["good"] += 1
    rss1 = _rss_mib(comfy_server.proc.pid)
    with capsys.disabled():
        print(f"\nsoak: 100 jobs in {time.time() - t0:.1f}s {tally}; server RSS {rss0:.0f} -> {rss1:.0f} MiB "
              f"({rss1 - rss0:+.0f} MiB)")
    assert tally["good"] == 50 and tally["bad"] == 35 and tally["interrupted"] >= 8
    assert len(names) == 50, "a good job reported another job's (cached) video"
    assert comfy_server.alive() and client.get_json("/system_stats")["system"]
    assert client.get_json("/queue") == {"queue_running": [], "queue_pending": []}
    assert client.run(base | {SAMPLER: dict(base[SAMPLER], inputs=dict(base[SAMPLER]["inputs"], seed=9))},
                      timeout=300).status == "success"
    assert rss1 - rss0 < 400, f"server memory grew by {rss1 - rss0:.0f} MiB over 100 jobs"


# -- Ctrl-C ---------------------------------------------------------------------------------------------------
def test_ctrl_c_leaves_a_consistent_manifest_and_resume_finishes(comfy_server, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "videos"
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"name": f"c{i:02d}", "image": str(IMAGE), "action": "w-8", "seed": 7000 + i}
                                for i in range(12)]))
    api = tmp_path / "wf_api.json"
    api.write_text(json.dumps(_tiny()))
    cmd = [sys.executable, str(Path(__file__).resolve().parents[1] / "scripts" / "queue_batch.py"),
           "--server", comfy_server.url, "--workflow", str(api), "--jobs", str(jobs), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:                        # Ctrl-C after the second finished row
        seen.append(line)
        if sum(": success on " in x for x in seen) == 2:
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + rest
    rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rows] == list(range(1, 13))
    assert {r["status"] for r in rows} <= {"success", "cancelled"} and any(r["status"] == "cancelled" for r in rows)
    done = {r["row"]: r for r in rows if r["status"] == "success"}
    assert len(done) >= 2 and all(Path(f).is_file() for r in done.values() for f in r["files"])
    assert not [p for p in out.iterdir() if is_partial(p)]
    assert subprocess.run(cmd + ["--resume"], capture_output=True, timeout=300).returncode == 0
    rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert all(r["status"] == "success" for r in rows)
    assert all(rows[i - 1] == r for i, r in done.items())   # the rows done before Ctrl-C were not run again
    assert len(list(out.glob("*.mp4"))) == 12
