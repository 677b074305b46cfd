"""The streaming nodes in a real ComfyUI server on the tiny SANA-WM_streaming bundle: "Stream to Video" writes the
mp4 chunk by chunk (progress and one preview per chunk), a cancel mid-stream leaves a playable
`_partial.mp4` holding exactly the chunks that were finished, the Stage-1-only stream sampler's latent goes
through the existing refine / decode nodes, and bad inputs are refused before any model is loaded."""
from __future__ import annotations

import json

import pytest

from sana_wm_core.video import probe_mp4
from stage1_graph import MODEL_LOADER, SAMPLER, VAE, stage1_graph, upload_first_frame

pytestmark = pytest.mark.server
STREAM = "SANA-WM_streaming"
NODE = "40"
FRAMES_PER_CHUNK = 24     # 3 latent frames x the VAE's 8


@pytest.fixture(scope="module")
def image_name(comfy_server, tmp_path_factory):
    return upload_first_frame(comfy_server, tmp_path_factory.mktemp("img"), "stream_video_first_frame.png")


def _graph(image_name: str, *, frames: int, prefix: str, refine: bool = True, model: str = STREAM,
           vae: str = STREAM, **stream) -> dict:
    wf = stage1_graph(image_name, num_frames=frames, action=f"w-{frames - 1}", cfg=1.0, dtype="fp32")
    del wf[SAMPLER]
    wf[MODEL_LOADER]["inputs"]["model"] = model
    wf[VAE]["inputs"]["vae"] = vae
    wf[NODE] = {"class_type": "SanaWMStreamToVideo", "inputs": {
        "model": [MODEL_LOADER, 0], "positive": ["7", 0], "latent": ["7", 2], "vae": [VAE, 0], "seed": 5, "frames_per_block": 3,
        "cached_blocks": 2, "sink": True, "filename_prefix": prefix, "crf": 25, **stream}}
    if refine:
        wf["30"] = {"class_type": "SanaWMRefinerLoader", "inputs": {
            "repo": STREAM, "dtype": "fp32", "weight_format": "default", "offload_blocks": -1, "keep_loaded": False}}
        wf[NODE]["inputs"].update(refiner=["30", 0], refiner_prompt="", refiner_seed=42)
    return wf


def _progress_of(node: str, into: list):
    def on_event(ev: dict) -> None:
        if ev.get("type") == "progress" and ev["data"].get("node") == node:
            into.append((ev["data"]["value"], ev["data"]["max"]))
    return on_event


@pytest.mark.parametrize("refine,frames", [(True, 72), (False, 73)])
def test_stream_to_video_writes_the_clip_chunk_by_chunk(comfy, image_name, tmp_path, refine, frames):
    progress: list = []
    res = comfy.run(_graph(image_name, frames=73, prefix=f"stream/ok_{refine}", refine=refine), timeout=300,
                    on_event=_progress_of(NODE, progress))
    assert res.status == "success", res.error
    assert progress == [(0, 3), (1, 3), (2, 3), (3, 3)]                    # 73 frames = 10 latents = 3 chunks
    assert len(res.previews.get(NODE, [])) == 3                           # one decoded frame per chunk
    video = [f for f in res.outputs[NODE]["images"] if f["filename"].endswith(".mp4")][0]
    assert video["filename"].endswith("_.mp4")
    facts = probe_mp4(comfy.download(video, tmp_path / "out.mp4"))
    assert facts["frames"] == frames and facts["codec"] == "h264" and facts["fps"] == 16.0   # refined: sink dropped
    cam = json.loads(comfy.view(**res.outputs[NODE]["camera_json"][0]))
    assert len(cam["video"]["c2w"]) == frames and cam["generation"]["chunks"] == 3
    assert "partial" not in cam["generation"]


