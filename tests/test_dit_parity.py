"""Our Stage-1 DiT equals diffusers' SanaWMTransformer3DModel (fp32, CPU, same random weights)."""
from __future__ import annotations

import pytest
import torch

from dit_oracle import camera_conditions, flag_on_and_off, inputs, make_pair, rel_diff, run_ours, run_ref
from sana_wm_core.model import SanaWMConfig, SanaWMTransformer, load_transformer

TOL = 1e-4

CONFIGS = {
    "gdn+softmax": {},  # blocks 0-2 GDN, block 3 softmax
    "softmax-every-2": dict(softmax_every_n=2, seed=3),
    "head-dim-48 (camera SDPA padding quirk)": dict(hidden_size=96, linear_head_dim=48, num_attention_heads=2),
    "all-gdn, plucker in 2 blocks": dict(softmax_every_n=0, chunk_plucker_post_attn_blocks=2),
}


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def pair(request):
    over = dict(CONFIGS[request.param])
    seed = over.pop("seed", 0)
    return make_pair(seed, **over)


def test_matches_diffusers(pair):
    ours, ref = pair
    kw = inputs(ours.config, B=2, F=4, h=4, w=6)
    got, want = run_ours(ours, kw), run_ref(ref, kw)
    assert got.shape == want.shape == kw["hidden_states"].shape
    assert rel_diff(got, want) < TOL


def test_camera_change_matches(pair):
    """The effect of moving/rotating the camera (not just the output) agrees with diffusers.

    Measured against the output scale it is held to the parity tolerance; against its own (smaller) scale
    it carries the bf16 rounding of the reference's softmax attention (inputs that differ by 1e-7 round
    to different bf16 values now and then), so there the bound is 3e-3 (measured <= 1.5e-3); all-GDN
    models, which have no bf16 step, are held to 1e-4 (measured 5e-5)."""
    ours, ref = pair
    kw = inputs(ours.config, B=2, F=4, h=4, w=6, seed=1)
    still = dict(kw, camera_conditions=camera_conditions(2, 4, 4, 6, moving=False))
    moved_ref = run_ref(ref, kw)
    d_ours = run_ours(ours, kw) - run_ours(ours, still)
    d_ref = moved_ref - run_ref(ref, still)
    assert d_ref.abs().max() > 0.02 * moved_ref.abs().max()  # the camera branch is live
    assert float((d_ours - d_ref).abs().max() / moved_ref.abs().max()) < TOL
    assert rel_diff(d_ours, d_ref) < (1e-4 if not ours.config.softmax_blocks else 3e-3)


def test_numbers_do_not_follow_comfyuis_global_sdpa_flag(pair):
    """Importing ComfyUI allows half-precision reductions in PyTorch's math SDPA kernel process-wide. Every
    attention call of ours meets a fused kernel's layout, so our numbers do not move; the reference's (math
    kernel on its camera SDPA) do, which is why the oracle runs under PyTorch's default (dit_oracle)."""
    ours, ref = pair
    kw = inputs(ours.config, B=2, F=4, h=4, w=6)
    on, off = flag_on_and_off(lambda: ours(**kw))
    assert torch.equal(on, off)
    ref_on, ref_off = flag_on_and_off(lambda: ref(**kw, return_dict=False)[0])
    if ours.config.softmax_blocks and ours.config.linear_head_dim in (32, 64, 128, 256):
        assert not torch.equal(ref_on, ref_off), "the flag no longer changes the reference: drop reference_defaults"


@pytest.mark.parametrize("variant", ["bf16", "chunk-causal"])
def test_bf16_and_chunk_causal_numbers_do_not_follow_the_flag(variant):
    ours, ref = make_pair(3, softmax_every_n=2)
    if variant == "bf16":
        model = load_transformer(ref.state_dict(), ours.config, dtype="bf16")
    else:
        model = SanaWMTransformer(SanaWMConfig(**{**ours.config.to_dict(), "chunk_size": 2})).eval()
        model.load_state_dict(ours.state_dict())
    kw = inputs(model.config, B=1, F=5, h=3, w=4)
    on, off = flag_on_and_off(lambda: model(**kw))
    assert torch.equal(on, off)


