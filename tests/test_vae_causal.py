"""Causal LTX-2 VAE (SANA-WM_streaming/ltx2_causal_vae): loading the release layout, chunk-by-chunk decode.

Checked against diffusers' own causal decoder run once over the whole latent (`decode_causal`): the streamed
chunks concatenate to it. In float64 the two agree to ~1e-14 (the rule is exact). In float32 the one difference
is the decoder's `PerChannelRMSNorm`: its channel mean (`torch.mean` over dim 1 of (B,C,T,H,W)) is summed in an
order that depends on the tensor's length T*H*W, so the same position rounds differently in a 4-frame chunk and
in the whole clip (the first layer that differs; every conv gives equal bits for equal inputs). The random tiny
VAE then amplifies those last-bit differences to ~1.5e-5 max-abs on outputs of magnitude ~2 (relative L2
~1.5e-6), the same size as one-shot float32's own error against float64 (~2e-5; relative L2 ~1.7e-6). So: with
a norm whose sum runs in a fixed order, chunked == one-shot bit for bit in float32; with diffusers' norm, chunking
adds no error beyond float32 rounding (compared with the float64 decode).
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


@pytest.fixture
def fixed_order_norm(monkeypatch):
    """diffusers' PerChannelRMSNorm with its channel sum in a fixed order (channel 0, 1, ... added elementwise):
    each position's mean no longer depends on how many frames the tensor holds."""
    lib = pytest.importorskip("diffusers.models.autoencoders.autoencoder_kl_ltx2")

    def forward(self, x, channel_dim=None):
        dim = channel_dim or self.channel_dim
        sq = x.movedim(dim, 0).pow(2)
        total = sq[0].clone()
        for c in range(1, sq.shape[0]):
            total += sq[c]
        mean = (total / sq.shape[0]).unsqueeze(dim)
        return x / torch.sqrt(mean + self.eps)

    monkeypatch.setattr(lib.PerChannelRMSNorm, "forward", forward)


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
def test_chunked_decode_is_bitwise_one_shot_with_a_fixed_order_norm(vae, chunks, fixed_order_norm):
    sizes = CHUNKINGS[chunks]
    parts = list(decode_causal_chunks(vae, _z(sum(sizes), seed=chunks), sizes, drop_sink=False))
    assert [p.shape[2] for p in parts] == [25] + [24] * (chunks - 1)
    assert torch.equal(torch.cat(parts, 2), decode_causal(vae, _z(sum(sizes), seed=chunks)))


@pytest.mark.parametrize("chunks", sorted(CHUNKINGS))
def test_chunked_float32_adds_no_error_beyond_rounding(vae, chunks):
    """diffusers' own norm: chunked float32 is as close to the float64 decode as one-shot float32 is."""
    sizes = CHUNKINGS[chunks]
    z = _z(sum(sizes), seed=chunks, dtype=torch.float64)
    truth, _ = _both(vae, z, sizes, torch.float64)
    whole, joined = _both(vae, z, sizes, torch.float32)
    one_shot, chunked = _rel(whole, truth), _rel(joined, truth)
    assert chunked <= 1.5 * one_shot, f"relative L2 vs float64: chunked {chunked:.3g}, one-shot {one_shot:.3g}"
    assert _rel(joined, whole) <= 5e-6 and one_shot <= 5e-6


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


def test_first_chunk_drops_the_sink_frame(vae, fixed_order_norm):
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
