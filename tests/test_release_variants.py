"""One rule for which sampler runs which release (`sana_wm_core.model.variants`), at every library entry point.

The chunk-causal teacher and the streaming student have the same architecture and chunk size, so only the
release loader's stamp (`config.release_sampler`) tells them apart. Each tiny release, loaded as the loader
loads it, runs only with its own samplers: every other pairing is refused before any model call, the message
naming what the sampler needs, what the DiT is, and both fixes (load the right release / the right sampler)."""
from __future__ import annotations

import pytest

from sana_wm_core.model import load_transformer, read_release
from sana_wm_core.model.variants import BIDIRECTIONAL, CHUNK_CAUSAL, STREAMING, sampler_fits, variant_of
from sana_wm_core.sampling import SAMPLERS, sample_chunk_causal, sample_stage1, stream_stage1
from sana_wm_core.streaming import plan_stream_video
from sana_wm_core.testing import tiny_config as C
from sana_wm_core.weights.torch_pt import as_safetensors
from dit_oracle import make_pair
from tiny_stage1 import random_conditioning

RELEASES = {BIDIRECTIONAL: C.ORIGINAL_REPO_DIR, CHUNK_CAUSAL: C.CHUNK_CAUSAL_REPO_DIR, STREAMING: C.STREAMING_REPO_DIR}


@pytest.fixture(scope="module")
def dits(tiny_models):
    out = {}
    for variant, folder in RELEASES.items():
        info = read_release(tiny_models / folder)
        out[variant] = load_transformer(as_safetensors(info.dit_path), overrides=info.model_overrides)
    return out


def _cond():
    return random_conditioning(7, channels=C.LATENT_CHANNELS, h=3, w=4, text_tokens=5, negative=False)


def _counted(model):
    calls: list = []
    return calls, model.register_forward_hook(lambda *a: calls.append(1))


def test_the_loader_stamps_each_release_with_its_sampler(tiny_models, dits):
    for variant, dit in dits.items():
        assert dit.config.release_sampler == read_release(tiny_models / RELEASES[variant]).sampler == variant.sampler
        assert variant_of(dit) is variant
    assert dits[CHUNK_CAUSAL].config.chunk_size and dits[STREAMING].config.chunk_size   # both chunk-causal


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_sample_stage1_runs_each_release_only_with_its_own_samplers(dits, sampler):
    cond = _cond()
    for have, dit in dits.items():
        fits = sampler in have.samplers
        assert sampler_fits(dit, sampler) is fits
        if fits:
            continue
        calls, handle = _counted(dit)
        try:
            with pytest.raises(ValueError) as err:
                sample_stage1(dit, cond, steps=2, guidance_scale=1.0, sampler=sampler)
        finally:
            handle.remove()
        want = next(v for v in RELEASES if sampler in v.samplers)
        msg = str(err.value)
        assert f"sampler {sampler} needs {want.name}" in msg and f"this Stage-1 DiT is {have.name}" in msg, msg
        assert f"load {want.repo} in the model loader, or set sampler to {have.sampler}" in msg, msg
        assert calls == []


def test_the_streaming_entry_points_refuse_the_chunk_causal_teacher(dits):
    teacher, cond = dits[CHUNK_CAUSAL], _cond()
    fpb = teacher.config.chunk_size                           # the block size is right: only the release is wrong
    fix = f"load {STREAMING.repo} in the model loader, or set sampler to chunk_flow_euler"
    with pytest.raises(ValueError, match="needs the distilled streaming student.*is the chunk-causal teacher") as e:
        stream_stage1(teacher, cond, frames_per_block=fpb)
    assert fix in str(e.value)
    with pytest.raises(ValueError, match="streaming student.*chunk-causal teacher"):
        plan_stream_video(teacher, cond, None, frames_per_block=fpb)               # refused before the VAE is even looked at
    next(stream_stage1(dits[STREAMING], cond))               # the student streams (one block here)


def test_the_chunk_causal_sampler_refuses_the_streaming_student(dits):
    with pytest.raises(ValueError, match="needs the chunk-causal teacher.*is the distilled streaming student") as e:
        sample_chunk_causal(dits[STREAMING], _cond(), steps=2, guidance_scale=1.0)
    assert f"load {CHUNK_CAUSAL.repo} in the model loader, or set sampler to self_forcing" in str(e.value)


def test_a_hand_built_chunk_causal_dit_runs_with_either_chunk_sampler_only():
    """No release stamp: the architecture alone decides (a chunk_size = one of the two chunk-causal releases)."""
    dit = make_pair(21, softmax_every_n=0, chunk_size=3)[0]
    assert dit.config.release_sampler is None and variant_of(dit) is None
    assert sampler_fits(dit, "chunk_flow_euler") and sampler_fits(dit, "self_forcing")
    assert not sampler_fits(dit, "flow_euler_ltx") and not sampler_fits(dit, "flow_euler")
    with pytest.raises(ValueError, match="is chunk-causal.*set sampler to chunk_flow_euler .* or self_forcing"):
        sample_stage1(dit, _cond(), steps=2, guidance_scale=1.0, sampler="flow_euler_ltx")
    assert variant_of(make_pair(21, softmax_every_n=0)[0]) is BIDIRECTIONAL
