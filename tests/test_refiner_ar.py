"""Stage-2 refiner modes checked against plain re-implementations of their rules written here (tiny, CPU, fp32).

The engine runs the refiner on diffusers' K/V-cache machinery (sink captured before RoPE and re-positioned,
post-RoPE history trimmed to whole frames). The references below use none of it: a self-attention processor
written in this file computes q/k/v from the tokens it is given and attends either

* under a dense block-causal mask over the whole prefix `[sink, refined blocks so far, active block]` in one
  forward (cache-free; equal whenever nothing is trimmed and the sink therefore stays at position 0), or
* to an explicit prefix the test assembles from every block's recorded K/V (kept whole, sliced by the window
  rule: last `kv_max_frames - sink` frames, sink re-RoPE'd at `start - history - sink`).

`sink_bidirectional` (NVlabs' legacy single shot) is the cache-free reference with one block.
"""
from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from sana_wm_core.refiner import RefinerStream, RefineSettings, plan_blocks, refine_latents
from sana_wm_core.refiner.loop import pack_tokens, unpack_tokens
from sana_wm_core.testing.tiny_refiner import tiny_components

C, H, W, FPS, SEED = 16, 3, 4, 16.0, 42
SIGMAS = (0.909375, 0.725, 0.421875, 0.0)


@pytest.fixture(scope="module")
def model():
    return tiny_components(latent_channels=C, seed=0)["transformer"]


@pytest.fixture(scope="module")
def context():
    g = torch.Generator().manual_seed(3)
    return torch.randn(1, 16, 64, generator=g), torch.ones(1, 16, dtype=torch.long)


def _latent(frames: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(1, C, frames, H, W, generator=torch.Generator().manual_seed(seed))


class PlainAttention:
    """q/k/v from the given tokens; optional dense mask; optional extra K/V in front; optional recording."""

    def __init__(self):
        self.mask = None           # (Sq, Sk) bool, True = may attend
        self.prefix = None         # (k, v) post-RoPE, put before the tokens' own K/V
        self.record = None         # "pre" / "post": keep this call's K/V (before / after RoPE)
        self.recorded = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, query_rotary_emb=None,
                 key_rotary_emb=None, sink_rotary_emb=None, kv_cache=None, kv_cache_mode=None):
        from diffusers.models.transformers import transformer_sana_wm_refiner as R

        rope = R.apply_interleaved_rotary_emb if attn.rope_type == "interleaved" else R.apply_split_rotary_emb
        q = attn.norm_q(attn.to_q(hidden_states))
        k = attn.norm_k(attn.to_k(hidden_states))
        v = attn.to_v(hidden_states)
        if self.record == "pre":
            self.recorded = (k, v)
        q, k = rope(q, query_rotary_emb), rope(k, query_rotary_emb)
        if self.record == "post":
            self.recorded = (k, v)
        if self.prefix is not None:
            k, v = torch.cat([self.prefix[0], k], 1), torch.cat([self.prefix[1], v], 1)
        split = lambda t: t.unflatten(2, (attn.heads, -1)).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=self.mask)
        out = out.transpose(1, 2).flatten(2, 3)
        if attn.to_gate_logits is not None:
            gates = 2.0 * torch.sigmoid(attn.to_gate_logits(hidden_states))
            out = (out.unflatten(2, (attn.heads, -1)) * gates.unsqueeze(-1)).flatten(2, 3)
        return attn.to_out[1](attn.to_out[0](out))


@contextlib.contextmanager
def plain_attention(model):
    """Swap every self-attention processor for a `PlainAttention` (the references' only attention)."""
    saved = [b.attn1.processor for b in model.transformer_blocks]
    procs = [PlainAttention() for _ in model.transformer_blocks]
    for b, p in zip(model.transformer_blocks, procs):
        b.attn1.processor = p
    try:
        yield procs
    finally:
        for b, p in zip(model.transformer_blocks, saved):
            b.attn1.processor = p


def _forward(model, context, x, timesteps, positions):
    """Velocity of tokens `x` (per-token sigma `timesteps`) at absolute frame `positions`, no cache."""
    rope = model.build_rotary_emb_for_absolute_positions(batch_size=1, frame_positions=list(positions), height=H,
                                                         width=W, device=torch.device("cpu"), fps=FPS)
    t = timesteps * float(model.config.timestep_scale_multiplier)
    return model(hidden_states=x, encoder_hidden_states=context[0], timestep=t, video_rotary_emb=rope,
                 encoder_attention_mask=context[1], return_dict=False)[0]


def _euler(x, sigma, sigma_next, v):
    """One distilled step on tokens: x0 = x - sigma v; the last step lands on x0."""
    x0 = x - sigma * v
    return x0 if sigma_next == 0.0 else x + (sigma_next - sigma) * (x - x0) / sigma


def _tokens_per_frame():
    return H * W


