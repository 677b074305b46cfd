"""`self_forcing` / `stream_stage1` against a straightforward re-implementation of the streaming rule
(docs/autoregressive_spec.md §3.3, §4) that keeps no cache: every step of block c runs the model over the whole
prefix [0, end of c) (earlier blocks clean at t = 0), with a softmax mask that lets each query block see only
its own keys and those of its window (the last `cached_blocks` blocks, the sink block 0 inside that budget).

fp32 throughout. The release runs an fp32 model's softmax attention in bf16 (a reference quirk the parity tests
pin), which turns the ~1e-7 differences of different matmul shapes (cached window vs whole prefix) into whole bf16
ulps (6e-6..2e-5 on these clips). The hybrid model (softmax blocks, where the window matters) therefore runs with
its public kernel setting `softmax_precision="model"` (attention in fp32), and the reference honours the same
setting; one bf16-softmax case stays in fp64, where the setting does not apply."""
from __future__ import annotations

import dataclasses
import logging

import pytest
import torch
import torch.nn.functional as F

import sana_wm_core.model.attention as attention_module
from dit_oracle import camera_conditions, make_pair
from tiny_stage1 import random_conditioning
from sana_wm_core.model.kernels.attention import camera_scale
from sana_wm_core.runtime.host import CallbackHost, Interrupted
from sana_wm_core.runtime.kernels import KernelSettings
from sana_wm_core.sampling import (SAMPLERS, Stage1Conditioning, plan_streaming, sample_stage1, sample_streaming,
                                   snap_stream_frames, stream_stage1)
from sana_wm_core.sampling.self_forcing import kv_window, stream_chunks

H, W, C_LAT, TXT = 3, 4, 16, 7
SIGMAS = (1.0, 0.96, 0.889, 0.727)
TOL = 1e-6


def _causal(softmax_every_n: int, dtype: torch.dtype):
    return make_pair(21, softmax_every_n=softmax_every_n, chunk_size=3)[0].to(dtype)


@pytest.fixture(scope="module")
def hybrid64():
    return _causal(2, torch.float64)


@pytest.fixture(scope="module")
def hybrid32():
    model = _causal(2, torch.float32)
    model.kernels = dataclasses.replace(model.kernels, softmax_precision="model")
    return model


@pytest.fixture(scope="module")
def gdn32():
    return _causal(0, torch.float32)


def make_cond(L: int, seed: int = 0) -> Stage1Conditioning:
    return random_conditioning(L, channels=C_LAT, h=H, w=W, text_tokens=TXT, seed=seed, negative=False)


# ------------------------------------------------------------------ the rule, written again from the spec
def spec_blocks(T: int, b: int = 3) -> list[tuple[int, int]]:
    r = T % b
    edges = [0] + list(range(b + r, T + 1, b))
    return list(zip(edges, edges[1:]))


def spec_window(c: int, ncb: int, sink: bool) -> list[int]:
    start = max(c - ncb, 0) if ncb > 0 else 0
    valid = list(range(start, c))
    if sink and ncb > 0:
        s = max(c - ncb + 1, 0)
        if s > 0:
            valid = [0] + list(range(s, c))
    return valid


def windowed_attention(blocks, ncb, sink, camera: bool):
    """A softmax kernel for one uncached prefix call: query block j sees the keys of spec_window(j) and its own."""
    def attend(q, k, v, *, chunk_id=None, tokens_per_frame=1, initial_state=None, output_final_state=False,
               kernels: KernelSettings = None):
        assert initial_state is None and not output_final_state and chunk_id is not None
        dtype = q.dtype
        bf16 = dtype == torch.float32 and kernels.bf16_softmax
        if bf16:                                       # the release's bf16 softmax (see the module docstring)
            q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
            if camera:
                q, k, v = q.float(), k.float(), v.float()
        scale = camera_scale(q.shape[-1]) if camera else None
        S = tokens_per_frame
        out = torch.empty_like(q)
        for j, (s, e) in enumerate(blocks):
            if s >= len(chunk_id):
                break
            frames = [f for i in spec_window(j, ncb, sink) for f in range(*blocks[i])] + list(range(s, e))
            tok = torch.tensor([f * S + t for f in frames for t in range(S)])
            out[:, :, s * S:e * S] = F.scaled_dot_product_attention(q[:, :, s * S:e * S], k[:, :, tok], v[:, :, tok],
                                                                    scale=scale)
        if bf16 and camera:
            out = out.to(torch.bfloat16)
        return out.to(dtype)
    return attend


