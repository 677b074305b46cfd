"""Causal LTX-2 VAE (SANA-WM_streaming/ltx2_causal_vae): loading the release layout, chunk-by-chunk decode.

Checked against one causal decode of the whole latent (`decode_causal`): the streamed chunks concatenate to it.
In float64 the two agree to ~1e-14 (the rule is exact). In float32 the one shape-dependent step was diffusers'
`PerChannelRMSNorm`: `torch.mean` over the channels of (B,C,T,H,W) sums in an order that depends on T*H*W, so a
pixel rounds differently in a 4-frame chunk and in the whole clip (the random tiny VAE amplified that to ~1.5e-5
max-abs). Both shipped decodes run the norms with a fixed-order channel sum (`sana_wm_core/vae/fixed_norm.py`):
chunked == one-shot bit for bit in float32, and one-shot stays as close to diffusers' own decode and to the
float64 decode as diffusers' float32 decode is.
"""
from __future__ import annotations

import json

import pytest
import torch

from sana_wm_core.testing import tiny_causal_vae as tcv
from sana_wm_core.testing.tiny_config import LATENT_CHANNELS
from sana_wm_core.vae import (CAUSAL_VAE_DIR, CausalStreamDecoder, LTX2Vae, decode_causal, decode_causal_chunks)

CHUNKINGS = {1: [4], 2: [4, 3], 5: [4, 3, 3, 3, 3]}  # the streaming plan: chunk 0 = sink + one block of 3


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("streaming")
    tcv.write_causal_vae(root / CAUSAL_VAE_DIR)
    return root


@pytest.fixture(scope="module")
def vae(release):
    return LTX2Vae.from_folder(release, dtype=torch.float32, device="cpu")


def _z(frames: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(1, LATENT_CHANNELS, frames, 2, 3, generator=torch.Generator().manual_seed(seed)).to(dtype)


def test_release_layout_loads_into_diffusers_class(release, vae):
    cfg = json.loads((release / CAUSAL_VAE_DIR / "config.json").read_text())
    assert cfg["_class_name"] == "AutoencoderKLCausalLTX2Video" and cfg["decoder_causal"] is True
    assert "upsample_type" not in cfg  # NVlabs' name only: the loader maps it
    assert vae.is_causal
    assert tuple(vae.vae.config.upsample_type) == tuple(reversed(tcv.DECODER_UPSAMPLE_TYPE))
    want = tcv.build_causal_vae().state_dict()
    got = vae.vae.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert (vae.spatial_ratio, vae.temporal_ratio) == (32, 8)


def test_unmapped_upsampler_order_fails_to_load(release):
    """Read in NVlabs' order as if it were diffusers' (no reversal), the upsampler convs change shape: refused."""
    from diffusers import AutoencoderKLLTX2Video

    with pytest.raises(Exception, match="size|shape"):
        AutoencoderKLLTX2Video.from_pretrained(str(release / CAUSAL_VAE_DIR),
                                               upsample_type=tuple(tcv.DECODER_UPSAMPLE_TYPE))


def _both(vae, z, sizes, dtype):
    vae.vae.to(dtype)
    try:
        return decode_causal(vae, z.to(dtype)), torch.cat(list(decode_causal_chunks(vae, z.to(dtype), sizes,
                                                                                      drop_sink=False)), 2)
    finally:
        vae.vae.to(torch.float32)


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a.double() - ref.double()).norm() / ref.double().norm()).item()


@pytest.mark.parametrize("chunks", sorted(CHUNKINGS))
def test_chunked_decode_equals_one_shot_in_float64(vae, chunks):
    sizes = CHUNKINGS[chunks]
    whole, joined = _both(vae, _z(sum(sizes), seed=chunks, dtype=torch.float64), sizes, torch.float64)
    assert joined.shape == whole.shape == (1, 3, 1 + 8 * (sum(sizes) - 1), 64, 96)
    err = (joined - whole).abs().max().item()
    assert err <= 1e-12, f"{chunks} chunks: max |chunked - one-shot| = {err:.3g}"


@pytest.mark.parametrize("chunks", sorted(CHUNKINGS))
def test_chunked_decode_is_bitwise_one_shot_in_float32(vae, chunks):
    sizes = CHUNKINGS[chunks]
    parts = list(decode_causal_chunks(vae, _z(sum(sizes), seed=chunks), sizes, drop_sink=False))
    assert [p.shape[2] for p in parts] == [25] + [24] * (chunks - 1)
    assert torch.equal(torch.cat(parts, 2), decode_causal(vae, _z(sum(sizes), seed=chunks)))


def _diffusers_decode(vae, z: torch.Tensor) -> torch.Tensor:
    """diffusers' causal decoder as it ships (its own norms), one call over the whole latent."""
    with torch.no_grad():
        return vae.vae.decoder(vae.denormalize(z), None, causal=True)


