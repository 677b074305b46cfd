"""The Stage-1 loop equals SanaWMPipeline's denoising loop (same tiny DiT, same inputs, same seed)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import test_sampling_support as tiny
from dit_oracle import reference_defaults
from sana_wm_core.sampling import SamplingInterrupted, Stage1Conditioning, flow_schedule, sample_stage1

KW = dict(prompt=tiny.PROMPT, action="w-8,jw-4,iw-4", intrinsics=tiny.INTRINSICS, height=96, width=128,
          num_frames=17, num_inference_steps=4, guidance_scale=5.0)


@pytest.fixture(scope="module", autouse=True)
def _reference_flags():
    """Both sides here run the reference's own transformer: under PyTorch's defaults, set before the oracle."""
    with reference_defaults():
        yield


@pytest.fixture(scope="module")
def oracle():
    """The pipeline's own inputs (built with its helpers) and its output latent."""
    from diffusers.pipelines.sana_wm.cam_utils import prepare_camera
    from diffusers.pipelines.sana_wm.pipeline_sana_wm import DEFAULT_CHI_PROMPT

    pipe = tiny.pipeline()
    cpu = torch.device("cpu")
    img = tiny.image()
    c2w, intr = pipe.prepare_camera_trajectory(None, KW["action"], KW["intrinsics"], KW["num_frames"])
    pv, intr = pipe.image_processor.preprocess_with_intrinsics(img, intr, 96, 128)
    cond, cmask, neg, nmask = pipe.encode_prompt(tiny.PROMPT, "", device=cpu, chi_prompt=DEFAULT_CHI_PROMPT)
    first = pipe._encode_first_frame(pv, cpu, torch.float32)
    cam = prepare_camera(c2w, intr, target_size=(96, 128), vae_stride=(8, 32, 32))
    c = Stage1Conditioning(prompt_embeds=cond, prompt_mask=cmask, negative_embeds=neg, negative_mask=nmask,
                           image_latent=first, raymap=cam["raymap"], chunk_plucker=cam["chunk_plucker"],
                           num_frames=c2w.shape[0], height=96, width=128, c2w=c2w)
    steps = []
    out = pipe(image=img, **KW, generator=torch.Generator().manual_seed(0), output_type="latent",
               callback_on_step_end=lambda p, i, t, kw: steps.append(kw["latents"].clone()) or {})
    return pipe, c, out.latent, steps


def test_latents_match_pipeline(oracle):
    pipe, cond, ref, ref_steps = oracle
    seen = []
    ours = sample_stage1(pipe.transformer, cond, steps=4, guidance_scale=5.0, seed=0, flow_shift=3.0,
                         callback=lambda i, n, x: seen.append((i, n, x.clone())))
    assert ours.shape == ref.shape == (1, tiny.C_LAT, 3, 3, 4)
    rel = float((ours - ref).abs().max() / ref.abs().max())
    print(f"stage-1 latent parity: max abs diff {float((ours - ref).abs().max()):.2e}, relative {rel:.2e}")
    assert rel < 1e-5                           # measured 0: the same transformer on both sides
    assert torch.equal(ours[:, :, :1], cond.image_latent)            # frame 0 pinned bit-exactly
    assert [(i, n) for i, n, _ in seen] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    for (_, _, x), r in zip(seen, ref_steps):
        assert float((x - r).abs().max()) <= 1e-5 * float(r.abs().max())


def test_guidance_one_runs_single_batch(oracle):
    pipe, cond, _, _ = oracle
    calls = []

    def model(x, t, y, **kw):
        calls.append(x.shape[0])
        return pipe.transformer(x, t, y, **kw)

    a = sample_stage1(model, cond, steps=2, guidance_scale=1.0, seed=1, flow_shift=3.0)
    ref = tiny.pipeline()(image=tiny.image(), **dict(KW, num_inference_steps=2, guidance_scale=1.0),
                          generator=torch.Generator().manual_seed(1), output_type="latent").latent
    assert calls == [1, 1]
    assert float((a - ref).abs().max()) <= 1e-5 * float(ref.abs().max())


def test_interrupt_stops_within_a_step(oracle):
    pipe, cond, _, _ = oracle
    calls = {"model": 0, "check": 0}

    def model(*a, **kw):
        calls["model"] += 1
        return pipe.transformer(*a, **kw)

    def interrupt():
        calls["check"] += 1
        return calls["model"] >= 2          # asked to stop during the second step

    with pytest.raises(SamplingInterrupted):
        sample_stage1(model, cond, steps=4, guidance_scale=5.0, seed=0, flow_shift=3.0, interrupt=interrupt)
    assert calls["model"] == 2               # the check right after the 2nd forward stopped it


