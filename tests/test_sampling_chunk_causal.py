"""`chunk_flow_euler` against a plain re-implementation of NVlabs' ChunkFlowEuler loop (docs/autoregressive_spec.md
§2), written here from the spec with diffusers' own scheduler for the timesteps and the per-token Euler step."""
from __future__ import annotations

import pytest
import torch

from dit_oracle import camera_conditions, make_pair
from tiny_stage1 import random_conditioning
from sana_wm_core.sampling import (SamplingInterrupted, Stage1Conditioning, chunk_schedule, sample_chunk_causal,
                                   sample_stage1)

H, W, C_LAT, TXT = 3, 4, 16, 7
SHIFT = 3.0


@pytest.fixture(scope="module")
def causal():
    model, _ = make_pair(21, softmax_every_n=2, chunk_size=3)
    return model


@pytest.fixture(scope="module")
def causal_gdn():
    """GDN blocks only: in fp32 the release's softmax runs in bf16 (a reference quirk), so the cached path is
    checked to 1e-6 in fp32 on this model and on the hybrid one in fp64 (test_cache_equals_recompute)."""
    model, _ = make_pair(21, softmax_every_n=0, chunk_size=3)
    return model


@pytest.fixture(scope="module")
def bidirectional():
    return make_pair(21, softmax_every_n=2)[0]


def make_cond(L: int, seed: int = 0) -> Stage1Conditioning:
    return random_conditioning(L, channels=C_LAT, h=H, w=W, text_tokens=TXT, seed=seed, negative=True)


def counted(model):
    calls = []
    handle = model.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[2]))
    return calls, handle


# ------------------------------------------------------------------ the spec's loop, no cache, whole prefix
def spec_starts(T: int, chunk_size: int) -> list[int]:
    starts = [0] + list(range(chunk_size + 1, T, chunk_size))
    if len(starts) > 1 and T - starts[-1] < chunk_size:
        starts.pop()
    return starts


@torch.no_grad()
def spec_loop(model, cond: Stage1Conditioning, steps: int, cfg: float, seed: int, interval_k):
    from diffusers import FlowMatchEulerDiscreteScheduler

    T = cond.latent_frames
    starts = spec_starts(T, model.config.chunk_size)
    chunks = list(zip(starts, starts[1:] + [T]))
    n = len(chunks)
    k = 1.0 / n if interval_k is None else interval_k
    sched = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    sched.set_timesteps(steps)
    timesteps = sched.timesteps
    start_steps = [int(i * k * steps) for i in range(n)]
    total = start_steps[-1] + steps
    M = torch.full((n, total), -1.0)
    for i in range(n):
        for j in range(steps):
            M[i, start_steps[i] + j] = timesteps[j]
        M[i, start_steps[i] + steps:] = 0.0

    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(cond.latent_shape, generator=gen, dtype=torch.float32)
    z[:, :, :1] = cond.image_latent
    buffers = [z[:, :, s:e].clone() for s, e in chunks]
    cond_mask = torch.zeros(T)
    cond_mask[0] = 1.0
    embeds = torch.cat([cond.negative_embeds, cond.prompt_embeds])
    masks = torch.cat([cond.negative_mask, cond.prompt_mask])
    for g in range(total):
        active = [i for i in range(n) if M[i, g] >= 0]
        if not active:
            continue
        end = chunks[active[-1]][1]
        x = torch.cat([buffers[i] for i in active], 2)
        t = torch.cat([M[i, g].repeat(chunks[i][1] - chunks[i][0]) for i in active]) * (1 - cond_mask[:end])
        v = model(torch.cat([x, x]), t.view(1, 1, end).repeat(2, 1, 1), embeds, encoder_attention_mask=masks,
                  camera_conditions=cond.raymap[None, :end].repeat(2, 1, 1),
                  chunk_plucker=cond.chunk_plucker[None, :, :end].repeat(2, 1, 1, 1, 1))
        v_u, v_c = v.chunk(2)
        v = v_u + cfg * (v_c - v_u)
        tokens = x.permute(0, 2, 3, 4, 1).reshape(1, -1, C_LAT)          # (B, F*H*W, C)
        out = (-v).permute(0, 2, 3, 4, 1).reshape(1, -1, C_LAT)
        per_token = t.view(end, 1).expand(end, H * W).reshape(1, -1)
        new = sched.step(out, timesteps[min(g, steps - 1)], tokens, per_token_timesteps=per_token,
                         return_dict=False)[0]
        new = new.reshape(1, end, H, W, C_LAT).permute(0, 4, 1, 2, 3)
        for i in active:
            s, e = chunks[i]
            buffers[i] = new[:, :, s:e].clone()
    return torch.cat(buffers, 2), total