@pytest.mark.parametrize("chunks", sorted(CHUNKINGS))
def test_one_shot_float32_is_within_rounding_of_diffusers_and_float64(vae, chunks):
    """The fixed-order norm is the same function: our float32 decode is as close to the float64 decode as
    diffusers' float32 decode is, and within float32 rounding of it."""
    sizes = CHUNKINGS[chunks]
    z = _z(sum(sizes), seed=chunks, dtype=torch.float64)
    vae.vae.double()
    try:
        truth = decode_causal(vae, z)
        assert _rel(_diffusers_decode(vae, z), truth) <= 1e-14            # float64: the same function
    finally:
        vae.vae.float()
    ours, theirs = decode_causal(vae, z.float()), _diffusers_decode(vae, z.float())
    assert ours.dtype == torch.float32
    assert _rel(ours, truth) <= 1.5 * _rel(theirs, truth) and _rel(ours, truth) <= 5e-6
    assert _rel(ours, theirs) <= 5e-6 and (ours - theirs).abs().max().item() <= 1e-4


def test_fixed_order_channel_sum_does_not_depend_on_the_frame_count():
    from sana_wm_core.vae.fixed_norm import channel_mean_square

    for channels in (1, 5, 8, 33):
        x = torch.randn(1, channels, 9, 5, 7, generator=torch.Generator().manual_seed(channels))
        whole = channel_mean_square(x, 1)
        assert whole.shape == (1, 1, 9, 5, 7)
        torch.testing.assert_close(whole.double(), x.double().square().mean(1, keepdim=True), rtol=1e-6, atol=0)
        for s, e in ((0, 4), (4, 7), (8, 9)):
            assert torch.equal(channel_mean_square(x[:, :, s:e].contiguous(), 1), whole[:, :, s:e])


def test_one_frame_chunks_equal_one_shot(vae):
    """NVlabs decodes one latent frame per call: the narrowest chunks still join up."""
    z = _z(6, seed=7, dtype=torch.float64)
    vae.vae.double()
    try:
        whole = decode_causal(vae, z)
        joined = torch.cat(list(decode_causal_chunks(vae, z, [1] * 6, drop_sink=False)), 2)
    finally:
        vae.vae.float()
    assert (joined - whole).abs().max().item() <= 1e-12


def test_first_chunk_drops_the_sink_frame(vae):
    z = _z(7, seed=3)
    whole = decode_causal(vae, z)
    dec = CausalStreamDecoder(vae)  # drop_sink by default, as the streaming reference
    first, second = dec.decode(z[:, :, :4]), dec.decode(z[:, :, 4:])
    assert first.shape[2] == 24 and second.shape[2] == 24
    assert torch.equal(first, whole[:, :, 1:25]) and torch.equal(second, whole[:, :, 25:])
    assert torch.equal(decode_causal(vae, z, drop_sink=True), whole[:, :, 1:])


def test_state_is_bounded_by_the_window(vae):
    """The carried state holds k_t - 1 frames per causal conv: the same size after 2 chunks as after 5 (and 9)."""
    dec = CausalStreamDecoder(vae)
    z = _z(4 + 3 * 8, seed=5)
    sizes = []
    dec.decode(z[:, :, :4])
    for k in range(8):
        dec.decode(z[:, :, 4 + 3 * k:7 + 3 * k])
        sizes.append(dec.state.nbytes())
    assert len(set(sizes)) == 1 and sizes[0] > 0
    n_convs = sum(type(m).__name__ == "LTX2VideoCausalConv3d" for m in vae.vae.decoder.modules())
    assert len(dec.state.tails) == n_convs
    assert all(t.shape[2] == 2 for t in dec.state.tails.values())  # kernel 3 in time -> 2 frames each
    assert dec.state.latent_frames == 28


def test_reset_starts_a_new_clip(vae):
    z = _z(4, seed=9)
    dec = CausalStreamDecoder(vae, drop_sink=False)
    a = dec.decode(z)
    dec.decode(_z(3, seed=10))
    dec.reset()
    assert torch.equal(dec.decode(z), a)


def test_bidirectional_vae_and_bad_chunks_are_refused(vae):
    bidir = LTX2Vae(tcv.build_causal_vae())
    bidir.vae.decoder.is_causal = False
    with pytest.raises(ValueError, match="causal LTX-2 VAE"):
        CausalStreamDecoder(bidir).decode(_z(4))
    with pytest.raises(ValueError, match="channels"):
        CausalStreamDecoder(vae).decode(torch.zeros(1, LATENT_CHANNELS + 1, 4, 2, 3))
    with pytest.raises(ValueError, match="add up"):
        list(decode_causal_chunks(vae, _z(7), [4, 2]))