def test_flow_euler_does_not_pin_frame0(oracle):
    pipe, cond, ref, _ = oracle
    x = sample_stage1(pipe.transformer, cond, steps=4, guidance_scale=5.0, seed=0, flow_shift=3.0,
                      sampler="flow_euler")
    assert x.shape == ref.shape and torch.isfinite(x).all()
    assert not torch.equal(x[:, :, :1], cond.image_latent)


def test_seed_changes_noise(oracle):
    pipe, cond, ref, _ = oracle
    other = sample_stage1(pipe.transformer, cond, steps=4, guidance_scale=5.0, seed=1, flow_shift=3.0)
    assert not torch.allclose(other, ref)


def test_bad_inputs(oracle):
    pipe, cond, _, _ = oracle
    with pytest.raises(ValueError, match="sampler must be one of"):
        sample_stage1(pipe.transformer, cond, sampler="ddim")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        sample_stage1(pipe.transformer, cond, steps=0)
    with pytest.raises(ValueError, match="flow_shift"):
        flow_schedule(4, 0.0)
    no_neg = Stage1Conditioning(**{**cond.__dict__, "negative_embeds": None, "negative_mask": None})
    with pytest.raises(ValueError, match="negative prompt"):
        sample_stage1(pipe.transformer, no_neg, guidance_scale=5.0)
    bad = Stage1Conditioning(**{**cond.__dict__, "num_frames": 16})
    with pytest.raises(ValueError, match="8k\\+1"):
        sample_stage1(pipe.transformer, bad)
    bad = Stage1Conditioning(**{**cond.__dict__, "raymap": cond.raymap[:2]})
    with pytest.raises(ValueError, match="raymap"):
        sample_stage1(pipe.transformer, bad)


def test_latent_value_and_release_prefix_check(oracle):
    """The core returns the finished `SanaWMLatent`; a prompt encoded with another prefix than the model's
    release config.yaml is refused before sampling."""
    from sana_wm_core.latent import SanaWMLatent
    from sana_wm_core.sampling import sample_stage1_latent
    from sana_wm_core.text import CHI_PROMPT_LINES

    pipe, cond, _, _ = oracle
    lat = sample_stage1_latent(pipe.transformer, cond, steps=2, guidance_scale=5.0, seed=0, flow_shift=3.0)
    ref = sample_stage1(pipe.transformer, cond, steps=2, guidance_scale=5.0, seed=0, flow_shift=3.0)
    assert isinstance(lat, SanaWMLatent) and torch.equal(lat.samples, ref) and lat.samples.device.type == "cpu"
    assert lat.num_frames == cond.num_frames and lat.fps == cond.fps and lat.drop_first_frames == 0
    assert lat.generation == {"seed": 0, "steps": 2, "cfg": 5.0, "sampler": "flow_euler_ltx", "flow_shift": 3.0}
    encoded = Stage1Conditioning(**{**cond.__dict__, "chi_prompt": CHI_PROMPT_LINES})
    encoded.check_prefix(CHI_PROMPT_LINES)
    encoded.check_prefix(())                                         # a model without release settings
    with pytest.raises(ValueError, match="connect the model to SANA-WM Image To Video"):
        encoded.check_prefix(("another prefix: ",))


def test_schedule_values():
    s = flow_schedule(4, 3.0)
    assert np.allclose(s.timesteps.numpy(), [1000, 857.692, 602.151, 8.929], atol=1e-3)
    assert float(s.sigmas[-1]) == 0.0 and s.steps == 4


def test_latent_preview_reproduces_the_first_frame():
    from sana_wm_core.sampling import fit_latent_rgb, latent_preview

    g = torch.Generator().manual_seed(0)
    lat = torch.randn(1, 16, 1, 6, 8, generator=g)
    true = torch.randn(17, 3, generator=g) * 0.3
    x = torch.cat([lat[0, :, 0].reshape(16, -1).T, torch.ones(48, 1)], 1)
    img = (x @ true).T.reshape(1, 3, 6, 8)
    proj = fit_latent_rgb(lat, torch.nn.functional.interpolate(img, scale_factor=32, mode="nearest"), ridge=1e-6)
    assert torch.allclose(proj, true, atol=1e-3)
    pv = latent_preview(torch.cat([lat] * 5, 2), proj, max_frames=4, height=64)
    assert pv.shape == (64, 4 * 85, 3)                 # 4 frames side by side, 8 px -> 85 px wide each
    assert pv.dtype == np.uint8