@pytest.mark.parametrize("L,interval_k,use_cache,model", [
    (10, None, False, "causal"), (12, 0.3, False, "causal"), (10, 0.5, True, "causal_gdn"), (12, None, True, "causal_gdn")])
def test_equals_the_spec_loop(request, L, interval_k, use_cache, model):
    model = request.getfixturevalue(model)
    cond = make_cond(L, seed=L)
    ref, total = spec_loop(model, cond, steps=4, cfg=4.0, seed=7, interval_k=interval_k)
    seen = []
    ours = sample_chunk_causal(model, cond, steps=4, guidance_scale=4.0, seed=7, flow_shift=SHIFT,
                               chunk_interval_k=interval_k, use_cache=use_cache,
                               callback=lambda i, n, x: seen.append((i, n)))
    assert ours.shape == ref.shape == (1, C_LAT, L, H, W)
    diff = float((ours - ref).abs().max())
    print(f"L={L} k={interval_k} cache={use_cache}: {total} global steps, max |ours - spec| = {diff:.2e}")
    assert diff <= 1e-6 * max(1.0, float(ref.abs().max()))
    assert torch.equal(ours[:, :, :1], cond.image_latent)
    assert seen == [(g, total) for g in range(total)]


def _double(cond: Stage1Conditioning) -> Stage1Conditioning:
    for name in ("prompt_embeds", "negative_embeds", "image_latent", "raymap", "chunk_plucker"):
        setattr(cond, name, getattr(cond, name).double())
    return cond


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-8), (torch.float32, 1e-4)])
def test_cache_equals_recompute(causal, dtype, tol):
    """Finished chunks cached once vs the whole prefix every step, on the hybrid model (fp64: exact up to the
    fp32 GDN scan; fp32: the bf16 softmax of the release turns 1e-7 differences into bf16 ulps)."""
    import copy

    model = copy.deepcopy(causal).to(dtype)
    cond = make_cond(12, seed=4)
    cond = _double(cond) if dtype == torch.float64 else cond
    kw = dict(steps=4, guidance_scale=4.0, seed=2, flow_shift=SHIFT, chunk_interval_k=0.5)
    a = sample_chunk_causal(model, cond, use_cache=False, **kw)
    b = sample_chunk_causal(model, cond, use_cache=True, **kw)
    rel = float((a - b).abs().max() / a.abs().max())
    print(f"{dtype}: cached vs recompute relative difference {rel:.2e}")
    assert a.dtype == dtype and rel <= tol
    assert torch.equal(a[:, :, :1], b[:, :, :1])


def test_schedule_is_the_worked_example():
    from diffusers import FlowMatchEulerDiscreteScheduler

    s = chunk_schedule(10, 3, 4, 9.8)
    assert s.chunks == ((0, 4), (4, 7), (7, 10)) and s.start_steps == (0, 1, 2) and s.total_steps == 6
    ref = FlowMatchEulerDiscreteScheduler(shift=9.8)
    ref.set_timesteps(4)
    assert torch.equal(s.flow.timesteps, ref.timesteps.to(torch.float32))
    assert [round(float(t), 2) for t in s.flow.timesteps] == [1000.0, 952.13, 834.55, 87.70]
    t0, t1, t2, t3 = (float(t) for t in s.flow.timesteps)
    table = [[t0, -1, -1], [t1, t0, -1], [t2, t1, t0], [t3, t2, t1], [0, t3, t2], [0, 0, t3]]
    assert s.table.T.tolist() == table
    assert [s.active(g) for g in range(6)] == [[0], [0, 1], [0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2]]
    assert [s.active_end(g) for g in range(6)] == [4, 7, 10, 10, 10, 10]
    assert [s.finished_end(g) for g in range(6)] == [1, 1, 1, 4, 7, 10]
    assert s.frame_timesteps(1).tolist() == [0, t1, t1, t1, t0, t0, t0]

    full = chunk_schedule(121, 3, 60, 9.8)                     # the release: 40 chunks, 118 global steps
    assert len(full.chunks) == 40 and full.chunks[0] == (0, 4) and full.chunks[-1] == (118, 121)
    assert full.start_steps == tuple(int(1.5 * i) for i in range(40)) and full.total_steps == 118
    for g in range(full.total_steps):                          # the active set is always a prefix
        act = full.active(g)
        assert act == list(range(len(act)))
    short = chunk_schedule(12, 3, 4, 9.8)                      # a short tail merges into the last chunk
    assert short.chunks == ((0, 4), (4, 7), (7, 12))