def test_cancel_mid_stream_keeps_the_finished_chunks_as_a_partial_mp4(comfy, comfy_server, image_name):
    """The interrupt goes out the moment chunk N's progress arrives (the event handler posts it before reading on;
    POST /interrupt returns once the server's flag is set, in milliseconds, while a chunk takes a second or more
    here). The stream checks the flag inside Stage 1 and before each refine, decode and hand-out, so chunk N + 1
    is abandoned: N chunks are kept, or N + 1 only if chunk N + 1 finished while the request was on its way."""
    n = 2
    progress: list = []
    sent: list = []

    def on_event(ev: dict) -> None:
        _progress_of(NODE, progress)(ev)
        if progress and progress[-1][0] == n and not sent:
            comfy.interrupt()
            sent.append(progress[-1][0])

    res = comfy.run(_graph(image_name, frames=481, prefix="stream/cancelled"), timeout=300, on_event=on_event)
    assert res.status == "interrupted", (res.status, res.error)
    done = progress[-1][0]
    assert sent == [n] and progress[-1][1] == 20
    assert done in (n, n + 1), progress                                   # stopped within one chunk
    folder = comfy_server.base / "output" / "stream"
    assert not list(folder.glob("cancelled_*_.mp4"))                       # no file under the final name
    partial = list(folder.glob("cancelled_*_partial.mp4"))
    assert len(partial) == 1
    facts = probe_mp4(partial[0])
    assert facts["frames"] == done * FRAMES_PER_CHUNK and facts["codec"] == "h264"
    cam = json.loads(partial[0].with_suffix(".camera.json").read_text())
    assert cam["generation"]["partial"] is True and cam["video"]["frames"] == done * FRAMES_PER_CHUNK
    assert len(cam["video"]["c2w"]) == done * FRAMES_PER_CHUNK


def test_stream_sampler_latent_goes_through_refine_and_decode(comfy, image_name):
    wf = _graph(image_name, frames=73, prefix="unused", refine=True)
    wf.pop(NODE)
    wf["41"] = {"class_type": "SanaWMStreamSampler", "inputs": {
        "model": [MODEL_LOADER, 0], "positive": ["7", 0], "latent": ["7", 2], "seed": 5, "frames_per_block": 3, "cached_blocks": 2,
        "sink": True}}
    wf["42"] = {"class_type": "SanaWMRefine", "inputs": {"refiner": ["30", 0], "latent": ["41", 0], "prompt": "",
                                                         "seed": 42}}
    wf["11"] = {"class_type": "SanaWMDecode", "inputs": {"vae": [VAE, 0], "latent": ["42", 0], "max_frames": 321}}
    wf["12"] = {"class_type": "PreviewImage", "inputs": {"images": ["11", 0]}}
    progress: list = []
    res = comfy.run(wf, timeout=300, on_event=_progress_of("41", progress))
    assert res.status == "success", res.error
    assert progress == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert len(res.previews.get("41", [])) == 3
    assert len(res.outputs["12"]["images"]) == 72


def test_the_24k_plus_1_snap_is_shown_on_both_stream_nodes(comfy, image_name):
    """57 frames (8k+1, so Image To Video keeps them) stream as 49 (24k+1): each stream node says so in its
    result text, as Image To Video does for its 8k+1 snap."""
    wf = _graph(image_name, frames=57, prefix="stream/snapped", refine=False)
    wf["41"] = {"class_type": "SanaWMStreamSampler", "inputs": {
        "model": [MODEL_LOADER, 0], "positive": ["7", 0], "latent": ["7", 2], "seed": 5, "frames_per_block": 3,
        "cached_blocks": 2, "sink": True}}
    wf["11"] = {"class_type": "SanaWMDecode", "inputs": {"vae": [VAE, 0], "latent": ["41", 0], "max_frames": 49}}
    wf["12"] = {"class_type": "PreviewImage", "inputs": {"images": ["11", 0]}}
    res = comfy.run(wf, timeout=300)
    assert res.status == "success", res.error and res.error.get("exception_message")
    assert res.outputs["7"]["text"][0].startswith("57 frames at 16 fps")
    for node in (NODE, "41"):
        text = res.outputs[node]["text"][0]
        assert text.startswith("Stage 1: 49 frames in 2 chunks") and "using 49 frames instead of 57" in text, text


STREAM_NODES = "run it in SANA-WM Stream Sampler or SANA-WM Stream to Video"
CHUNK_NODE = "run it in the SANA-WM Sampler with sampler chunk_flow_euler"