@torch.no_grad()
def spec_stream(model, cond: Stage1Conditioning, *, ncb: int, sink: bool, seed: int, monkeypatch) -> torch.Tensor:
    """No cache: every step recomputes the whole prefix; the Euler step x + (sigma_next - sigma) v in float32."""
    dtype = next(model.parameters()).dtype
    T = cond.latent_frames
    blocks = spec_blocks(T)
    starts = [s for s, _ in blocks]
    monkeypatch.setattr(attention_module, "softmax_attention", windowed_attention(blocks, ncb, sink, False))
    monkeypatch.setattr(attention_module, "camera_softmax_attention", windowed_attention(blocks, ncb, sink, True))
    z = torch.randn(cond.latent_shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    z[:, :, :1] = cond.image_latent.to(dtype)
    sig = torch.tensor(list(SIGMAS) + [0.0], dtype=torch.float32)
    emb = cond.prompt_embeds.to(dtype)
    ray, plk = cond.raymap.to(dtype)[None], cond.chunk_plucker.to(dtype)[None]
    for s, e in blocks:
        for i in range(len(SIGMAS)):
            t = torch.zeros(1, 1, e)
            t[:, :, s:] = float(sig[i] * 1000)
            t[:, :, 0] = 0.0
            v = model(z[:, :, :e], t, emb, encoder_attention_mask=cond.prompt_mask, camera_conditions=ray[:, :e],
                      chunk_plucker=plk[:, :, :e], chunk_starts=starts)[:, :, s:]
            new = (z[:, :, s:e].float() + (sig[i + 1] - sig[i]) * v.float()).to(dtype)
            if s == 0:
                new[:, :, 0] = z[:, :, 0]                 # the image frame, restored
            z[:, :, s:e] = new
    monkeypatch.undo()
    return z


# ------------------------------------------------------------------ the rule's pieces
def test_blocks_windows_and_snapping_follow_the_spec():
    assert stream_chunks(31, 3) == spec_blocks(31) and stream_chunks(31, 3)[:2] == [(0, 4), (4, 7)]
    assert len(stream_chunks(121, 3)) == 40
    for T in range(4, 40):
        assert stream_chunks(T, 3) == spec_blocks(T), T
    assert stream_chunks(30, 3)[0] == (0, 3) and stream_chunks(32, 3)[0] == (0, 5)
    with pytest.raises(ValueError, match="more than frames_per_block"):
        stream_chunks(3, 3)
    for c in range(12):
        for ncb in (-1, 0, 1, 2, 3):
            for sink in (True, False):
                assert kv_window(c, ncb, sink) == spec_window(c, ncb, sink)
    # the spec's table (ncb 2): chunk 3 sees [0, 2] with the sink, [1, 2] without
    assert [kv_window(c, 2, True) for c in range(5)] == [[], [0], [0, 1], [0, 2], [0, 3]]
    assert [kv_window(c, 2, False) for c in range(5)] == [[], [0], [0, 1], [1, 2], [2, 3]]
    assert snap_stream_frames(961) == (961, None) and snap_stream_frames(241) == (241, None)
    frames, note = snap_stream_frames(250)
    assert frames == 241 and "241 frames instead of 250" in note
    with pytest.raises(ValueError, match="too short to stream"):
        snap_stream_frames(17)


def test_sigmas_are_used_verbatim(gdn32):
    plan = plan_streaming(gdn32, make_cond(7))
    assert plan.flow.timesteps.tolist() == [1000.0, 960.0, 889.0, 727.0]
    assert torch.equal(plan.flow.sigmas[:4], torch.tensor(SIGMAS, dtype=torch.float32))
    from diffusers import FlowMatchEulerDiscreteScheduler           # the release builds its schedule this way
    sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
    sched.set_timesteps(sigmas=list(SIGMAS))
    assert torch.equal(sched.timesteps, plan.flow.timesteps) and torch.equal(sched.sigmas, plan.flow.sigmas)


# ------------------------------------------------------------------ cached streaming == recompute
def _assert_stream_matches(model, cond, want, *, ncb, sink, seed):
    got = []
    for s, e, x in stream_stage1(model, cond, cached_blocks=ncb, sink=sink, seed=seed):
        assert x.shape[2] == e - s and x.dtype == want.dtype
        got.append((s, e))
        assert float((x - want[:, :, s:e]).abs().max()) <= TOL, (s, e)
    assert got == spec_blocks(cond.latent_frames)
    whole = sample_streaming(model, cond, cached_blocks=ncb, sink=sink, seed=seed)
    assert torch.equal(whole[:, :, :1], cond.image_latent.to(whole.dtype))
    assert float((whole - want).abs().max()) <= TOL


# 1, 2 and 5 chunks; with and without the sink; cached_blocks 1 and 2
@pytest.mark.parametrize("L,ncb,sink", [(4, 2, True), (7, 2, True), (7, 1, False),
                                        (16, 2, True), (16, 2, False), (16, 1, True), (16, 1, False)])
def test_cached_streaming_equals_recomputing_every_block_fp32(hybrid32, L, ncb, sink, monkeypatch):
    cond = make_cond(L, seed=L)
    want = spec_stream(hybrid32, cond, ncb=ncb, sink=sink, seed=7, monkeypatch=monkeypatch)
    assert want.dtype == torch.float32
    _assert_stream_matches(hybrid32, cond, want, ncb=ncb, sink=sink, seed=7)


def test_cached_streaming_equals_recompute_with_the_release_softmax_in_fp64(hybrid64, monkeypatch):
    """The default (reference) softmax setting on 5 chunks, in fp64 where bf16 rounding does not enter."""
    assert hybrid64.kernels.bf16_softmax
    cond = make_cond(16, seed=16)
    want = spec_stream(hybrid64, cond, ncb=2, sink=True, seed=7, monkeypatch=monkeypatch)
    _assert_stream_matches(hybrid64, cond, want, ncb=2, sink=True, seed=7)


@pytest.mark.parametrize("L", [4, 7, 16])
def test_cached_streaming_equals_recompute_fp32_gdn(gdn32, L, monkeypatch):
    cond = make_cond(L, seed=L + 1)
    want = spec_stream(gdn32, cond, ncb=2, sink=True, seed=3, monkeypatch=monkeypatch)
    got = sample_streaming(gdn32, cond, seed=3)
    assert got.dtype == torch.float32 and float((got - want).abs().max()) <= TOL


def test_the_window_and_the_sink_change_the_result(hybrid64):
    """So the comparison above can fail: on 5 blocks each setting gives another clip (blocks 0-1 agree)."""
    cond = make_cond(16, seed=4)
    runs = {(n, s): sample_streaming(hybrid64, cond, cached_blocks=n, sink=s, seed=1) for n in (1, 2) for s in
            (True, False)}
    keys = list(runs)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert float((runs[a] - runs[b]).abs().max()) > 1e-4, (a, b)
    assert torch.equal(runs[(2, True)][:, :, :7], runs[(2, False)][:, :, :7])   # chunks 0, 1: same window


def _cache_read_per_chunk(model, cond, **kw) -> list[int]:
    """`DiTCache.nbytes` of the cache each chunk's denoising calls read (one value per chunk)."""
    seen: list = []
    handle = model.register_forward_pre_hook(
        lambda m, a, k: seen.append(0 if k.get("cache") is None else k["cache"].nbytes), with_kwargs=True)
    try:
        for _ in stream_stage1(model, cond, seed=1, **kw):
            pass
    finally:
        handle.remove()
    steps = len(SIGMAS)                      # per chunk: `steps` denoising calls, then one cache pass (not the last)
    per_chunk = [seen[c * (steps + 1):c * (steps + 1) + steps] for c in range(len(spec_blocks(cond.latent_frames)))]
    assert all(len(set(calls)) == 1 for calls in per_chunk)      # the steps of one chunk read the same cache
    return [calls[0] for calls in per_chunk]


@pytest.mark.parametrize("ncb,sink", [(2, True), (1, False)])
def test_cache_memory_is_flat_as_the_clip_grows(hybrid32, ncb, sink):
    """Memory bounded by the window: the per-layer cache a chunk reads stops growing from chunk 3 on."""
    sizes = _cache_read_per_chunk(hybrid32, make_cond(3 * 7 + 1), cached_blocks=ncb, sink=sink)
    assert sizes[0] == 0 and sizes[1] > 0
    assert len(set(sizes[3:])) == 1, sizes
    unbounded = _cache_read_per_chunk(hybrid32, make_cond(3 * 5 + 1), cached_blocks=0)   # keeps every chunk
    assert all(a < b for a, b in zip(unbounded[1:], unbounded[2:])), unbounded          # so the measure can fail
    assert unbounded[4] > sizes[4]


@pytest.mark.parametrize("L", [6, 8])
def test_registry_loop_handles_any_remainder(hybrid64, L, monkeypatch):
    """Through `sample_stage1` (no snapping): block 0 absorbs L mod 3 frames."""
    assert "self_forcing" in SAMPLERS
    cond = make_cond(L, seed=L)
    want = spec_stream(hybrid64, cond, ncb=2, sink=True, seed=5, monkeypatch=monkeypatch)
    got = sample_stage1(hybrid64, cond, steps=4, guidance_scale=1.0, seed=5, sampler="self_forcing")
    assert float((got - want).abs().max()) <= TOL


def test_snaps_the_clip_with_a_note(gdn32, caplog):
    cond = make_cond(9)                                            # 65 frames -> 49 (7 latent frames)
    with caplog.at_level(logging.WARNING, logger="sana_wm"):
        out = sample_streaming(gdn32, cond)
    assert out.shape[2] == 7 and "49 frames instead of 65" in caplog.text


# ------------------------------------------------------------------ forwards, progress, cancel, bad input
def _counted(model):
    calls = []
    return calls, model.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[2]))


