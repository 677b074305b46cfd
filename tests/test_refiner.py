"""Stage-2 parity: our chunk loop and text path against diffusers' SanaWMLTX2Refiner (CPU, fp32, same weights)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from sana_wm_core.latent import SanaWMLatent, require_latent
from sana_wm_core.refiner import DISTILLED_SIGMAS, RefineSettings, encode_refiner_prompt, plan_chunks, refine_latents
from sana_wm_core.testing.tiny_refiner import TINY_TEXT_MAX_LEN, tiny_components

PROMPT = "  A car driving across a vast desert plain at golden hour.  "


@pytest.fixture(scope="module")
def parts():
    return tiny_components(latent_channels=16, seed=0)


@pytest.fixture(scope="module")
def oracle(parts):
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.sana_wm.refiner import SanaWMLTX2Refiner

    pipe = SanaWMLTX2Refiner(
        transformer=parts["transformer"], connectors=parts["connectors"], tokenizer=parts["tokenizer"],
        text_encoder=parts["text_encoder"], scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=None,
        text_max_sequence_length=TINY_TEXT_MAX_LEN,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def context(parts):
    return encode_refiner_prompt(
        PROMPT, tokenizer=parts["tokenizer"], text_encoder=parts["text_encoder"], connectors=parts["connectors"],
        max_length=TINY_TEXT_MAX_LEN, device="cpu", dtype=torch.float32,
    )


def _latent(frames: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(1, 16, frames, 3, 4, generator=torch.Generator().manual_seed(seed))


def _ours(parts, context, lat, seed=42, **kw):
    calls = []
    out = refine_latents(parts["transformer"], lat, *context, fps=16, generator=torch.Generator().manual_seed(seed),
                         dtype=torch.float32, settings=RefineSettings(**kw), on_chunk=lambda d, t: calls.append((d, t)))
    return out, calls


def _theirs(oracle, lat, seed=42, **kw):
    return oracle(lat, PROMPT, fps=16, generator=torch.Generator().manual_seed(seed), output_type="latent", **kw)


def test_prompt_context_matches_diffusers(oracle, context):
    ref_ctx, ref_mask = oracle._encode_prompt(PROMPT, device=torch.device("cpu"), dtype=torch.float32)
    assert context[0].shape == (1, TINY_TEXT_MAX_LEN, 64)
    assert (context[0] - ref_ctx).abs().max().item() == 0.0
    assert torch.equal(context[1], ref_mask)


def test_prompt_is_stripped_and_left_padded(parts, context):
    from sana_wm_core.refiner.text import tokenize_prompt

    ids, mask = tokenize_prompt(parts["tokenizer"], PROMPT, TINY_TEXT_MAX_LEN)
    n = int(mask.sum())
    assert mask[0, :-n].sum() == 0 and mask[0, -n:].all()           # padding on the left
    assert ids[0, -n] == parts["tokenizer"].bos_token_id              # BOS, then the prompt
    assert n == 1 + len(PROMPT.strip())                               # character-level tokenizer: stripped
    again = encode_refiner_prompt(PROMPT.strip(), tokenizer=parts["tokenizer"], text_encoder=parts["text_encoder"],
                                  connectors=parts["connectors"], max_length=TINY_TEXT_MAX_LEN, device="cpu",
                                  dtype=torch.float32)
    assert torch.equal(again[0], context[0])


def test_single_chunk_matches_diffusers(parts, oracle, context):
    lat = _latent(4)
    ours, calls = _ours(parts, context, lat)
    ref = _theirs(oracle, lat)
    assert (ours - ref).abs().max().item() == 0.0
    assert torch.equal(ours[:, :, :1], lat[:, :, :1])                 # the sink is bit-identical
    assert (ours[:, :, 1:] - lat[:, :, 1:]).abs().max() > 0.1          # ...and the rest was refined
    assert calls == [(1, 1)]


@pytest.mark.parametrize("kv_max_frames", [11, 5, 1])  # 1 == sink_size: diffusers never trims the history
def test_sliding_window_matches_diffusers(parts, oracle, context, kv_max_frames):
    lat = _latent(11, seed=3)
    ours, calls = _ours(parts, context, lat, kv_max_frames=kv_max_frames)
    ref = _theirs(oracle, lat, kv_max_frames=kv_max_frames)
    assert (ours - ref).abs().max().item() == 0.0
    assert torch.equal(ours[:, :, :1], lat[:, :, :1])
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_history_trimming_changes_late_chunks_only(parts, context):
    lat = _latent(11, seed=3)
    full, _ = _ours(parts, context, lat, kv_max_frames=11)
    short, _ = _ours(parts, context, lat, kv_max_frames=5)             # history of 4 frames: trims after chunk 2
    assert torch.equal(full[:, :, :7], short[:, :, :7])
    assert (full[:, :, 7:] - short[:, :, 7:]).abs().max() > 1e-4


def test_kv_max_frames_equal_to_sink_keeps_the_whole_history(parts, context):
    """kv_max_frames == sink_size is accepted (diffusers' rule: the history is then never trimmed), so with
    11 frames it equals the release window, which never needs a trim either, and differs from a short one."""
    lat = _latent(11, seed=3)
    RefineSettings(kv_max_frames=1, sink_size=1).validate()
    untrimmed, calls = _ours(parts, context, lat, kv_max_frames=1)
    full, _ = _ours(parts, context, lat, kv_max_frames=11)
    short, _ = _ours(parts, context, lat, kv_max_frames=5)
    assert torch.equal(untrimmed, full) and calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert (untrimmed[:, :, 7:] - short[:, :, 7:]).abs().max() > 1e-4


def test_seed_controls_noise(parts, context):
    lat = _latent(4)
    a, _ = _ours(parts, context, lat, seed=1)
    b, _ = _ours(parts, context, lat, seed=1)
    c, _ = _ours(parts, context, lat, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_interrupt_stops_between_chunks(parts, context):
    seen = []

    def check():
        if len(seen) >= 2:
            raise KeyboardInterrupt("stop")
        seen.append(1)

    with pytest.raises(KeyboardInterrupt):
        refine_latents(parts["transformer"], _latent(11), *context, fps=16, generator=torch.Generator().manual_seed(0),
                       dtype=torch.float32, check_interrupt=check)
    assert len(seen) == 2


def test_plan_and_schedule():
    assert DISTILLED_SIGMAS == (0.909375, 0.725, 0.421875, 0.0)
    assert plan_chunks(41, 1, 3)[0] == (1, 4) and plan_chunks(41, 1, 3)[-1] == (40, 41)
    assert len(plan_chunks(41, 1, 3)) == 14 and len(plan_chunks(121, 1, 3)) == 40


@pytest.mark.parametrize("bad, msg", [
    (torch.zeros(1, 8, 4, 3, 4), "channels"),
    (torch.zeros(1, 16, 1, 3, 4), "latent frames"),
    (torch.zeros(16, 4, 3, 4), "(1, C, T, h, w)"),
    (torch.full((1, 16, 4, 3, 4), float("nan")), "NaN"),
])
def test_bad_latents_are_rejected_before_work(parts, context, bad, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        refine_latents(parts["transformer"], bad, *context, fps=16, generator=torch.Generator(), dtype=torch.float32)


@pytest.mark.parametrize("kw, msg", [
    (dict(kv_max_frames=0), "kv_max_frames"), (dict(block_size=0), "block_size"),
    (dict(sigmas=(0.9, 0.95, 0.0)), "descending"), (dict(sigmas=(0.9, 0.5)), "end at 0.0"),
])
def test_bad_settings(kw, msg):
    with pytest.raises(ValueError, match=msg):
        RefineSettings(**kw).validate()


def test_bad_fps(parts, context):
    with pytest.raises(ValueError, match="fps"):
        refine_latents(parts["transformer"], _latent(4), *context, fps=0, generator=torch.Generator(),
                       dtype=torch.float32)


def test_refined_latent_flags_and_sink_drop():
    """The refined state is one field of the one latent type; no other shape of latent is accepted."""
    t = torch.zeros(1, 16, 3, 3, 4)
    s1 = SanaWMLatent(samples=t, num_frames=17, fps=16.0)
    d = s1.with_refined(t + 1, 1)
    assert d.refined and d.drop_first_frames == 1 and d.fps == 16.0 and torch.equal(d.samples, t + 1)
    assert s1.drop_first_frames == 0 and d.drop_first_frames == 1
    assert d.output_frames == 16 and s1.output_frames == 17
    with pytest.raises(ValueError, match="already refined"):
        d.with_refined(t + 2, 1)
    with pytest.raises(ValueError, match="keep the latent's shape"):
        s1.with_refined(t[:, :, :2], 1)
    for other in ({"samples": t}, t):
        with pytest.raises(ValueError, match="must be a SanaWMLatent"):
            require_latent(other)


def test_refined_flags_on_the_stage1_latent_type():
    t = torch.zeros(1, 16, 3, 3, 4)
    c2w = torch.eye(4).repeat(17, 1, 1).numpy()
    s1 = SanaWMLatent(samples=t, num_frames=17, c2w=c2w, prompt="p", generation={"seed": 1})
    r = s1.with_refined(t + 1, 1, refine_seed=42)
    assert isinstance(r, SanaWMLatent) and r.stage == "refined" and r.drop_first_frames == 1
    assert r.output_frames == 16 and r.output_c2w().shape == (16, 4, 4) and r.refined
    assert r.generation == {"seed": 1, "refine_seed": 42} and r.prompt == "p"
    assert s1.stage == "stage1" and not s1.refined and s1.drop_first_frames == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.drop_first_frames = 0
