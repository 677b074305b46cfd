"""Every shipped workflow through the real server on tiny weights, batch queueing, and the UI formats."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from scripts import queue_batch
from workflows.definitions import ASSETS, TINY_STREAM_FRAMES as STREAM_FRAMES, WORKFLOWS, tiny_overrides

pytestmark = pytest.mark.server
WORKFLOW_DIR = Path(__file__).resolve().parents[1] / "workflows"
FRAMES, STEPS = 17, 2
REFINED = {"sana_wm_actions": True, "sana_wm_camera_file": True, "sana_wm_fast_preview": False,
           "sana_wm_chunk_causal": True, "sana_wm_streaming": True}


@pytest.fixture(scope="module")
def inputs(comfy_server) -> Path:
    folder = comfy_server.base / "input"
    for name in ASSETS:
        shutil.copyfile(WORKFLOW_DIR / "assets" / name, folder / name)
    return folder


def _frames(wf: dict) -> int:
    return STREAM_FRAMES if any(n["class_type"] == "SanaWMStreamToVideo" for n in wf.values()) else FRAMES


def _tiny(wf: dict) -> dict:
    from sana_wm_core.testing.tiny import TINY_HEIGHT, TINY_WIDTH

    return tiny_overrides(wf, height=TINY_HEIGHT, width=TINY_WIDTH, frames=_frames(wf), steps=STEPS)


def _video_facts(path: Path) -> tuple[str, int, float, tuple[int, int]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = sum(1 for _ in c.decode(video=0))
        return s.codec_context.name, frames, float(s.average_rate), (s.width, s.height)


def test_api_files_are_the_definitions():
    for name, build in WORKFLOWS.items():
        assert json.loads((WORKFLOW_DIR / f"{name}_api.json").read_text()) == build(), \
            f"{name}_api.json is stale: run scripts/build_workflows.py"


# The custom types the Stage-1 model, its conditioning and its latent had before they became core MODEL /
# CONDITIONING / LATENT: a shipped workflow (UI or API) that still names one was built from stale node definitions.
FORMER_TYPES = ("SANAWM_MODEL", "SANAWM_CONDITIONING", "SANAWM_LATENT")


def test_no_shipped_workflow_names_a_former_custom_type():
    files = sorted(WORKFLOW_DIR.glob("*.json"))
    assert len(files) == 2 * len(WORKFLOWS), [f.name for f in files]
    stale = {f.name: [t for t in FORMER_TYPES if t in f.read_text()] for f in files}
    assert not any(stale.values()), {k: v for k, v in stale.items() if v}


def test_shipped_streaming_workflow_is_60_s_and_types_the_prompt_once():
    wf = json.loads((WORKFLOW_DIR / "sana_wm_streaming_api.json").read_text())
    camera = next(n["inputs"] for n in wf.values() if n["class_type"] == "SanaWMCameraFromActions")
    assert camera["num_frames"] == 961 and camera["fps"] == 16.0    # 60 s at 16 fps + the image frame (24k+1)
    stream = next(n["inputs"] for n in wf.values() if n["class_type"] == "SanaWMStreamToVideo")
    assert stream["refiner_prompt"] == ""       # empty = the Stage-1 prompt, as the workflow's Note says


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_shipped_workflow_writes_h264_at_16fps(name, comfy, inputs, tmp_path):
    from sana_wm_core.testing.tiny import TINY_HEIGHT, TINY_WIDTH

    wf = _tiny(json.loads((WORKFLOW_DIR / f"{name}_api.json").read_text()))
    res = comfy.run(wf, timeout=600)
    assert res.status == "success", res.error
    videos = [f for f in res.files() if f["filename"].endswith(".mp4")]
    assert len(videos) == 1, res.outputs
    codec, frames, fps, size = _video_facts(comfy.download(videos[0], tmp_path / "out.mp4"))
    assert codec == "h264" and fps == 16.0 and size == (TINY_WIDTH, TINY_HEIGHT)
    assert frames == _frames(wf) - 1 if REFINED[name] else frames == _frames(wf), (name, frames)
    cams = [f for f in res.files() if f["filename"].endswith(".json")]
    assert cams, "the camera path JSON is not reported next to the video"
    cam = json.loads(comfy.view(**cams[0]))
    assert np.asarray(cam["c2w"]).shape[1:] == (4, 4)
    _assert_latent_previews(wf, res, refined=REFINED[name])


def _assert_latent_previews(wf: dict, res, refined: bool) -> None:
    """The server runs with `--preview-method auto` (as `make serve` does): the sampler sends one JPEG per step
    and the refiner one per chunk, each a picture of the latent at the tiny size; Stream to Video one decoded
    frame per chunk."""
    ids = {node["class_type"]: nid for nid, node in wf.items()}
    if "SanaWMStreamToVideo" in ids:   # one decoded frame per streamed chunk (no per-step latent previews)
        from sana_wm_core.sampling.self_forcing import stream_chunks

        frames = res.previews.get(ids["SanaWMStreamToVideo"], [])
        assert len(frames) == len(stream_chunks((STREAM_FRAMES - 1) // 8 + 1, 3)), res.previews.keys()
        _assert_jpegs(frames)
        return
    expect = {}
    if "SanaWMSampler" in ids:
        sampler = wf[ids["SanaWMSampler"]]["inputs"]
        steps = STEPS
        if sampler.get("sampler") == "chunk_flow_euler":   # one preview per global step of the staggered schedule
            from sana_wm_core.sampling.chunk_schedule import chunk_schedule
            from sana_wm_core.testing.tiny_config import TINY_CHUNK_SIZE

            k = float(sampler.get("chunk_interval_k") or 0) or None
            steps = chunk_schedule((FRAMES - 1) // 8 + 1, TINY_CHUNK_SIZE, STEPS, 3.0, interval_k=k).total_steps
        expect[ids["SanaWMSampler"]] = steps
    else:   # core SamplerCustomAdvanced: ComfyUI's own progress and Latent2RGB preview per step
        node = ids["SamplerCustomAdvanced"]
        done = [e["data"]["value"] for e in res.events
                if e.get("type") == "progress" and e.get("data", {}).get("node") == node]
        assert done == list(range(1, STEPS + 1)), done
        expect[node] = STEPS
    if refined:
        from sana_wm_core.refiner import RefineSettings
        from sana_wm_core.refiner.loop import plan_chunks

        settings = RefineSettings()
        chunks = plan_chunks((FRAMES - 1) // 8 + 1, int(settings.sink_size), int(settings.block_size))
        expect[ids["SanaWMRefine"]] = len(chunks)
    for node, count in expect.items():
        frames = res.previews.get(node, [])
        assert len(frames) == count, (node, {k: len(v) for k, v in res.previews.items()})
        _assert_jpegs(frames)


def _assert_jpegs(frames: list) -> None:
    import io

    from PIL import Image

    for frame in frames:
        kind, fmt = int.from_bytes(frame[:4], "big"), int.from_bytes(frame[4:8], "big")
        assert (kind, fmt) == (1, 1)   # PREVIEW_IMAGE, JPEG
        img = Image.open(io.BytesIO(frame[8:]))
        assert img.format == "JPEG" and img.size[0] > img.size[1] > 0


def test_queue_batch_runs_three_jobs(comfy, comfy_server, inputs, tmp_path):
    wf = _tiny(json.loads((WORKFLOW_DIR / "sana_wm_fast_preview_api.json").read_text()))
    jobs_file = tmp_path / "jobs.csv"
    asset = WORKFLOW_DIR / "assets"
    jobs_file.write_text(
        "name,image,prompt,action,camera,seed\n"
        f"road,{asset / 'example_input.png'},a desert road,w-16,,1\n"
        f"turn,{asset / 'example_input.png'},a desert road turning,jw-16,,2\n"
        f"file,{asset / 'example_input.png'},following a recorded path,,{asset / 'example_camera.npy'},3\n")
    jobs = queue_batch.read_jobs(jobs_file)
    # the camera-file job needs intrinsics too: the workflow's estimator node feeds whichever camera node
    summary = queue_batch.run_batch(comfy_server.url, wf, jobs, tmp_path / "videos", log=lambda *_: None)
    assert [r["status"] for r in summary] == ["success"] * 3, summary
    for row in summary:
        vids = [Path(f) for f in row["files"] if f.endswith(".mp4")]
        assert len(vids) == 1 and vids[0].stat().st_size > 0
        assert _video_facts(vids[0])[1] == FRAMES
    assert any(f.endswith(".camera.json") for f in summary[2]["files"])


def test_queue_batch_refuses_bad_jobs_before_queueing(tmp_path, capsys):
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"image": "missing.png", "prompt": "x", "action": "w-8"}]))
    rc = queue_batch.main(["--workflow", str(WORKFLOW_DIR / "sana_wm_fast_preview_api.json"),
                           "--jobs", str(jobs), "--server", "http://127.0.0.1:9"])
    assert rc == 2 and "missing.png" in capsys.readouterr().err
    jobs.write_text(json.dumps([{"prompt": "x", "action": "w-8", "camera": str(jobs)}]))
    assert queue_batch.main(["--workflow", str(WORKFLOW_DIR / "sana_wm_fast_preview_api.json"),
                             "--jobs", str(jobs)]) == 2
    assert "both an action string and a camera file" in capsys.readouterr().err


@pytest.mark.browser
@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_ui_workflow_loads_with_no_missing_node(name, browser, comfy_server, artifacts):
    from browser import open_comfy

    open_comfy(browser, comfy_server.url)
    ui = json.loads((WORKFLOW_DIR / f"{name}.json").read_text())
    result = browser.execute_async_script(
        """const [wf, done] = arguments;
        Promise.resolve(window.app.loadGraphData(wf, true, true, 'check')).then(async () => {
            const known = window.LiteGraph.registered_node_types;
            const missing = window.app.graph._nodes.filter(n => !known[n.type]).map(n => n.type);
            const api = (await window.app.graphToPrompt()).output;
            await new Promise(r => setTimeout(r, 500));
            const invalid = document.body.innerText.includes('Invalid workflow');
            done({missing, invalid, count: window.app.graph._nodes.length, api});
        }).catch(e => done({error: String(e)}));""", ui)
    assert "error" not in result, result
    assert result["missing"] == [] and result["count"] == len(ui["nodes"])
    assert not result["invalid"], "the frontend's schema check rejected the UI workflow"
    api = json.loads((WORKFLOW_DIR / f"{name}_api.json").read_text())
    assert {k: v["class_type"] for k, v in result["api"].items()} == {k: v["class_type"] for k, v in api.items()}
    for nid, node in api.items():  # the UI file carries the same values and links the API file does
        for key, value in node["inputs"].items():
            if not isinstance(value, list):
                assert result["api"][nid]["inputs"][key] == value, (name, nid, key)
            else:   # a link the frontend dropped (socket types that do not match) is a missing input
                got = result["api"][nid]["inputs"].get(key)
                assert got is not None and [str(got[0]), got[1]] == [str(value[0]), value[1]], (name, nid, key, got)
    browser.save_screenshot(str(artifacts / f"workflow_{name}.png"))


@pytest.mark.browser
def test_saved_workflow_with_the_removed_refine_fps_widget_still_loads(browser, comfy_server):
    """A workflow saved while SanaWMRefine still had an `fps` widget (widgets_values [prompt, seed, control,
    16]) loads in the pinned frontend: the extra value is ignored, the others keep their places, and the
    prompt it queues has no fps (the refiner reads it from the latent). API prompts that still send `fps`
    run too (tests/test_refiner_nodes.py sends it)."""
    from browser import open_comfy

    open_comfy(browser, comfy_server.url)
    old = json.loads((Path(__file__).parent / "fixtures" / "sana_wm_actions_with_refine_fps.json").read_text())
    refine = next(n for n in old["nodes"] if n["type"] == "SanaWMRefine")
    assert refine["widgets_values"][-1] == 16 and any(i["name"] == "fps" for i in refine["inputs"])
    result = browser.execute_async_script(
        """const [wf, done] = arguments;
        Promise.resolve(window.app.loadGraphData(wf, true, true, 'old')).then(async () => {
            const known = window.LiteGraph.registered_node_types;
            const missing = window.app.graph._nodes.filter(n => !known[n.type]).map(n => n.type);
            const node = window.app.graph._nodes.find(n => n.type === 'SanaWMRefine');
            const api = (await window.app.graphToPrompt()).output;
            await new Promise(r => setTimeout(r, 500));
            const invalid = document.body.innerText.includes('Invalid workflow');
            done({missing, invalid, widgets: node.widgets.map(w => [w.name, w.value]), api});
        }).catch(e => done({error: String(e)}));""", old)
    assert "error" not in result, result
    assert result["missing"] == [] and not result["invalid"]
    assert [name for name, _ in result["widgets"]][:2] == ["prompt", "seed"]
    inputs = result["api"][str(refine["id"])]["inputs"]
    assert "fps" not in inputs
    assert inputs["prompt"] == refine["widgets_values"][0] and inputs["seed"] == 42