@pytest.mark.parametrize("change,node,fix", [
    ({"model": "SANA-WM_bidirectional"}, NODE, "load Efficient-Large-Model/SANA-WM_streaming"),
    ({"frames_per_block": 2}, NODE, "set frames_per_block to 3"),
    ({"vae": "SANA-WM_bidirectional"}, NODE, "Set the VAE loader to SANA-WM_streaming"),
    ({"model": "SANA-WM_chunk_causal"}, NODE, "model: SANA-WM Stream to Video needs the distilled streaming student "
     "(Efficient-Large-Model/SANA-WM_streaming), but this Stage-1 DiT is the chunk-causal teacher"),
    ({"model": "SANA-WM_bidirectional", "stage1_only": True}, "41", "load Efficient-Large-Model/SANA-WM_streaming"),
    ({"model": "SANA-WM_chunk_causal", "stage1_only": True}, "41",
     f"load Efficient-Large-Model/SANA-WM_streaming in the model loader, or {CHUNK_NODE}"),
    ({"pack_sampler": "flow_euler_ltx"}, SAMPLER, "is the distilled streaming student (Efficient-Large-Model/"
     "SANA-WM_streaming): load Efficient-Large-Model/SANA-WM_bidirectional in the model loader, or set sampler to "
     "self_forcing"),
    ({"pack_sampler": "chunk_flow_euler"}, SAMPLER, "sampler chunk_flow_euler needs the chunk-causal teacher"),
    ({"core_sampler": True}, SAMPLER, f"model: a core sampler (KSampler, KSamplerAdvanced, SamplerCustom, "
     f"SamplerCustomAdvanced) needs the bidirectional model (Efficient-Large-Model/SANA-WM_bidirectional), but this "
     f"Stage-1 DiT is the distilled streaming student (Efficient-Large-Model/SANA-WM_streaming): load "
     f"Efficient-Large-Model/SANA-WM_bidirectional in the model loader, or {STREAM_NODES}"),
    ({"core_sampler": True, "model": "SANA-WM_chunk_causal"}, SAMPLER, f"is the chunk-causal teacher "
     f"(Efficient-Large-Model/SANA-WM_chunk_causal): load Efficient-Large-Model/SANA-WM_bidirectional in the model "
     f"loader, or {CHUNK_NODE}"),
])
def test_bad_streaming_inputs_are_refused_before_loading(comfy, comfy_server, image_name, change, node, fix):
    """Every wrong pairing of release and sampler node is refused with both fixes in the message: the pack's nodes
    before the DiT is placed, core samplers at their first look at the model (its conditioning), after placing it;
    the server stays up with an empty queue."""
    change = dict(change)
    stage1_only, core = change.pop("stage1_only", False), change.pop("core_sampler", False)
    pack_sampler = change.pop("pack_sampler", None)
    fpb = change.pop("frames_per_block", 3)
    wf = _graph(image_name, frames=49, prefix="stream/bad", frames_per_block=fpb, **change)
    if stage1_only or pack_sampler or core:
        wf.pop(NODE)
    if stage1_only:
        wf["41"] = {"class_type": "SanaWMStreamSampler", "inputs": {
            "model": [MODEL_LOADER, 0], "positive": ["7", 0], "latent": ["7", 2], "seed": 5, "frames_per_block": 3,
            "cached_blocks": 2, "sink": True}}
        wf["11"] = {"class_type": "SanaWMDecode", "inputs": {"vae": [VAE, 0], "latent": ["41", 0], "max_frames": 9}}
        wf["12"] = {"class_type": "PreviewImage", "inputs": {"images": ["11", 0]}}
    if pack_sampler or core:   # the streaming model (or the one `change` names) in a whole-clip sampler
        wf[SAMPLER] = stage1_graph(image_name)[SAMPLER]
        wf[SAMPLER]["inputs"]["sampler"] = pack_sampler or "flow_euler_ltx"
        if core:
            wf[SAMPLER] = {"class_type": "KSampler", "inputs": {
                "model": [MODEL_LOADER, 0], "seed": 5, "steps": 2, "cfg": 5.0, "sampler_name": "euler",
                "scheduler": "simple", "denoise": 1.0, "positive": ["7", 0], "negative": ["7", 1],
                "latent_image": ["7", 2]}}
        wf["11"] = {"class_type": "SanaWMDecode", "inputs": {"vae": [VAE, 0], "latent": [SAMPLER, 0],
                                                             "max_frames": 321}}
        wf["12"] = {"class_type": "PreviewImage", "inputs": {"images": ["11", 0]}}
    mark = len(comfy_server.log())
    res = comfy.run(wf, timeout=300)
    assert res.status == "error" and res.error["node_id"] == node, (res.status, res.error)
    assert fix in res.error["exception_message"], res.error["exception_message"]
    if not core:
        assert "Requested to load SanaWMBaseModel" not in comfy_server.log()[mark:]
    assert comfy.queue_length() == 0 and "system" in comfy.get_json("/system_stats")
