"""The overlapped streaming schedule (`sana_wm_core.streaming_pipeline`, worker threads on CPU) on the tiny
SANA-WM_streaming bundle: the same bits as the stages run one after another, Stage 1 really works on chunk k+1
while chunk k is still being decoded (recorded spans, no sleeps) but never two chunks ahead, a failure in any
stage reaches the caller after exactly the chunks finished before it (as sequentially) and leaves no worker
thread alive, and closing the stream early stops the workers. The cancel case is
`test_streaming_video.test_cancel_lands_inside_the_chunk_and_the_partial_file_plays[overlapped]`.

The CUDA-stream mode cannot run here: `test_the_schedule_is_decided_by_the_devices` only checks its choice."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from sana_wm_core.streaming import plan_stream_video, stream_video
from sana_wm_core.streaming_pipeline import ChunkPipeline, Stage, pipeline_mode
from sana_wm_core.video import probe_mp4
from sana_wm_core.video.stream_save import save_stream_clip
from test_streaming_video import bundle, make_cond  # noqa: F401 - the shared fixture


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sana-wm-stream-") and t.is_alive()]


def _spans(trace, stage):
    return {s.index: s for s in trace if s.stage == stage}


@pytest.mark.parametrize("refine", [True, False], ids=["refined", "stage1"])
def test_overlapped_equals_sequential_and_overlaps(bundle, refine):
    dit, vae, refiner = bundle
    refiner = refiner if refine else None
    plan = plan_stream_video(dit, make_cond(dit, 97), vae, refiner)                    # 4 chunks
    runs = {}
    for overlap in (False, True):
        trace: list = []
        chunks = list(stream_video(dit, plan, vae, refiner, seed=5, refiner_seed=7, overlap=overlap, trace=trace))
        runs[overlap] = chunks, trace
        assert not _workers()
    (seq, seq_trace), (ovl, ovl_trace) = runs[False], runs[True]
    assert [c.index for c in ovl] == [0, 1, 2, 3]
    for a, b in zip(seq, ovl):
        assert (a.start, a.end) == (b.start, b.end)
        assert torch.equal(a.latents, b.latents)                                      # bit for bit
        np.testing.assert_array_equal(a.frames, b.frames)

    def starts_before_decode_ends(trace, ahead):
        source, decode = _spans(trace, "source"), _spans(trace, "decode")
        return [k for k in range(plan.chunks - ahead) if source[k + ahead].start < decode[k].end]

    assert starts_before_decode_ends(seq_trace, 1) == []                              # one after another
    assert len(starts_before_decode_ends(ovl_trace, 1)) >= 2, ovl_trace               # chunk k+1 under decode k
    assert starts_before_decode_ends(ovl_trace, 2) == []                              # the window: one ahead


@pytest.mark.parametrize("overlap", [False, True], ids=["sequential", "overlapped"])
@pytest.mark.parametrize("where, frames", [("source", 24), ("refine", 48), ("decode", 24)])
def test_a_failing_stage_reaches_the_caller_after_the_finished_chunks(bundle, tmp_path, monkeypatch, overlap,
                                                                      where, frames):
    """Stage 1 fails in its cache pass after block 1 (chunk 0 is out), the refiner on block 2, the decoder on
    chunk 1: the same partial file in both schedules, and no worker left."""
    import sana_wm_core.sampling.self_forcing as sf
    from sana_wm_core.refiner import RefinerStream
    from sana_wm_core.vae import CausalStreamDecoder

    dit, vae, refiner = bundle
    target = {"source": (sf, "cache_pass", 2), "refine": (RefinerStream, "refine", 3),
              "decode": (CausalStreamDecoder, "decode", 2)}[where]
    owner, name, fail_at = target
    real, calls = getattr(owner, name), []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == fail_at:
            raise ArithmeticError(f"{where} broke")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)
    plan = plan_stream_video(dit, make_cond(dit, 97), vae, refiner)
    final, partial = tmp_path / "c_00001_.mp4", tmp_path / "c_00001_partial.mp4"
    with pytest.raises(ArithmeticError, match=f"{where} broke"):
        save_stream_clip((c.frames for c in stream_video(dit, plan, vae, refiner, overlap=overlap)), final, partial,
                         fps=16, video_c2w=plan.video_c2w)
    assert not _workers()
    assert not final.exists() and probe_mp4(partial)["frames"] == frames


def test_closing_the_stream_early_stops_the_workers(bundle):
    dit, vae, refiner = bundle
    plan = plan_stream_video(dit, make_cond(dit, 97), vae, refiner)
    trace: list = []
    chunks = stream_video(dit, plan, vae, refiner, overlap=True, trace=trace)
    first = next(chunks)
    assert first.index == 0 and _workers()
    chunks.close()
    assert not _workers()
    assert max(s.index for s in trace if s.stage == "source") <= 1                    # at most one chunk ahead


def test_the_pipeline_alone_keeps_order_and_raises_a_late_failure():
    """The scheduler without networks: items in order through two stages; a failure on item 3 of the second
    stage comes after items 0-2."""
    def second(x):
        if x == 30:
            raise KeyError("three")
        return x + 1

    stages = [Stage("a", lambda x: x * 10), Stage("b", second)]
    out = []
    with pytest.raises(KeyError, match="three"):
        for x in ChunkPipeline("threads").run(range(6), stages):
            out.append(x)
    assert out == [1, 11, 21] and not _workers()
    assert list(ChunkPipeline("threads", window=3).run(range(5), stages[:1])) == [0, 10, 20, 30, 40]
    with pytest.raises(ValueError, match="mode must be one of"):
        ChunkPipeline("streams")
    with pytest.raises(ValueError, match="needs the CUDA device"):
        ChunkPipeline("cuda")


def test_the_schedule_is_decided_by_the_devices():
    cpu = torch.device("cpu")
    assert pipeline_mode(cpu, [cpu]) == "sequential"
    assert pipeline_mode(cpu, [cpu], overlap=True) == "threads"
    assert pipeline_mode(cpu, [cpu], overlap=False) == "sequential"
    gpu0, gpu1 = torch.device("cuda", 0), torch.device("cuda", 1)
    if torch.cuda.is_available():
        assert pipeline_mode(gpu0, [gpu0, cpu]) == "cuda"
        assert pipeline_mode(gpu0, [gpu1]) == "sequential"
        assert pipeline_mode(gpu0, [gpu0], overlap=False) == "sequential"
    else:                                                         # no CUDA: never the stream mode
        assert pipeline_mode(gpu0, [gpu0]) == "sequential"
        assert pipeline_mode(gpu0, [gpu0], overlap=True) == "threads"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA-stream schedule needs a GPU")
def test_on_cuda_the_streams_schedule_gives_the_sequential_bits(tiny_models):
    """Runs only with a GPU: the auto schedule is "cuda" (a stream per stage), its chunks equal the sequential
    run's bit for bit, Stage 1 of chunk k+1 is enqueued before decode k is done, and no worker is left."""
    from sana_wm_core.streaming import _pipeline
    from sana_wm_core.testing.tiny_streaming import load_streaming_bundle

    dit, vae, refiner = load_streaming_bundle(tiny_models, "cuda")
    assert _pipeline(dit, vae, refiner, None, None).mode == "cuda"
    plan = plan_stream_video(dit, make_cond(dit, 97), vae, refiner)
    trace: list = []
    seq = list(stream_video(dit, plan, vae, refiner, seed=5, overlap=False))
    ovl = list(stream_video(dit, plan, vae, refiner, seed=5, trace=trace))
    assert not _workers()
    for a, b in zip(seq, ovl, strict=True):
        assert torch.equal(a.latents, b.latents)
        np.testing.assert_array_equal(a.frames, b.frames)
    source, decode = _spans(trace, "source"), _spans(trace, "decode")
    assert any(source[k + 1].start < decode[k].end for k in range(plan.chunks - 1)), trace


def test_the_environment_sets_the_default_schedule(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv("SANA_WM_STREAM_OVERLAP", "on")
    assert pipeline_mode(cpu, [cpu]) == "threads"
    assert pipeline_mode(cpu, [cpu], overlap=False) == "sequential"     # an explicit choice wins
    monkeypatch.setenv("SANA_WM_STREAM_OVERLAP", "off")
    assert pipeline_mode(cpu, [cpu]) == "sequential"
    assert pipeline_mode(torch.device("cuda", 0), [torch.device("cuda", 0)]) == "sequential"
    monkeypatch.setenv("SANA_WM_STREAM_OVERLAP", "sometimes")
    with pytest.raises(ValueError, match="SANA_WM_STREAM_OVERLAP='sometimes': use auto, on or off"):
        pipeline_mode(cpu, [cpu])