def cache_free(model, procs, context, z, blocks, seed=SEED):
    """Each block: every step is ONE forward of [sink, refined so far, noisy block], block-causal mask."""
    gen = torch.Generator().manual_seed(seed)
    out = z.clone()
    n = _tokens_per_frame()
    for start, end in blocks:
        eps = torch.randn(z[:, :, start:end].shape, generator=gen)
        x = (1 - SIGMAS[0]) * z[:, :, start:end] + SIGMAS[0] * eps
        group = torch.zeros(end, dtype=torch.long)                   # sink frames: group 0
        for j, (s, e) in enumerate(blocks):
            group[s:min(e, end)] = j + 1
        g = group.repeat_interleave(n)
        mask = g[:, None] >= g[None, :]  # a frame sees its own group and earlier ones: the sink only itself
        for s_i, s_next in zip(SIGMAS[:-1], SIGMAS[1:]):
            seq = torch.cat([out[:, :, :start], x], 2)
            tok = pack_tokens(seq)
            ts = torch.zeros(1, tok.shape[1])
            ts[:, start * n:] = s_i
            for p in procs:
                p.mask, p.prefix, p.record = mask, None, None
            v = _forward(model, context, tok, ts, range(end))[:, start * n:]
            x = unpack_tokens(_euler(tok[:, start * n:], s_i, s_next, v), end - start, H, W)
        out[:, :, start:end] = x
    return out


def with_prefix(model, procs, context, z, blocks, kv_max_frames, sink=1, seed=SEED):
    """The windowed rule spelled out: every block's K/V is kept whole; each block reads the last
    `kv_max_frames - sink` frames of it (all when that is 0) and the sink re-RoPE'd right before them."""
    from diffusers.models.transformers import transformer_sana_wm_refiner as R

    n = _tokens_per_frame()
    gen = torch.Generator().manual_seed(seed)
    max_hist = kv_max_frames - sink

    def run(tok, sigma, positions, prefix_of, record):
        for i, p in enumerate(procs):
            p.mask, p.prefix, p.record = None, prefix_of(i), record
        return _forward(model, context, tok, torch.full((1, tok.shape[1]), sigma), positions)

    run(pack_tokens(z[:, :, :sink]), 0.0, range(sink), lambda i: None, "pre")
    sink_kv = [p.recorded for p in procs]
    frames_kv = [[] for _ in procs]  # per layer: post-RoPE (k, v) of every refined frame so far, in order
    offsets = []
    out = z.clone()
    for start, end in blocks:
        done = start - sink
        hist = done if max_hist <= 0 else min(done, max_hist)
        offset = start - hist - sink
        offsets.append(offset)
        sink_rope = model.build_rotary_emb_for_absolute_positions(
            batch_size=1, frame_positions=list(range(offset, offset + sink)), height=H, width=W,
            device=torch.device("cpu"), fps=FPS)
        rope_fn = R.apply_interleaved_rotary_emb if model.transformer_blocks[0].attn1.rope_type == "interleaved" \
            else R.apply_split_rotary_emb

        def prefix_of(i):
            k = [rope_fn(sink_kv[i][0], sink_rope)] + [kv[0] for kv in frames_kv[i][done - hist:]]
            v = [sink_kv[i][1]] + [kv[1] for kv in frames_kv[i][done - hist:]]
            return torch.cat(k, 1), torch.cat(v, 1)

        eps = torch.randn(z[:, :, start:end].shape, generator=gen)
        x = (1 - SIGMAS[0]) * z[:, :, start:end] + SIGMAS[0] * eps
        for s_i, s_next in zip(SIGMAS[:-1], SIGMAS[1:]):
            tok = pack_tokens(x)
            x = unpack_tokens(_euler(tok, s_i, s_next, run(tok, s_i, range(start, end), prefix_of, None)),
                              end - start, H, W)
        run(pack_tokens(x), 0.0, range(start, end), prefix_of, "post")
        for i, p in enumerate(procs):
            k, v = p.recorded
            frames_kv[i] += [(k[:, f * n:(f + 1) * n], v[:, f * n:(f + 1) * n]) for f in range(end - start)]
        out[:, :, start:end] = x
    return out, offsets


def _engine(model, context, z, **kw):
    return refine_latents(model, z, *context, fps=FPS, generator=torch.Generator().manual_seed(SEED),
                          dtype=torch.float32, settings=RefineSettings(**kw))


TOL = 1e-6  # different attention shapes, same arithmetic: fp32 rounding only (measured 4.8e-7)


@pytest.mark.parametrize("frames,kv_max_frames", [(4, 11), (10, 11), (13, 1), (16, 64)])
def test_autoregressive_untrimmed_equals_cache_free(model, context, frames, kv_max_frames):
    """1, 3, 4 and 5 blocks with nothing trimmed (kv_max_frames == sink: diffusers never trims)."""
    z = _latent(frames)
    ours = _engine(model, context, z, kv_max_frames=kv_max_frames)
    with plain_attention(model) as procs:
        ref = cache_free(model, procs, context, z, plan_blocks(frames, RefineSettings()))
    assert torch.equal(ours[:, :, :1], z[:, :, :1])
    err = (ours - ref).abs().max().item()
    assert err <= TOL, f"max |AR - cache-free| = {err:.3g}"
    assert (ours[:, :, 1:] - z[:, :, 1:]).abs().max() > 0.1


