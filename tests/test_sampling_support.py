"""Tiny random diffusers components for the Stage-1 parity tests (a helper module: it holds no tests).

Configs follow /work/shared/docs/diffusers_sanawm_tiny.md: the real LTX-2 strides (32x spatial, 8x temporal)
with tiny channels, a character-level Gemma tokenizer built in code, and the DiT's zero-initialised
parameters refilled with noise so the camera branches matter. Nothing is downloaded.
"""
from __future__ import annotations

import string
from functools import lru_cache

import numpy as np
import PIL.Image
import torch

C_LAT = 16
GEMMA2 = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
              num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32, max_position_embeddings=4096)
VAE = dict(in_channels=3, out_channels=3, latent_channels=C_LAT, block_out_channels=(8, 16, 32, 64),
           decoder_block_out_channels=(8, 16, 32), layers_per_block=(1, 1, 1, 1, 1),
           decoder_layers_per_block=(1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, True),
           decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(False, False, False, False),
           downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
           upsample_type=("spatiotemporal", "spatiotemporal", "spatiotemporal"), upsample_residual=(True, True, True),
           upsample_factor=(2, 2, 2), timestep_conditioning=False, patch_size=4, patch_size_t=1,
           encoder_causal=True, decoder_causal=False, encoder_spatial_padding_mode="zeros",
           decoder_spatial_padding_mode="reflect", spatial_compression_ratio=32, temporal_compression_ratio=8)
DIT = dict(in_channels=C_LAT, num_layers=4, hidden_size=128, num_attention_heads=4, linear_head_dim=32,
           softmax_every_n=4, mlp_ratio=3.0, caption_channels=64, chunk_plucker_channels=48,
           chunk_plucker_post_attn_blocks=4)
PROMPT = "A car driving across a vast desert plain at golden hour."
INTRINSICS = [150.0, 150.0, 100.0, 60.0]


def tokenizer():
    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    vocab = {t: i for i, t in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in ["\u2581"] + list(string.ascii_letters + string.digits + string.punctuation):
        vocab.setdefault(ch, len(vocab))
    return GemmaTokenizer(vocab=vocab, merges=[], add_bos_token=True)


def gemma2(seed: int = 0):
    from transformers import Gemma2Config, Gemma2Model

    tok = tokenizer()
    torch.manual_seed(seed)
    cfg = Gemma2Config(vocab_size=len(tok), pad_token_id=0, eos_token_id=1, bos_token_id=2, **GEMMA2)
    return tok, Gemma2Model(cfg).eval()


def vae(seed: int = 1):
    from diffusers import AutoencoderKLLTX2Video

    torch.manual_seed(seed)
    v = AutoencoderKLLTX2Video(**VAE).eval()
    g = torch.Generator().manual_seed(seed + 100)
    v.latents_mean.copy_(0.1 * torch.randn(C_LAT, generator=g))
    v.latents_std.copy_(0.5 + torch.rand(C_LAT, generator=g))
    return v


@torch.no_grad()
def dit(seed: int = 3):
    from diffusers import SanaWMTransformer3DModel

    torch.manual_seed(seed)
    m = SanaWMTransformer3DModel(**DIT).eval()
    g = torch.Generator().manual_seed(seed + 1)
    for p in m.parameters():
        if p.is_floating_point() and p.numel() and bool((p == 0).all()):
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return m


@lru_cache(maxsize=1)
def pipeline(shift: float = 3.0):
    """A diffusers SanaWMPipeline over the tiny components (cached per process: build once)."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.sana_wm.pipeline_sana_wm import SanaWMPipeline

    tok, te = gemma2()
    pipe = SanaWMPipeline(tokenizer=tok, text_encoder=te, vae=vae(), transformer=dit(),
                          scheduler=FlowMatchEulerDiscreteScheduler(shift=shift))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def image(w: int = 200, h: int = 120) -> PIL.Image.Image:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    noise = np.random.RandomState(0).rand(h, w, 3).astype(np.float32)
    img = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 7.0) * np.cos(yy / 5.0)], -1)
    return PIL.Image.fromarray(((0.7 * img + 0.3 * noise) * 255).clip(0, 255).astype(np.uint8), "RGB")
