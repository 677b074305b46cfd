"""The sampler registry, the shared step helpers, pinned frames as data, the plan step and the host protocol,
on a tiny random DiT of ours (fp32, CPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dit_oracle import camera_conditions, make_pair
from sana_wm_core.runtime.host import CallbackHost, Interrupted
from sana_wm_core.sampling import (SAMPLERS, Sampler, Stage1Conditioning, get_sampler, plan_stage1, run_stage1,
                                   sample_stage1)
from sana_wm_core.sampling.schedule import flow_schedule
from sana_wm_core.sampling.steps import (euler_per_token, frame_timesteps, guidance_inputs, guided_velocity,
                                         initial_latents)

L, H, W = 3, 3, 4


@pytest.fixture(scope="module")
def model():
    return make_pair(2)[0]


@pytest.fixture(scope="module")
def cond(model):
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(1, 12)
    mask[:, 9:] = 0
    return Stage1Conditioning(
        prompt_embeds=torch.randn(1, 1, 12, cfg.caption_channels, generator=g), prompt_mask=mask,
        negative_embeds=torch.randn(1, 1, 12, cfg.caption_channels, generator=g), negative_mask=torch.ones(1, 12),
        image_latent=torch.randn(1, cfg.in_channels, 1, H, W, generator=g),
        raymap=camera_conditions(1, L, H, W)[0], chunk_plucker=torch.randn(cfg.chunk_plucker_channels, L, H, W,
                                                                           generator=g),
        num_frames=8 * (L - 1) + 1, height=32 * H, width=32 * W,
        preview_proj=torch.randn(cfg.in_channels + 1, 3, generator=g) * 0.1)


KW = dict(steps=3, guidance_scale=4.0, seed=5, flow_shift=3.0)


def test_registry_names_and_errors():
    assert list(SAMPLERS) == ["flow_euler_ltx", "flow_euler", "chunk_flow_euler", "self_forcing"]
    assert SAMPLERS["flow_euler_ltx"].pins_image_frames and not SAMPLERS["flow_euler"].pins_image_frames
    with pytest.raises(ValueError, match="flow_euler_ltx"):
        get_sampler("ddim")


def test_pinned_frames_are_data(model, cond):
    ltx = sample_stage1(model, cond, **KW)
    assert torch.equal(ltx[:, :, :1], cond.image_latent)  # the default mask of flow_euler_ltx: frame 0
    free = sample_stage1(model, cond, **KW, pinned=torch.zeros(L, dtype=torch.bool))
    assert not torch.equal(free[:, :, :1], cond.image_latent)
    plain_pinned = sample_stage1(model, cond, **KW, sampler="flow_euler", pinned=[True, False, False])
    assert torch.equal(plain_pinned[:, :, :1], cond.image_latent)
    assert not torch.equal(sample_stage1(model, cond, **KW, sampler="flow_euler")[:, :, :1], cond.image_latent)


def test_plan_checks_before_any_model(cond):
    plan = plan_stage1(cond, **KW)
    assert plan.batch == 2 and plan.model_input_shape == (2,) + tuple(cond.latent_shape[1:])
    assert plan.pinned.tolist() == [True, False, False]
    assert plan_stage1(cond, **dict(KW, guidance_scale=1.0)).batch == 1
    with pytest.raises(ValueError, match="one entry per latent frame"):
        plan_stage1(cond, **KW, pinned=[True, False])
    with pytest.raises(ValueError, match="image latent covers only"):
        plan_stage1(cond, **KW, pinned=[True, True, False])
    with pytest.raises(ValueError, match="takes no setting"):
        plan_stage1(cond, **KW, chunk_interval_k=0.5)


def test_a_new_sampler_is_one_loop_and_one_entry(model, cond, monkeypatch):
    """A loop written only from the shared helpers, registered with one entry, reproduces flow_euler_ltx."""
    def my_loop(net, c, run):
        sched = flow_schedule(run.steps, run.flow_shift)
        x = initial_latents(c, run)
        inp = guidance_inputs(c, run)
        for i, t in enumerate(sched.timesteps):
            v = guided_velocity(net, x, frame_timesteps(t, L, inp.batch, run.pinned, run.device), inp, run)
            x = euler_per_token(x, v, t.expand(L), sched.sigmas, run.pinned)  # per-frame form of the step
            run.step_done(i, sched.steps, x, c)
        return x

    monkeypatch.setitem(SAMPLERS, "mine", Sampler("mine", my_loop, "test"))
    assert torch.equal(sample_stage1(model, cond, **KW, sampler="mine"), sample_stage1(model, cond, **KW))


def test_host_gets_progress_previews_and_block_interrupt_checks(model, cond):
    reports, checks = [], []
    host = CallbackHost(on_progress=lambda d, t, p: reports.append((d, t, p)),
                        interrupt=lambda: checks.append(1) and False)
    plan = plan_stage1(cond, **KW)
    run_stage1(model, cond, plan, host=host)
    assert [(d, t) for d, t, _ in reports] == [(1, 3), (2, 3), (3, 3)]
    img = reports[-1][2]()
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.shape[-1] == 3
    assert len(checks) == 3 * (len(model.blocks) + 2)  # before every block, before and after every call

    n = {"checks": 0}

    def stop():
        n["checks"] += 1
        return n["checks"] == 3  # the third check: inside the first model call, before block 1

    with pytest.raises(Interrupted):
        run_stage1(model, cond, plan, host=CallbackHost(interrupt=stop))