def test_the_model_splits_each_prefix_into_the_active_chunks(causal):
    from sana_wm_core.model import chunk_starts

    s = chunk_schedule(12, 3, 4, 9.8, interval_k=0.3)
    for g in range(s.total_steps):
        assert chunk_starts(s.active_end(g), 3) == [s.chunks[i][0] for i in s.active(g)]


def test_later_chunks_cannot_change_earlier_ones(causal):
    L = 12                                                      # chunks [0,4) [4,7) [7,12)
    cond = make_cond(L, seed=3)
    base = sample_chunk_causal(causal, cond, steps=3, guidance_scale=3.0, seed=1, flow_shift=SHIFT)
    g = torch.Generator().manual_seed(5)
    cam = make_cond(L, seed=3)
    cam.raymap[7:, :16] += 0.3 * torch.randn(cam.raymap[7:, :16].shape, generator=g)
    plk = make_cond(L, seed=3)
    plk.chunk_plucker[:, 7:] += torch.randn(plk.chunk_plucker[:, 7:].shape, generator=g)
    for changed in (cam, plk):
        out = sample_chunk_causal(causal, changed, steps=3, guidance_scale=3.0, seed=1, flow_shift=SHIFT)
        assert torch.equal(out[:, :, :7], base[:, :, :7])
        assert float((out[:, :, 7:] - base[:, :, 7:]).abs().max()) > 1e-4


def test_one_chunk_is_the_bidirectional_ltx_sampler(causal, bidirectional):
    """On one chunk the chunk mask is full attention: the same weights built bidirectional (flow_euler_ltx runs
    only on that variant) give the same latents."""
    sd, other = causal.state_dict(), bidirectional.state_dict()
    assert sd.keys() == other.keys() and all(torch.equal(sd[k], other[k]) for k in sd)
    cond = make_cond(6, seed=2)                                 # 6 frames < 4 + 3: a single chunk
    assert len(chunk_schedule(6, 3, 3, SHIFT).chunks) == 1
    a = sample_chunk_causal(causal, cond, steps=3, guidance_scale=4.0, seed=9, flow_shift=SHIFT)
    b = sample_stage1(bidirectional, cond, steps=3, guidance_scale=4.0, seed=9, flow_shift=SHIFT,
                      sampler="flow_euler_ltx")
    assert float((a - b).abs().max()) <= 1e-6


def test_bad_inputs_fail_before_any_model_call(causal, bidirectional):
    cond = make_cond(10)
    for model in (causal, bidirectional):
        calls, handle = counted(model)
        try:
            if model is bidirectional:
                with pytest.raises(ValueError, match="bidirectional.*SANA-WM_chunk_causal"):
                    sample_chunk_causal(model, cond, steps=2)
                continue
            for k in (0.0, -0.2, 1.5, float("nan")):
                with pytest.raises(ValueError, match=r"chunk_interval_k must be in \(0, 1\]"):
                    sample_chunk_causal(model, cond, steps=2, chunk_interval_k=k)
            with pytest.raises(ValueError, match="shorter than one chunk"):
                sample_chunk_causal(model, make_cond(3), steps=2)
            with pytest.raises(ValueError, match="steps"):
                sample_chunk_causal(model, cond, steps=0)
        finally:
            handle.remove()
        assert calls == []


def test_progress_and_interrupt_within_one_step(causal):
    cond = make_cond(10)
    calls, handle = counted(causal)
    try:
        with pytest.raises(SamplingInterrupted):
            sample_chunk_causal(causal, cond, steps=4, guidance_scale=1.0, flow_shift=SHIFT,
                                interrupt=lambda: len(calls) >= 2)
        assert len(calls) == 2                                  # stopped right after the second model call
        calls.clear()
        sample_chunk_causal(causal, cond, steps=4, guidance_scale=1.0, flow_shift=SHIFT, use_cache=False)
        assert calls == [4, 7, 10, 10, 10, 10]                  # one call per global step, over the active prefix
        calls.clear()
        sample_chunk_causal(causal, cond, steps=4, guidance_scale=1.0, flow_shift=SHIFT)
        # cached: chunk A [0,4) is saved once at step 4, then only [4,10) runs; B [4,7) at step 5, then [7,10)
        assert calls == [4, 7, 10, 10, 4, 6, 3, 3]
    finally:
        handle.remove()
