"""`sana_wm_core.streaming` (the pipelined clip) on the tiny SANA-WM_streaming bundle, without ComfyUI: its chunks
are the same work as the stages run one after another on the whole clip (Stage 1 -> refine the whole latent ->
one causal decode), the frame counts and poses line up, the state between chunks stays bounded, a cancel lands
inside the chunk, and `save_stream_clip` keeps a playable partial file when the chunks stop early."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from dit_oracle import camera_conditions
from sana_wm_core.runtime.host import CallbackHost, Interrupted
from sana_wm_core.sampling import Stage1Conditioning, sample_streaming
from sana_wm_core.streaming import plan_stream_video, stream_video
from sana_wm_core.testing import tiny_config as C
from sana_wm_core.vae import LTX2Vae, decode_causal, to_uint8_frames
from sana_wm_core.video import probe_mp4
from sana_wm_core.video.stream_save import save_stream_clip

H, W, TXT = C.TINY_HEIGHT // 32, C.TINY_WIDTH // 32, 6


@pytest.fixture(scope="module")
def bundle(tiny_models):
    from sana_wm_core.testing.tiny_streaming import load_streaming_bundle

    return load_streaming_bundle(tiny_models)


def make_cond(dit, frames: int, seed: int = 0) -> Stage1Conditioning:
    L = (frames - 1) // 8 + 1
    g = torch.Generator().manual_seed(seed)
    dim = int(dit.config.caption_channels)
    c2w = np.tile(np.eye(4), (frames, 1, 1))
    c2w[:, 2, 3] = np.arange(frames) * 0.01
    return Stage1Conditioning(
        prompt_embeds=torch.randn(1, 1, TXT, dim, generator=g), prompt_mask=torch.ones(1, TXT, dtype=torch.long),
        negative_embeds=None, negative_mask=None,
        image_latent=torch.randn(1, C.LATENT_CHANNELS, 1, H, W, generator=g),
        raymap=camera_conditions(1, L, H, W, seed=seed)[0], chunk_plucker=torch.randn(48, L, H, W, generator=g),
        num_frames=frames, height=32 * H, width=32 * W, c2w=c2w, prompt="a road")


def test_chunks_equal_the_stages_run_on_the_whole_clip(bundle):
    dit, vae, refiner = bundle
    cond = make_cond(dit, 73)                                            # 10 latents = chunks [0,4) [4,7) [7,10)
    plan = plan_stream_video(dit, cond, vae, refiner)
    assert plan.chunks == 3 and plan.total_frames == 72 and plan.note is None
    chunks = list(stream_video(dit, plan, vae, refiner, seed=3, refiner_seed=9))
    assert [(c.start, c.end) for c in chunks] == [(0, 4), (4, 7), (7, 10)]
    assert [len(c.frames) for c in chunks] == [24, 24, 24]
    assert [plan.frames_after(k) for k in range(4)] == [0, 24, 48, 72]

    stage1 = sample_streaming(dit, cond, seed=3)
    refined = refiner.refine(stage1, "a road", seed=9, fps=cond.fps)
    torch.testing.assert_close(torch.cat([c.latents for c in chunks], 2), refined, atol=1e-5, rtol=1e-5)
    whole = decode_causal(vae, refined, drop_sink=True)
    streamed = np.concatenate([c.frames for c in chunks])
    assert streamed.shape == to_uint8_frames(whole).shape
    assert np.abs(streamed.astype(int) - to_uint8_frames(whole).astype(int)).max() <= 1   # uint8 rounding only
    assert plan.video_c2w().shape == (72, 4, 4)
    np.testing.assert_array_equal(plan.video_c2w(), cond.c2w[1:73])      # the sink's pose is dropped with it


def test_without_refiner_the_image_frame_is_kept(bundle):
    dit, vae, _ = bundle
    cond = make_cond(dit, 49)
    plan = plan_stream_video(dit, cond, vae, None)
    chunks = list(stream_video(dit, plan, vae, None, seed=3))
    assert [len(c.frames) for c in chunks] == [25, 24] and plan.total_frames == 49
    whole = to_uint8_frames(decode_causal(vae, sample_streaming(dit, cond, seed=3)))
    assert np.abs(np.concatenate([c.frames for c in chunks]).astype(int) - whole.astype(int)).max() <= 1


def test_state_between_chunks_does_not_grow_with_the_clip(bundle, monkeypatch):
    """Decoder conv tails and refiner sink + history K/V after each chunk: flat once the windows are full (the
    refiner keeps 10 history frames: full from the 4th block on)."""
    from sana_wm_core.refiner import RefinerStream
    from sana_wm_core.vae import CausalStreamDecoder

    dit, vae, refiner = bundle
    dec_bytes, kv_bytes = [], []
    decode, refine = CausalStreamDecoder.decode, RefinerStream.refine

    def spy_decode(self, latents):
        out = decode(self, latents)
        dec_bytes.append(self.state.nbytes())
        return out

    def spy_refine(self, clean):
        out = refine(self, clean)
        kv_bytes.append(self.state_nbytes())
        return out

    monkeypatch.setattr(CausalStreamDecoder, "decode", spy_decode)
    monkeypatch.setattr(RefinerStream, "refine", spy_refine)
    plan = plan_stream_video(dit, make_cond(dit, 8 * 3 * 8 + 1), vae, refiner)          # 8 chunks
    assert len(list(stream_video(dit, plan, vae, refiner, seed=1))) == 8
    assert len(dec_bytes) == 8 and len(set(dec_bytes[1:])) == 1 and dec_bytes[1] > 0, dec_bytes
    assert len(kv_bytes) == 8 and len(set(kv_bytes[3:])) == 1 and kv_bytes[0] < kv_bytes[3], kv_bytes


def test_bad_inputs_are_refused_by_the_plan(bundle, tiny_models):
    from sana_wm_core.refiner import RefineSettings

    dit, vae, refiner = bundle
    cond = make_cond(dit, 49)
    with pytest.raises(ValueError, match="set frames_per_block to 3"):
        plan_stream_video(dit, cond, vae, refiner, frames_per_block=2)
    bidir = LTX2Vae.from_folder(tiny_models / C.ORIGINAL_REPO_DIR, dtype=torch.float32, device="cpu")
    with pytest.raises(ValueError, match="needs the causal LTX-2 VAE"):
        plan_stream_video(dit, cond, bidir, refiner)
    with pytest.raises(ValueError, match="mode must be autoregressive"):
        plan_stream_video(dit, cond, vae, refiner, refiner_settings=RefineSettings(mode="sink_bidirectional"))
    with pytest.raises(ValueError, match="too short to stream"):
        plan_stream_video(dit, make_cond(dit, 17), vae, refiner)
    plan = plan_stream_video(dit, make_cond(dit, 60), vae, refiner)
    assert plan.cond.num_frames == 49 and "using 49 frames instead of 60" in plan.note


@pytest.mark.parametrize("overlap", [False, True], ids=["sequential", "overlapped"])
def test_cancel_lands_inside_the_chunk_and_the_partial_file_plays(bundle, tmp_path, overlap):
    """Overlapped, chunk 2 may already be made when the cancel comes: it is not handed out, the file is the same."""
    dit, vae, refiner = bundle
    plan = plan_stream_video(dit, make_cond(dit, 97), vae, refiner)                   # 4 chunks
    done = []
    host = CallbackHost(on_progress=lambda d, t, p: done.append(d), interrupt=lambda: len(done) >= 2)
    final, partial = tmp_path / "clip_00001_.mp4", tmp_path / "clip_00001_partial.mp4"
    seen = []
    with pytest.raises(Interrupted):
        save_stream_clip((c.frames for c in stream_video(dit, plan, vae, refiner, host=host, overlap=overlap)),
                         final, partial, fps=16, video_c2w=plan.video_c2w, extra={"chunks": plan.chunks},
                         on_partial=seen.append)
    assert done == [1, 2] and not final.exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("sana-wm-stream-")]      # workers joined
    assert probe_mp4(partial)["frames"] == 48 and seen[0].info.frames == 48 and seen[0].partial
    import json

    doc = json.loads(partial.with_suffix(".camera.json").read_text())
    assert doc["generation"]["partial"] is True and len(doc["video"]["c2w"]) == 48
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip_00001_partial.camera.json", "clip_00001_partial.mp4"]


def test_a_stream_that_stops_before_any_frame_leaves_nothing(tmp_path):
    def chunks():
        raise Interrupted("stop")
        yield  # pragma: no cover

    with pytest.raises(Interrupted):
        save_stream_clip(chunks(), tmp_path / "a_.mp4", tmp_path / "a_partial.mp4")
    assert list(tmp_path.iterdir()) == []