@pytest.mark.parametrize("kv_max_frames", [11, 5, 2])
def test_autoregressive_windowed_equals_spelled_out_rule(model, context, kv_max_frames):
    """Trimmed histories (10, 4, 1 frames: partial blocks), sink moving forward."""
    z = _latent(1 + 3 * 6)
    ours = _engine(model, context, z, kv_max_frames=kv_max_frames)
    with plain_attention(model) as procs:
        ref, offsets = with_prefix(model, procs, context, z, plan_blocks(z.shape[2], RefineSettings()), kv_max_frames)
    err = (ours - ref).abs().max().item()
    assert err <= TOL, f"kv_max_frames={kv_max_frames}: max |AR - spelled-out| = {err:.3g}"
    hist = kv_max_frames - 1
    assert offsets == [max(0, s - hist - 1) for s in range(1, 19, 3)]


def test_sink_bidirectional_equals_one_masked_forward(model, context):
    """NVlabs' legacy mode: the sink sees itself, every other frame sees all frames, one eps for all."""
    z = _latent(10)
    ours = _engine(model, context, z, mode="sink_bidirectional")
    with plain_attention(model) as procs:
        ref = cache_free(model, procs, context, z, [(1, 10)])
    assert (ours - ref).abs().max().item() <= TOL
    ar = _engine(model, context, z)
    assert (ours - ar).abs().max() > 1e-3  # a different rule, not a relabelling


def test_release_sink_offsets_and_bounded_state(model, context):
    """T = 31 (241 frames): sink positions [0,0,0,0,2,5,8,11,14,17]; the cache stops growing at 10 frames."""
    z = _latent(31, seed=4)
    stream = RefinerStream(model, z[:, :, :1], *context, fps=FPS, generator=torch.Generator().manual_seed(SEED),
                           dtype=torch.float32)
    offsets, sizes, parts = [], [], []
    for start, end in plan_blocks(31, RefineSettings()):
        assert stream.next_start == start
        offsets.append(stream.sink_position)
        parts.append(stream.refine(z[:, :, start:end]))
        sizes.append(stream.state_nbytes())
    assert offsets == [0, 0, 0, 0, 2, 5, 8, 11, 14, 17]
    assert stream.history_frames == 10 and len(set(sizes[3:])) == 1 and sizes[2] < sizes[3]
    with plain_attention(model) as procs:                        # the release window, spelled out
        ref, ref_offsets = with_prefix(model, procs, context, z, plan_blocks(31, RefineSettings()), kv_max_frames=11)
    assert ref_offsets == offsets
    err = (torch.cat([z[:, :, :1]] + parts, 2) - ref).abs().max().item()
    assert err <= TOL, f"max |stream - spelled-out| = {err:.3g}"


def test_bad_mode_and_blocks_are_refused(model, context):
    with pytest.raises(ValueError, match="mode"):
        RefineSettings(mode="causal").validate()
    stream = RefinerStream(model, _latent(1), *context, fps=FPS, generator=torch.Generator(), dtype=torch.float32)
    with pytest.raises(ValueError, match="like the sink"):
        stream.refine(torch.zeros(1, C, 3, H + 1, W))
    with pytest.raises(ValueError, match="sink must be"):
        RefinerStream(model, _latent(2), *context, fps=FPS, generator=torch.Generator(), dtype=torch.float32)


def test_loaded_refiner_streams_blocks_equal_to_whole_refine(tmp_path):
    """`SanaWMRefiner.stream` (the streaming pipeline's entry) and `refine` of the whole latent both give the
    cache-free reference's blocks for the prompt's context and the seed (3 blocks, nothing trimmed)."""
    from sana_wm_core.refiner import RefinerOptions, SanaWMRefiner, locate_refiner
    from sana_wm_core.testing.tiny_refiner import build_tiny_refiner

    refiner = SanaWMRefiner(locate_refiner(build_tiny_refiner(tmp_path / "refiner")), "cpu",
                            RefinerOptions(dtype=torch.float32))
    z = _latent(10, seed=6)
    whole = refiner.refine(z, "a road", seed=7, fps=FPS)
    with refiner.stream(z[:, :, :1], "a road", seed=7, fps=FPS) as stream:
        parts = [stream.refine(z[:, :, s:e]) for s, e in plan_blocks(10, RefineSettings())]
    assert refiner._transformer is None  # freed on exit (keep_loaded off)
    net = refiner.network()
    with plain_attention(net) as procs:
        ref = cache_free(net, procs, refiner.encode_prompt("a road"), z, plan_blocks(10, RefineSettings()), seed=7)
    for name, got in (("stream", torch.cat([z[:, :, :1]] + parts, 2)), ("refine", whole)):
        err = (got - ref).abs().max().item()
        assert err <= TOL, f"max |{name} - cache-free| = {err:.3g}"
    with pytest.raises(ValueError, match="sink must be"):
        with refiner.stream(torch.zeros(1, C + 1, 1, H, W), "a road", seed=7, fps=FPS):
            pass