def test_forwards_per_block_progress_and_cancel(gdn32):
    cond = make_cond(10)
    calls, handle = _counted(gdn32)
    seen = []
    try:
        out = list(stream_stage1(gdn32, cond, hooks=CallbackHost(on_progress=lambda d, t, p: seen.append((d, t)))))
        assert [(s, e) for s, e, _ in out] == [(0, 4), (4, 7), (7, 10)]
        assert calls == [4] * 5 + [3] * 5 + [3] * 4              # 4 steps + 1 cache pass; none after the last
        assert seen == [(i + 1, 12) for i in range(12)]
        calls.clear()
        gen = stream_stage1(gdn32, cond, hooks=CallbackHost(interrupt=lambda: len(calls) >= 6))
        assert next(gen)[:2] == (0, 4)
        with pytest.raises(Interrupted):
            next(gen)
        assert len(calls) == 6
    finally:
        handle.remove()


def test_bad_input_fails_before_any_model_call(gdn32):
    bidir = make_pair(21, softmax_every_n=2)[0]
    cond = make_cond(7)
    for model in (gdn32, bidir):
        calls, handle = _counted(model)
        try:
            if model is bidir:
                with pytest.raises(ValueError, match="bidirectional.*SANA-WM_streaming"):
                    stream_stage1(model, cond)
                with pytest.raises(ValueError, match="bidirectional.*SANA-WM_streaming"):
                    sample_stage1(model, cond, steps=4, guidance_scale=1.0, sampler="self_forcing")
                continue
            for bad, msg in [((0.9, 0.5), "start at 1.0"), ((1.0, 0.9, 0.9), "strictly decrease"),
                             ((1.0, 0.5, 0.7), "strictly decrease"), ((1.0, -0.1), "strictly decrease"),
                             ((), "non-empty")]:
                with pytest.raises(ValueError, match=msg):
                    stream_stage1(model, cond, sigmas=bad)
            with pytest.raises(ValueError, match="frames_per_block 2 is not this checkpoint's chunk size"):
                stream_stage1(model, cond, frames_per_block=2)
            with pytest.raises(ValueError, match="cached_blocks must be an integer"):
                stream_stage1(model, cond, cached_blocks=1.5)
            with pytest.raises(ValueError, match="set cfg to 1.0"):
                sample_stage1(model, _with_negative(cond), steps=4, guidance_scale=5.0, sampler="self_forcing")
        finally:
            handle.remove()
        assert calls == []


def _with_negative(cond: Stage1Conditioning) -> Stage1Conditioning:
    import dataclasses
    return dataclasses.replace(cond, negative_embeds=cond.prompt_embeds.clone(), negative_mask=cond.prompt_mask)