def test_without_camera_and_plucker():
    ours, ref = make_pair(5)
    kw = inputs(ours.config, B=1, F=3)
    kw.update(camera_conditions=None, chunk_plucker=None)
    assert rel_diff(run_ours(ours, kw), run_ref(ref, kw)) < TOL


def test_frame0_conditioning_and_truncation():
    """Per-frame timesteps: frame 0 at t=0 differs from frame 0 at t=500; 500.7 truncates to 500."""
    ours, ref = make_pair(7)
    kw = inputs(ours.config, B=1, F=3)
    t = torch.tensor([[[0.0, 500.7, 500.2]]])
    out_a = run_ours(ours, dict(kw, timestep=t))
    assert rel_diff(out_a, run_ref(ref, dict(kw, timestep=t))) < TOL
    out_b = run_ours(ours, dict(kw, timestep=torch.tensor([[[500.0, 500.0, 500.0]]])))
    assert not torch.allclose(out_a[:, :, 0], out_b[:, :, 0])
    assert torch.equal(run_ours(ours, dict(kw, timestep=torch.tensor([[[0.0, 500.0, 500.0]]]))), out_a)


def test_timestep_and_mask_forms_are_equivalent():
    ours, _ = make_pair(0)
    kw = inputs(ours.config, B=2, F=3)
    t = torch.full((2, 1, 3), 321.0)
    base = run_ours(ours, dict(kw, timestep=t))
    for form in (torch.tensor(321.0), torch.full((2,), 321.0), torch.full((2, 3), 321.0)):
        assert torch.equal(run_ours(ours, dict(kw, timestep=form)), base)
    m = kw["encoder_attention_mask"]
    with_mask = run_ours(ours, kw)
    assert torch.equal(run_ours(ours, dict(kw, encoder_attention_mask=m[:, None, None, :])), with_mask)
    assert torch.equal(run_ours(ours, dict(kw, encoder_attention_mask=None, mask=m)), with_mask)


def test_patch_size_2():
    ours, ref = make_pair(2, patch_size=(1, 2, 2))
    kw = inputs(ours.config, B=1, F=3, h=4, w=8)
    assert rel_diff(run_ours(ours, kw), run_ref(ref, kw)) < TOL


@pytest.mark.parametrize("bad, match", [
    (dict(hidden_states=torch.zeros(1, 3, 2, 4, 6)), "hidden_states"),
    (dict(timestep=torch.zeros(2, 2, 3)), "timestep"),
    (dict(timestep=torch.zeros(2, 5)), "timestep"),
    (dict(encoder_hidden_states=torch.zeros(2, 1, 12, 7)), "encoder_hidden_states"),
    (dict(encoder_attention_mask=torch.ones(2, 5)), "encoder_attention_mask"),
    (dict(camera_conditions=torch.zeros(2, 3, 16)), "camera_conditions"),
    (dict(chunk_plucker=torch.zeros(2, 6, 3, 4, 6)), "chunk_plucker"),
])
def test_bad_inputs_are_named(bad, match):
    ours, _ = make_pair(0)
    kw = inputs(ours.config, B=2, F=3)
    with pytest.raises(ValueError, match=match):
        run_ours(ours, dict(kw, **bad))


def test_memory_chunking_keeps_numbers(monkeypatch):
    """Long videos run the FFN over frame groups and the GDN a head at a time: same numbers."""
    import sana_wm_core.model.ffn as ffn
    import sana_wm_core.model.kernels.gdn as gdn

    ours, ref = make_pair(0)
    kw = inputs(ours.config, B=2, F=4)
    whole = run_ours(ours, kw)
    monkeypatch.setattr(ffn, "FFN_CHUNK_ELEMENTS", 1)
    monkeypatch.setattr(gdn, "GDN_CHUNK_ELEMENTS", 1)
    chunked = run_ours(ours, kw)
    assert rel_diff(chunked, whole) < 1e-6
    assert rel_diff(chunked, run_ref(ref, kw)) < TOL
